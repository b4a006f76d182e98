#!/usr/bin/env bash
# Shared by deploy.sh and provision.sh (sourced): settings checks, the ssh command line, and
# running a script on the Pi with ssh's and the script's errors turned into one line.
# Expects PROG (the message prefix) and TMP (a scratch directory) to be set by the caller.

PI=${PI:-}
PI_PORT=${PI_PORT:-22}
PI_KEY=${PI_KEY:-}
PI_DIR=${PI_DIR:-/opt/digit-reader}

die() { echo "$PROG: $*" >&2; exit 1; }

ssh_setup() { # check PI* and build SSH (array) and RSYNC_RSH (string for rsync -e)
    [[ -n $PI ]] || die "PI is not set; run: make ${PROG} PI=user@host (e.g. PI=pi@raspberrypi.local)"
    [[ $PI_PORT =~ ^[0-9]+$ ]] || die "PI_PORT=$PI_PORT is not a port number"
    [[ $PI_DIR == /* ]] || die "PI_DIR=$PI_DIR must be an absolute path on the Pi"
    [[ -z $PI_KEY || -r $PI_KEY ]] || die "PI_KEY=$PI_KEY does not exist or cannot be read; point it at your private key"
    local tool
    for tool in ssh rsync; do
        command -v "$tool" >/dev/null || die "$tool is not installed here; apt-get install openssh-client rsync"
    done
    SSH=(ssh -p "$PI_PORT" -o BatchMode=yes -o ConnectTimeout="${DEPLOY_CONNECT_TIMEOUT:-10}"
        -o StrictHostKeyChecking=accept-new)
    if [[ -n $PI_KEY ]]; then SSH+=(-i "$PI_KEY" -o IdentitiesOnly=yes); fi
    local extra=() arg
    read -r -a extra <<<"${PI_SSH_OPTS:-}"
    SSH+=("${extra[@]}")
    # rsync -e takes one string and splits it on spaces, honouring quotes but not backslashes.
    RSYNC_RSH=""
    for arg in "${SSH[@]}"; do
        [[ $arg != *"'"* ]] || die "ssh option $arg contains a single quote, which rsync -e cannot pass"
        RSYNC_RSH+="'$arg' "
    done
}

last_error() { # the last meaningful line of a captured stderr
    tr -d '\r' <"$1" | grep -v -e '^Warning: Permanently added' -e '^[[:space:]]*$' | tail -n 1
}

run_on_pi() { # SCRIPT COMMAND: run COMMAND on the Pi with SCRIPT on its stdin; errors -> die
    local rc=0 msg
    "${SSH[@]}" "$PI" "$2" <"$1" 2>"$TMP/stderr" || rc=$?
    ((rc == 0)) && return 0
    msg=$(last_error "$TMP/stderr")
    if ((rc == 255)); then
        case $msg in
        *"Permission denied"*) die "ssh refused the login to $PI ($msg); check PI_KEY or run: ssh-copy-id -p $PI_PORT $PI" ;;
        *"Host key verification failed"* | *"REMOTE HOST IDENTIFICATION"*) die "the host key of $PI has changed; if the Pi was reinstalled run: ssh-keygen -R ${PI#*@}" ;;
        *) die "cannot reach $PI on port $PI_PORT over ssh (${msg:-ssh exited 255}); is it on and on the network?" ;;
        esac
    fi
    die "${msg#error: }"
}
