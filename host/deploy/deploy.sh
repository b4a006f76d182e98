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
#   DEPLOY_CONF_DIR=/etc/digit-reader   DEPLOY_UNIT_DIR=/etc/systemd/system
#   DEPLOY_KEEP=3   DEPLOY_RESERVE_MB=50
#   DEPLOY_READY_TIMEOUT=120   DEPLOY_CONNECT_TIMEOUT=10
#   DEPLOY_FAULT=after-rsync|before-switch   tests only: fail at that point
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PROG=deploy
# requirements.py needs Python 3.11+ (tomllib): the project's venv has it, python3 may not.
HOST_PY=${PYTHON:-$REPO/.venv/bin/python}
[[ -x $HOST_PY ]] || HOST_PY=python3
MODEL_FILES=(models/digits.tflite models/digits.json)
# Settings forwarded to remote.sh on the Pi.
FORWARD=(PI_DIR DEPLOY_VENV DEPLOY_NO_SYSTEMD DEPLOY_CONF_DIR DEPLOY_UNIT_DIR DEPLOY_KEEP
    DEPLOY_RESERVE_MB DEPLOY_READY_TIMEOUT DEPLOY_SELFTEST_TIMEOUT DEPLOY_FAULT)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# shellcheck source=host/deploy/lib.sh
source "$HERE/lib.sh"

remote() { # remote CMD ARGS...: run remote.sh on the Pi with the forwarded settings
    local cmd=env name
    for name in "${FORWARD[@]}"; do
        if [[ -n ${!name:-} ]]; then cmd+=" $name=$(printf '%q' "${!name}")"; fi
    done
    run_on_pi "$HERE/remote.sh" "$cmd bash -s --$(printf ' %q' "$@")"
}

transfer() { # LINK_DEST SRC... DEST: resumable rsync (partial files wait in .rsync-partial);
    # files equal to those in LINK_DEST (the current release on the Pi) become hard links.
    local link_dest=$1 dest=${*: -1} rc=0
    local sources=("${@:2:$#-2}")
    rsync -rlt --chmod=D755,F644 --delete --partial-dir=.rsync-partial \
        --link-dest="$link_dest" -e "$RSYNC_RSH" \
        "${sources[@]}" "$PI:$dest/" 2>"$TMP/stderr" || rc=$?
    ((rc == 0)) || die "copying to $PI:$dest failed (rsync exit $rc: $(last_error "$TMP/stderr")); current is unchanged"
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

need_models() {
    local f
    for f in "${MODEL_FILES[@]}"; do
        [[ -f $REPO/$f ]] || die "$f is missing; run 'make train convert' first"
    done
}

stage_release() { # the release tree in $TMP/release; sets VERSION, REQHASH, SIZE_KB
    local stage=$TMP/release
    need_models
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
    local out
    need_models
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
    ssh_setup
    case $cmd in
    deploy) cmd_deploy ;;
    deploy-model) cmd_deploy_model ;;
    rollback) remote rollback ;;
    esac
}

main "$@"
