#!/usr/bin/env bash
# First-time setup of a fresh Raspberry Pi OS Bookworm (64-bit), over ssh with sudo.
#
#   host/deploy/provision.sh          # make provision PI=pi@raspberrypi.local [PI_KEY= PI_DIR=]
#
# On the Pi (as root, idempotent: run it again any time): apt installs python3-venv,
# python3-picamera2, python3-lgpio and rsync; creates the system user digit-reader in the groups
# video and gpio; creates /var/lib/digit-reader (state, the service's working directory),
# /etc/digit-reader with the default config (an existing config.toml is never touched) and
# PI_DIR owned by the ssh user, who deploys into it without root. The ssh user needs
# passwordless sudo, as the first user of Raspberry Pi OS has.
set -euo pipefail

SERVICE_USER=digit-reader
STATE_DIR=/var/lib/digit-reader
CONF_DIR=/etc/digit-reader
APT_PACKAGES=(python3-venv rsync)
# Raspberry Pi OS packages (not in plain Debian): installed where the archive has them.
PI_APT_PACKAGES=(python3-picamera2 python3-lgpio)

log() { echo "provision: $*"; }

# --- on the Pi --------------------------------------------------------------------------------
on_pi() { # DEPLOY_USER PI_DIR CONFIG_BASE64
    local deploy_user=$1 pi_dir=$2 config_b64=$3 pkg available=()
    fail() { echo "error: $*" >&2; exit 1; }
    [[ $(id -u) -eq 0 ]] || fail "provisioning needs root on $(hostname)"
    id "$deploy_user" >/dev/null 2>&1 || fail "the deploy user $deploy_user does not exist on $(hostname)"
    if ! grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
        log "warning: this is not Debian/Raspberry Pi OS Bookworm; continuing"
    fi
    [[ $(uname -m) == aarch64 ]] || log "warning: $(uname -m) is not aarch64 (64-bit); the LiteRT wheels need a 64-bit OS"

    export DEBIAN_FRONTEND=noninteractive
    log "apt-get update"
    apt-get update -qq || fail "apt-get update failed on $(hostname); check its network"
    for pkg in "${PI_APT_PACKAGES[@]}"; do
        if apt-cache show "$pkg" >/dev/null 2>&1; then
            available+=("$pkg")
        else
            log "warning: $pkg is not in this system's archive (not Raspberry Pi OS?); skipped"
        fi
    done
    log "apt-get install ${APT_PACKAGES[*]} ${available[*]}"
    apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" "${available[@]}" >/dev/null ||
        fail "apt-get install failed on $(hostname)"

    getent group gpio >/dev/null || groupadd --system gpio
    getent group video >/dev/null || groupadd --system video
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Digit Reader daemon" "$SERVICE_USER"
        log "created system user $SERVICE_USER"
    fi
    usermod -a -G video,gpio "$SERVICE_USER"

    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE_DIR"
    install -d -o root -g root -m 0755 "$CONF_DIR"
    if [[ ! -f $CONF_DIR/config.toml ]]; then
        base64 -d <<<"$config_b64" >"$CONF_DIR/config.toml.tmp"
        chmod 0644 "$CONF_DIR/config.toml.tmp"
        cp "$CONF_DIR/config.toml.tmp" "$CONF_DIR/config.example.toml"
        mv -f "$CONF_DIR/config.toml.tmp" "$CONF_DIR/config.toml"
        log "installed the default config as $CONF_DIR/config.toml"
    else
        log "kept the existing $CONF_DIR/config.toml"
    fi
    install -d -o "$deploy_user" -g "$(id -gn "$deploy_user")" -m 0755 "$pi_dir"
    log "ready: $deploy_user can deploy into $pi_dir; next: make deploy PI=..."
}

# --- on the laptop ----------------------------------------------------------------------------
main() {
    if [[ ${1:-} == --on-pi ]]; then
        shift
        on_pi "$@"
        return
    fi
    HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    PROG=provision
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    # shellcheck source=host/deploy/lib.sh
    source "$HERE/lib.sh"
    ssh_setup
    local example=$HERE/../../device/config.example.toml user
    [[ -f $example ]] || die "device/config.example.toml is missing from the repository"
    user=${PI%@*}
    # No user@ in PI: whoever ssh logs in as (expanded by the Pi's shell, before sudo).
    # shellcheck disable=SC2016 # expanded on the Pi, not here
    if [[ $user == "$PI" ]]; then user='"$(id -un)"'; else user=$(printf '%q' "$user"); fi
    log "provisioning $PI (sudo on the Pi)"
    run_on_pi "${BASH_SOURCE[0]}" \
        "sudo -n bash -s -- --on-pi $user $(printf '%q' "$PI_DIR") $(base64 -w0 "$example")"
}

main "$@"
