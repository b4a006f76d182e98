#!/usr/bin/env bash
# Deploy Digit Reader to a Raspberry Pi over ssh + rsync (nothing else is needed on either side).
#
#   host/deploy/deploy.sh deploy         # make deploy PI=pi@raspberrypi.local
#   host/deploy/deploy.sh deploy-model   # make deploy-model: only models/, same check-then-switch
#   host/deploy/deploy.sh rollback       # make rollback: current <-> previous
#
# A deploy stages device/ models/digits.{tflite,json} systemd/ and requirements.txt, names the
# release by their content hash, rsyncs it to PI_DIR/releases/.incoming-<version> (resumable,
# --partial-dir), and hands over to remote.sh on the Pi, which checks the hash, renames it to
# releases/<version>, builds or reuses the venv, runs `python -m device.selftest` in the new
# release, installs config/unit if changed, switches `current` by rename, restarts the service
# and waits for READY; on any failure `current` stays on (or goes back to) the old release.
#
# Settings (environment; the Makefile exports the first four):
#   PI=user@host  PI_PORT=22  PI_KEY=~/.ssh/id_ed25519  PI_DIR=/opt/digit-reader
#   PI_SSH_OPTS="-o ..."       extra ssh options (e.g. -o UserKnownHostsFile=...)
#   DEPLOY_VENV=/path/venv     use this venv on the Pi (it must have the device dependencies)
#                              instead of building PI_DIR/venvs/<hash>; for a Pi without PyPI
#                              access and for the loopback tests
#   DEPLOY_NO_SYSTEMD=1        skip installing the unit, restarting and waiting for READY
#   DEPLOY_CONF_DIR=/etc/digit-reader   DEPLOY_KEEP=3   DEPLOY_RESERVE_MB=50
#   DEPLOY_READY_TIMEOUT=120   DEPLOY_CONNECT_TIMEOUT=10
#   DEPLOY_FAULT=after-rsync|before-switch   tests only: fail at that point
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PI=${PI:-}
PI_PORT=${PI_PORT:-22}
PI_KEY=${PI_KEY:-}
PI_DIR=${PI_DIR:-/opt/digit-reader}
HOST_PY=${PYTHON:-python3}
MODEL_FILES=(models/digits.tflite models/digits.json)
# Settings forwarded to remote.sh on the Pi.
FORWARD=(PI_DIR DEPLOY_VENV DEPLOY_NO_SYSTEMD DEPLOY_CONF_DIR DEPLOY_KEEP DEPLOY_RESERVE_MB
    DEPLOY_READY_TIMEOUT DEPLOY_SELFTEST_TIMEOUT DEPLOY_FAULT)

die() { echo "deploy: $*" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

check_settings() {
    [[ -n $PI ]] || die "PI is not set; run: make deploy PI=user@host (e.g. PI=pi@raspberrypi.local)"
    [[ $PI_PORT =~ ^[0-9]+$ ]] || die "PI_PORT=$PI_PORT is not a port number"
    [[ $PI_DIR == /* ]] || die "PI_DIR=$PI_DIR must be an absolute path on the Pi"
    [[ -z $PI_KEY || -r $PI_KEY ]] || die "PI_KEY=$PI_KEY does not exist or cannot be read; point it at your private key"
    for tool in ssh rsync; do
        command -v "$tool" >/dev/null || die "$tool is not installed here; apt-get install openssh-client rsync"
    done
    SSH=(ssh -p "$PI_PORT" -o BatchMode=yes -o ConnectTimeout="${DEPLOY_CONNECT_TIMEOUT:-10}"
        -o StrictHostKeyChecking=accept-new)
    [[ -n $PI_KEY ]] && SSH+=(-i "$PI_KEY" -o IdentitiesOnly=yes)
    local extra=()
    read -r -a extra <<<"${PI_SSH_OPTS:-}"
    SSH+=("${extra[@]}")
    # rsync -e takes one string and splits it on spaces, honouring quotes but not backslashes.
    RSYNC_RSH=""
    local arg
    for arg in "${SSH[@]}"; do
        [[ $arg != *"'"* ]] || die "ssh option $arg contains a single quote, which rsync -e cannot pass"
        RSYNC_RSH+="'$arg' "
    done
}

remote() { # remote CMD ARGS...: run remote.sh on the Pi; errors become one line and exit 1
    local cmd name rc=0 msg
    cmd="env"
    for name in "${FORWARD[@]}"; do
        [[ -n ${!name:-} ]] && cmd+=" $name=$(printf '%q' "${!name}")"
    done
    cmd+=" bash -s --$(printf ' %q' "$@")"
    "${SSH[@]}" "$PI" "$cmd" <"$HERE/remote.sh" 2>"$TMP/stderr" || rc=$?
    ((rc == 0)) && return 0
    msg=$(grep -v -e '^Warning: Permanently added' -e '^[[:space:]]*$' "$TMP/stderr" | tail -n 1)
    if ((rc == 255)); then
        case $msg in
        *"Permission denied"*) die "ssh refused the login to $PI ($msg); check PI_KEY or run ssh-copy-id -p $PI_PORT $PI" ;;
        *"Host key verification failed"* | *"REMOTE HOST IDENTIFICATION"*) die "the host key of $PI changed; if the Pi was reinstalled run: ssh-keygen -R ${PI#*@}" ;;
        *) die "cannot reach $PI on port $PI_PORT over ssh (${msg:-ssh exited 255}); is it on and on the network?" ;;
        esac
    fi
    die "${msg#error: }"
}

transfer() { # LINK_DEST SRC... DEST: resumable rsync (partial files wait in .rsync-partial);
    # files equal to those in LINK_DEST (the current release on the Pi) become hard links.
    local link_dest=$1 dest=${*: -1} rc=0 msg
    local sources=("${@:2:$#-2}")
    rsync -rlt --chmod=D755,F644 --delete --partial-dir=.rsync-partial \
        --link-dest="$link_dest" -e "$RSYNC_RSH" \
        "${sources[@]}" "$PI:$dest/" 2>"$TMP/stderr" || rc=$?
    ((rc == 0)) && return 0
    msg=$(grep -v -e '^Warning: Permanently added' -e '^[[:space:]]*$' "$TMP/stderr" | tail -n 1)
    die "copying to $PI:$dest failed (rsync exit $rc: $msg); current is unchanged"
}

fault() { # tests only: stop at the named point
    [[ ${DEPLOY_FAULT:-} != "$1" ]] || die "fault injected (DEPLOY_FAULT=$1); current is unchanged"
}

preflight() { # VERSION KB REQHASH -> sets CURRENT, HAVE
    local out
    out=$(remote preflight "$@") || exit 1
    CURRENT=$(sed -n 's/^current=//p' <<<"$out")
    HAVE=$(sed -n 's/^have=//p' <<<"$out")
}

stage_release() { # the release tree in $TMP/release; sets VERSION, REQHASH, SIZE_KB
    local stage=$TMP/release f
    for f in "${MODEL_FILES[@]}"; do
        [[ -f $REPO/$f ]] || die "$f is missing; run 'make train convert' first"
    done
    mkdir -p "$stage/models"
    chmod 0755 "$stage"
    rsync -a --exclude __pycache__ --exclude '*.pyc' "$REPO/device" "$REPO/systemd" "$stage/"
    cp -p "${MODEL_FILES[@]/#/$REPO/}" "$stage/models/"
    "$HOST_PY" "$HERE/requirements.py" >"$stage/requirements.txt" ||
        die "cannot read the device requirements from pyproject.toml"
    VERSION=$(bash "$HERE/remote.sh" tree-hash "$stage")
    REQHASH=$(sha256sum <"$stage/requirements.txt" | cut -c1-16)
    SIZE_KB=$(du -sk "$stage" | cut -f1)
}

cmd_deploy() {
    stage_release
    echo "deploy: release $VERSION ($SIZE_KB KB) -> $PI:$PI_DIR"
    preflight "$VERSION" "$SIZE_KB" "$REQHASH"
    if [[ $CURRENT == "$VERSION" ]]; then
        echo "deploy: $VERSION is already the current release on $PI; nothing to do"
        return 0
    fi
    local src=$VERSION
    if [[ $HAVE != 1 ]]; then
        src=.incoming-$VERSION
        transfer "$PI_DIR/current/" "$TMP/release/" "$PI_DIR/releases/$src"
    fi
    fault after-rsync
    remote activate "$src" "$VERSION"
}

cmd_deploy_model() {
    local f out
    for f in "${MODEL_FILES[@]}"; do
        [[ -f $REPO/$f ]] || die "$f is missing; run 'make train convert' first"
    done
    preflight - "$(du -sk "${MODEL_FILES[@]/#/$REPO/}" | awk '{ s += $1 } END { print s }')" -
    [[ -n $CURRENT ]] || die "there is no release on $PI yet; run 'make deploy' first"
    out=$(remote prepare-model) || exit 1
    echo "deploy: updating the model of release $CURRENT on $PI"
    transfer "$PI_DIR/current/models/" "${MODEL_FILES[@]/#/$REPO/}" "$PI_DIR/releases/${out#incoming=}/models"
    fault after-rsync
    remote activate "${out#incoming=}" -
}

main() {
    local cmd=${1:-}
    case $cmd in
    deploy | deploy-model | rollback) ;;
    *) die "usage: deploy.sh deploy|deploy-model|rollback (settings: PI, PI_PORT, PI_KEY, PI_DIR)" ;;
    esac
    check_settings
    case $cmd in
    deploy) cmd_deploy ;;
    deploy-model) cmd_deploy_model ;;
    rollback) remote rollback ;;
    esac
}

main "$@"
