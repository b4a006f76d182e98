#!/usr/bin/env bash
# The Pi side of a deploy. deploy.sh pipes this file over ssh (`ssh PI bash -s -- CMD ARGS`), so
# the Pi needs nothing of ours beforehand; `tree-hash` also runs on the laptop so both sides
# compute a release's version the same way.
#
# Layout under PI_DIR (default /opt/digit-reader):
#   releases/<version>/   immutable: device/ models/ systemd/ requirements.txt, venv -> ../../venvs/<h>
#   releases/.incoming-*  a transfer in progress (renamed to its version once complete and checked)
#   venvs/<reqhash>/      one venv per requirement set (--system-site-packages for picamera2)
#   current, previous     symlinks to releases/<version>, switched with rename(2) (mv -T)
#   venv -> current/venv  so $PI_DIR/venv/bin/python is always the running release's interpreter
#
# Commands: tree-hash DIR | preflight VERSION|- KB REQHASH | prepare-model | activate SRC VERSION|-
#           | rollback. Errors: one line "error: ..." on stderr, exit 1.
# Settings (environment): PI_DIR, DEPLOY_VENV (use this existing venv, do not build one),
# DEPLOY_NO_SYSTEMD=1 (skip unit install, restart and READY wait), DEPLOY_CONF_DIR
# (/etc/digit-reader), DEPLOY_UNIT_DIR (/etc/systemd/system), DEPLOY_KEEP (3),
# DEPLOY_RESERVE_MB (50), DEPLOY_READY_TIMEOUT (120), DEPLOY_SELFTEST_TIMEOUT (180),
# DEPLOY_FAULT=before-switch (tests: fail after the health check, before switching).
set -euo pipefail

PI_DIR=${PI_DIR:-/opt/digit-reader}
CONF_DIR=${DEPLOY_CONF_DIR:-/etc/digit-reader}
KEEP=${DEPLOY_KEEP:-3}
RESERVE_MB=${DEPLOY_RESERVE_MB:-50}
READY_TIMEOUT=${DEPLOY_READY_TIMEOUT:-120}
SELFTEST_TIMEOUT=${DEPLOY_SELFTEST_TIMEOUT:-180}
SERVICE=digit-reader
UNIT_DIR=${DEPLOY_UNIT_DIR:-/etc/systemd/system}
UNIT_PATH_IN_REPO=/opt/digit-reader # the unit file names this path; replaced by PI_DIR
# opencv-python-headless + ai-edge-litert + numpy wheels, unpacked, with headroom.
VENV_ESTIMATE_MB=300

log() { echo "deploy: $*"; }
fail() { echo "error: $*" >&2; exit 1; }

tree_hash() { # content hash of a release tree: file paths + contents, symlinks and caches ignored
    (cd "$1" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
        LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -c1-12)
}

current_version() { # the version `current` points at, or nothing
    local target
    target=$(readlink "$PI_DIR/current" 2>/dev/null) || return 0
    basename "$target"
}

as_root() { # run a command as root: directly when we are root, else passwordless sudo
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        sudo -n "$@" 2>/dev/null ||
            fail "'$1' needs root and sudo asks for a password; give $(id -un) passwordless sudo (default on Raspberry Pi OS) or deploy as root"
    fi
}

put_file() { # put_file SRC DEST: copy as root via a temp name + rename, so DEST is never half-written
    as_root install -m 0644 "$1" "$2.tmp"
    as_root mv -f "$2.tmp" "$2"
}

lock() {
    exec 9>"$PI_DIR/.deploy.lock"
    flock -n 9 || fail "another deploy is running on this Pi ($PI_DIR/.deploy.lock is held)"
}

need_provisioned() {
    [[ -d $PI_DIR ]] || fail "$PI_DIR does not exist on $(hostname); run 'make provision PI=...' first"
    [[ -w $PI_DIR ]] || fail "$PI_DIR is not writable by $(id -un) on $(hostname); run 'make provision PI=...' first"
    mkdir -p "$PI_DIR/releases" "$PI_DIR/venvs"
}

cmd_preflight() { # VERSION|- NEED_KB REQHASH -> prints current=, have= ; fails on no space
    local version=$1 need_kb=$2 reqhash=$3 avail_kb need_mb
    need_provisioned
    command -v rsync >/dev/null || fail "rsync is not installed on $(hostname); run 'make provision PI=...'"
    command -v python3 >/dev/null || fail "python3 is not installed on $(hostname); run 'make provision PI=...'"
    # REQHASH "-": the venv is reused as it is (deploy-model).
    if [[ -z ${DEPLOY_VENV:-} && $reqhash != - && ! -f $PI_DIR/venvs/$reqhash/.complete ]]; then
        need_kb=$((need_kb + VENV_ESTIMATE_MB * 1024))
    fi
    avail_kb=$(df -Pk "$PI_DIR" | awk 'NR == 2 { print $4 }')
    need_mb=$((need_kb / 1024 + RESERVE_MB))
    ((avail_kb / 1024 >= need_mb)) ||
        fail "no space left: $((avail_kb / 1024)) MB free under $PI_DIR on $(hostname), the release needs $need_mb MB (with a $RESERVE_MB MB reserve); free some space"
    echo "current=$(current_version)"
    if [[ $version != - && -d $PI_DIR/releases/$version ]]; then echo "have=1"; else echo "have=0"; fi
}

cmd_prepare_model() { # a new incoming release: the current one without its models (hard links)
    need_provisioned
    lock
    local cur incoming=$PI_DIR/releases/.incoming-model
    cur=$(current_version)
    [[ -n $cur && -d $PI_DIR/releases/$cur ]] || fail "there is no current release on $(hostname) to update the model of; run 'make deploy' first"
    rm -rf "$incoming"
    cp -al "$PI_DIR/releases/$cur" "$incoming"
    rm -rf "$incoming/models" "$incoming/venv"
    mkdir "$incoming/models"
    echo "incoming=.incoming-model"
}

ensure_venv() { # RELEASE: link RELEASE/venv to a venv with its requirements, building it if needed
    local release=$1 venv reqhash
    if [[ -n ${DEPLOY_VENV:-} ]]; then
        [[ -x $DEPLOY_VENV/bin/python ]] || fail "DEPLOY_VENV=$DEPLOY_VENV has no bin/python on $(hostname)"
        venv=$DEPLOY_VENV
    else
        reqhash=$(sha256sum <"$release/requirements.txt" | cut -c1-16)
        venv=$PI_DIR/venvs/$reqhash
        if [[ -f $venv/.complete ]]; then
            log "reusing venv $reqhash (requirements unchanged)"
        else
            log "creating venv $reqhash with the device dependencies (pip; a few minutes on a Pi)"
            rm -rf "$venv"
            python3 -m venv --system-site-packages "$venv" ||
                fail "python3 -m venv failed on $(hostname); run 'make provision PI=...' (installs python3-venv)"
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --prefer-binary \
                -r "$release/requirements.txt" >"$PI_DIR/venvs/pip.log" 2>&1 ||
                fail "pip could not install the device dependencies: $(tail -n 1 "$PI_DIR/venvs/pip.log") (log: $PI_DIR/venvs/pip.log)"
            touch "$venv/.complete"
        fi
    fi
    ln -sfn "$venv" "$release/.venv.tmp" # not yet live: the release is not current
    mv -T "$release/.venv.tmp" "$release/venv"
}

health_check() { # RELEASE VERSION: run the selftest inside the new release; sets HEALTH_WHY
    local release=$1 version=$2 out rc=0 args=()
    # The installed config too: a key the new code no longer knows would stop the daemon.
    if [[ -r $CONF_DIR/config.toml ]]; then args=(--config "$CONF_DIR/config.toml"); fi
    log "health check: python -m device.selftest ${args[*]} in release $version"
    out=$(cd "$release" && PYTHONPATH=$release timeout "$SELFTEST_TIMEOUT" \
        "$release/venv/bin/python" -m device.selftest "${args[@]}" 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/  | /'
    ((rc == 0)) && return 0
    HEALTH_WHY=$(printf '%s\n' "$out" | grep -m1 -E '^FAIL' || printf '%s\n' "$out" | tail -n 1)
    if ((rc == 124)); then HEALTH_WHY="timed out after ${SELFTEST_TIMEOUT}s"; fi
    return 1
}

switch_to() { # VERSION: previous := current, current := VERSION, each by one rename
    local new=$1 old
    old=$(current_version)
    if [[ -n $old && $old != "$new" ]]; then
        ln -sfn "releases/$old" "$PI_DIR/.previous.tmp"
        mv -T "$PI_DIR/.previous.tmp" "$PI_DIR/previous"
    fi
    ln -sfn "releases/$new" "$PI_DIR/.current.tmp"
    mv -T "$PI_DIR/.current.tmp" "$PI_DIR/current"
    [[ -L $PI_DIR/venv ]] || ln -sfn current/venv "$PI_DIR/venv"
}

CONF_FILES=(config.toml config.example.toml config.toml.new)
CONF_BACKUP=.before-deploy # under CONF_DIR: the files as they were, until the deploy succeeds

install_config() { # RELEASE: install or update the config; never overwrite a user-edited one
    local example=$1/device/config.example.toml cfg=$CONF_DIR/config.toml f
    local pristine=$CONF_DIR/config.example.toml # the defaults we installed last time
    [[ -f $example ]] || return 0
    as_root install -d -m 0755 "$CONF_DIR"
    as_root rm -rf "${CONF_DIR:?}/$CONF_BACKUP"
    as_root install -d -m 0755 "$CONF_DIR/$CONF_BACKUP"
    for f in "${CONF_FILES[@]}"; do
        if [[ -f $CONF_DIR/$f ]]; then as_root cp -p "$CONF_DIR/$f" "$CONF_DIR/$CONF_BACKUP/$f"; fi
    done
    if [[ ! -f $cfg ]]; then
        put_file "$example" "$cfg"
        log "installed the default config as $cfg"
    elif cmp -s "$example" "$pristine"; then
        return 0
    elif cmp -s "$cfg" "$pristine"; then
        put_file "$example" "$cfg"
        log "updated $cfg to the new defaults (it had not been edited)"
    else
        put_file "$example" "$cfg.new"
        log "kept your edited $cfg; the new release's defaults are in $cfg.new (merge them by hand)"
    fi
    put_file "$example" "$pristine"
}

restore_config() { # put the config files back as they were before install_config
    local f backup=$CONF_DIR/$CONF_BACKUP
    [[ -d $backup ]] || return 0
    for f in "${CONF_FILES[@]}"; do
        if [[ -f $backup/$f ]]; then
            as_root mv -f "$backup/$f" "$CONF_DIR/$f"
        else
            as_root rm -f "${CONF_DIR:?}/$f"
        fi
    done
    as_root rm -rf "$backup"
}

install_unit() { # RELEASE: install the unit (paths adjusted to PI_DIR) if it changed
    local src=$1/systemd/digit-reader.service dest=$UNIT_DIR/$SERVICE.service tmp
    tmp=$(mktemp)
    sed "s#$UNIT_PATH_IN_REPO#$PI_DIR#g" "$src" >"$tmp"
    if ! cmp -s "$tmp" "$dest"; then
        [[ -f $dest ]] && as_root cp -p "$dest" "$dest.before-deploy"
        put_file "$tmp" "$dest"
        as_root systemctl daemon-reload
        log "installed $dest"
    fi
    rm -f "$tmp"
    as_root systemctl enable --quiet "$SERVICE"
}

restore_unit() {
    local dest=$UNIT_DIR/$SERVICE.service
    if [[ -f $dest.before-deploy ]]; then
        as_root mv -f "$dest.before-deploy" "$dest"
        as_root systemctl daemon-reload
    fi
}

restart_and_wait() { # restart the service; succeed once systemd reports it active (READY=1 seen)
    local state deadline=$((SECONDS + READY_TIMEOUT))
    as_root systemctl restart --no-block "$SERVICE"
    sleep 1
    while :; do
        state=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
        if [[ $state == active ]]; then
            log "$SERVICE is running: $(systemctl show -p StatusText --value "$SERVICE")"
            return 0
        fi
        if [[ $state == failed ]] || ((SECONDS >= deadline)); then break; fi
        sleep 1
    done
    echo "$SERVICE did not become ready ($state: $(systemctl show -p StatusText --value "$SERVICE"))" >&2
    return 1
}

go_live() { # NEW OLD: switch to NEW and restart; on failure put OLD back, running
    local new=$1 old=$2
    switch_to "$new"
    [[ ${DEPLOY_NO_SYSTEMD:-0} == 1 ]] && { log "current -> $new (DEPLOY_NO_SYSTEMD=1: service not restarted)"; return 0; }
    restart_and_wait && { log "current -> $new"; return 0; }
    if [[ -n $old ]]; then
        switch_to "$old"
        restore_unit
        restore_config
        restart_and_wait || true
    fi
    fail "release $new did not start (journalctl -u $SERVICE); current is back on ${old:-unset}"
}

prune() { # keep the newest $KEEP releases (and always current and previous), then unused venvs
    local cur prev dir name count=0 venv
    cur=$(current_version)
    prev=$(basename "$(readlink "$PI_DIR/previous" 2>/dev/null || true)")
    rm -rf "$PI_DIR"/releases/.incoming-*
    while IFS= read -r dir; do
        name=$(basename "$dir")
        count=$((count + 1))
        if ((count > KEEP)) && [[ $name != "$cur" && $name != "$prev" ]]; then
            rm -rf "$dir"
            log "removed old release $name"
        fi
    done < <(find "$PI_DIR/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' |
        sort -rn | cut -d' ' -f2-)
    for venv in "$PI_DIR"/venvs/*/; do
        venv=${venv%/}
        [[ -d $venv ]] || continue
        if ! { readlink "$PI_DIR"/releases/*/venv 2>/dev/null || true; } | grep -qxF "$venv"; then
            rm -rf "$venv"
            log "removed unused venv $(basename "$venv")"
        fi
    done
}

cmd_activate() { # SRC VERSION|-: SRC is .incoming-* (fresh transfer) or an existing version
    local src=$1 expected=$2 version old release
    need_provisioned
    lock
    [[ -d $PI_DIR/releases/$src ]] || fail "release $src is not on $(hostname); deploy again"
    version=$(tree_hash "$PI_DIR/releases/$src")
    if [[ $expected != - && $version != "$expected" ]]; then
        fail "the transferred release hashes to $version, not $expected (incomplete or altered transfer); deploy again"
    fi
    release=$PI_DIR/releases/$version
    if [[ $src != "$version" ]]; then
        if [[ -d $release ]]; then rm -rf "${PI_DIR:?}/releases/$src"; else mv -T "$PI_DIR/releases/$src" "$release"; fi
    fi
    touch "$release" # release age = deploy order, for pruning
    old=$(current_version)
    if [[ $version == "$old" ]]; then
        rm -rf "$PI_DIR"/releases/.incoming-*
        log "release $version is already current; nothing to do"
        return 0
    fi
    ensure_venv "$release"
    # The config first, so the health check sees what the daemon will read; undone on failure.
    install_config "$release"
    if ! health_check "$release" "$version"; then
        restore_config
        fail "health check failed in release $version (${HEALTH_WHY:-no output}); current is still ${old:-unset}"
    fi
    if [[ ${DEPLOY_FAULT:-} == before-switch ]]; then
        restore_config
        fail "fault injected (DEPLOY_FAULT=before-switch); current is still ${old:-unset}"
    fi
    [[ ${DEPLOY_NO_SYSTEMD:-0} == 1 ]] || install_unit "$release"
    go_live "$version" "$old"
    as_root rm -rf "${CONF_DIR:?}/$CONF_BACKUP"
    if [[ ${DEPLOY_NO_SYSTEMD:-0} != 1 ]]; then as_root rm -f "$UNIT_DIR/$SERVICE.service.before-deploy"; fi
    prune
    log "deployed $version (previous: ${old:-none})"
}

cmd_rollback() {
    need_provisioned
    lock
    local cur prev
    cur=$(current_version)
    prev=$(basename "$(readlink "$PI_DIR/previous" 2>/dev/null || true)")
    [[ -n $prev && -d $PI_DIR/releases/$prev ]] || fail "there is no previous release on $(hostname) to roll back to"
    [[ $prev != "$cur" ]] || fail "previous and current are both $cur; nothing to roll back to"
    go_live "$prev" "$cur"
    log "rolled back from ${cur:-none} to $prev"
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
    tree-hash) tree_hash "$1" ;;
    preflight) cmd_preflight "$@" ;;
    prepare-model) cmd_prepare_model ;;
    activate) cmd_activate "$@" ;;
    rollback) cmd_rollback ;;
    *) fail "unknown command '$cmd'; use tree-hash, preflight, prepare-model, activate or rollback" ;;
    esac
}

main "$@"
