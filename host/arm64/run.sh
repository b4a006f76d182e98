#!/usr/bin/env bash
# Run the device test suite and a reading of the recorded frames in a Debian Bookworm arm64
# root filesystem under qemu-user: the closest thing to a Raspberry Pi 4/5 without one.
#
#   sudo host/arm64/run.sh            # make test-arm64
#
# The rootfs (debootstrap --foreign + second stage under qemu) and its venv with the device
# dependencies are cached under ARM64_CACHE (default ~/.cache/digit-reader/arm64) and rebuilt
# only when missing or when the requirement set in pyproject.toml changes. Needs root (chroot,
# mount), debootstrap, qemu-user-static and binfmt_misc. Environment:
#   ARM64_CACHE   cache directory            ARM64_MIRROR  Debian mirror (deb.debian.org)
#   ARM64_TESTS   test files to run (space separated; default: the tests that need only device/)
#   ARM64_FRAMES  recorded frames with truth.json to read (default tests/frames)
#   ARM64_HOST_PYTHON  this machine's Python with the project installed (default .venv/bin/python)
#   ARM64_REBUILD=1  throw the cached rootfs away first
set -euo pipefail

die() { echo "test-arm64: $*" >&2; exit 1; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${ARM64_CACHE:-${HOME:-/root}/.cache/digit-reader/arm64}
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
ROOTFS=$CACHE/rootfs
VENV_IN=/opt/venv            # path inside the rootfs
WORK_IN=/work                # the copied project inside the rootfs
FRAMES=${ARM64_FRAMES:-$REPO/tests/frames}  # recorded frames + truth.json to read on arm64
# The project's venv on this machine: reads pyproject.toml (tomllib), downloads the arm64 wheels
# (pip) and reads the frames natively for the reference readings (device dependencies).
HOST_PY=${ARM64_HOST_PYTHON:-$REPO/.venv/bin/python}
# qemu's default aarch64 CPU lacks features the Pi's Cortex-A72 has and LiteRT's kernels expect.
export QEMU_CPU=${QEMU_CPU:-cortex-a72}

START=$SECONDS
stage() { # announce a step, with the time elapsed since the start
    echo "test-arm64: [$((SECONDS - START)) s] $*"
}

# --- preconditions ---------------------------------------------------------------------------
[[ -x $HOST_PY ]] || die "$HOST_PY is missing; run 'make setup' first (or set ARM64_HOST_PYTHON)"
[[ $(id -u) -eq 0 ]] || die "needs root for chroot and mount; run it with sudo (sudo make test-arm64)"
for tool in debootstrap chroot mount umount rsync; do
    command -v "$tool" >/dev/null || die "$tool is not installed; apt-get install debootstrap qemu-user-static binfmt-support rsync"
done

# --- binfmt_misc: the kernel must hand aarch64 ELF files to qemu ----------------------------
BINFMT=/proc/sys/fs/binfmt_misc
if [[ ! -e $BINFMT/register ]]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null ||
        die "binfmt_misc is not mounted and cannot be (container without privileges?); run on a host with binfmt_misc"
fi
if [[ ! -e $BINFMT/qemu-aarch64 ]]; then
    command -v update-binfmts >/dev/null || die "qemu-aarch64 is not registered with binfmt_misc; apt-get install qemu-user-static binfmt-support"
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
[[ -e $BINFMT/qemu-aarch64 ]] || die "qemu-aarch64 could not be registered with binfmt_misc; apt-get install qemu-user-static binfmt-support"
grep -qx enabled "$BINFMT/qemu-aarch64" || die "the qemu-aarch64 binfmt entry is disabled; run: update-binfmts --enable qemu-aarch64"
QEMU=$(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64")

# --- mounts, always undone -------------------------------------------------------------------
MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
    done
    MOUNTS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_chroot() { # $1 = rootfs; /proc with an aarch64 cpuinfo, /dev; deliberately no /sys
    local root=$1
    mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
    # LiteRT (via cpuinfo) parses /proc/cpuinfo and crashes on the host's x86 one; give it a Pi 4's.
    mount --bind "$CPUINFO" "$root/proc/cpuinfo" && MOUNTS+=("$root/proc/cpuinfo")
    mount --bind /dev "$root/dev" && MOUNTS+=("$root/dev")
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

in_chroot() { # run a command in the rootfs with a clean environment
    chroot "$ROOTFS" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" PYTHONDONTWRITEBYTECODE=1 "$@"
}

mkdir -p "$CACHE"
CPUINFO=$CACHE/cpuinfo
{
    for cpu in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\n' "$cpu"
        printf 'Features\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n'
        printf 'CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4 (emulated)\n'
} >"$CPUINFO"

# --- stage 1: the rootfs ---------------------------------------------------------------------
[[ ${ARM64_REBUILD:-0} == 1 ]] && rm -rf "$ROOTFS"
# Debian packages in the rootfs; changing the list rebuilds it. mosquitto: the MQTT tests' broker.
ROOTFS_PACKAGES=python3,python3-venv,ca-certificates,mosquitto
if [[ $(cat "$ROOTFS/.digit-reader-rootfs" 2>/dev/null) != "$ROOTFS_PACKAGES" ]]; then
    stage "building a Debian $SUITE arm64 rootfs in $ROOTFS (first run only; several minutes)"
    tmp=$CACHE/rootfs.partial
    rm -rf "$tmp" "$ROOTFS"
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include="$ROOTFS_PACKAGES" "$SUITE" "$tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap (first stage) failed; see $CACHE/debootstrap.log"
    # With the binfmt 'F' flag the kernel already holds qemu open; without it the chroot needs a copy.
    if [[ -n $QEMU && -x $QEMU ]] && ! grep -q '^flags:.*F' "$BINFMT/qemu-aarch64"; then
        mkdir -p "$tmp$(dirname "$QEMU")" && cp "$QEMU" "$tmp$QEMU"
    fi
    chroot "$tmp" /debootstrap/debootstrap --second-stage >>"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap (second stage, under qemu) failed; see $CACHE/debootstrap.log"
    printf '%s\n' "$ROOTFS_PACKAGES" >"$tmp/.digit-reader-rootfs"
    mv -T "$tmp" "$ROOTFS"
else
    stage "reusing the arm64 rootfs in $ROOTFS"
fi
[[ $(chroot "$ROOTFS" /usr/bin/uname -m) == aarch64 ]] || die "the rootfs does not run as aarch64; check the qemu-aarch64 binfmt entry"

mount_chroot "$ROOTFS"
PY_VERSION=$(in_chroot /usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# --- stage 2: the venv with the device dependencies (same bounds as pyproject.toml) ---------
REQS=$("$HOST_PY" "$REPO/host/deploy/requirements.py" --with pytest) ||
    die "cannot read the device requirements from pyproject.toml"
REQ_HASH=$(printf '%s\n' "$REQS" | sha256sum | cut -c1-16)
if [[ $(cat "$ROOTFS$VENV_IN/.requirements-hash" 2>/dev/null) != "$REQ_HASH" ]]; then
    # The wheels are fetched by the host's pip (native speed, and the host's proxy/CA settings),
    # then installed offline inside the rootfs.
    stage "downloading arm64 wheels for the device dependencies into $CACHE/wheels"
    printf '%s\n' "$REQS" >"$CACHE/requirements.txt"
    platforms=(--platform manylinux2014_aarch64)
    for glibc in $(seq 17 36); do platforms+=(--platform "manylinux_2_${glibc}_aarch64"); done
    "$HOST_PY" -m pip download --quiet --dest "$CACHE/wheels" --only-binary=:all: \
        --implementation cp --python-version "$PY_VERSION" "${platforms[@]}" \
        -r "$CACHE/requirements.txt" >"$CACHE/pip.log" 2>&1 ||
        die "pip download of the arm64 wheels failed; see $CACHE/pip.log"
    stage "installing them into $VENV_IN inside the rootfs (slow under qemu)"
    rm -rf "$ROOTFS$VENV_IN" "$ROOTFS/wheels"
    mkdir -p "$ROOTFS/wheels"
    mount --bind "$CACHE/wheels" "$ROOTFS/wheels" && MOUNTS+=("$ROOTFS/wheels")
    cp "$CACHE/requirements.txt" "$ROOTFS/tmp/requirements.txt"
    in_chroot /usr/bin/python3 -m venv "$VENV_IN"
    in_chroot "$VENV_IN/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-index --find-links /wheels -r /tmp/requirements.txt >>"$CACHE/pip.log" 2>&1 ||
        die "pip install in the arm64 rootfs failed; see $CACHE/pip.log"
    printf '%s\n' "$REQ_HASH" >"$ROOTFS$VENV_IN/.requirements-hash"
else
    stage "reusing the arm64 venv ($REQ_HASH)"
fi

# --- stage 3: copy the project (device code, model, frames, device-only tests) ---------------
[[ -f $REPO/models/digits.tflite && -f $REPO/models/digits.json ]] ||
    die "models/digits.tflite or models/digits.json is missing; run 'make train convert' first"
[[ -f $FRAMES/truth.json ]] || die "$FRAMES/truth.json is missing; run 'make frames' first"
stage "copying device/ models/ the frames and the device tests into the rootfs"
if [[ -n ${ARM64_TESTS:-} ]]; then
    read -r -a tests <<<"$ARM64_TESTS"
else
    # Device tests: those that import nothing of TensorFlow, Keras, the browser or host/ (except
    # host.mnist, plain NumPy, which some device tests use for real digits), and are not about
    # host tooling (deploy, systemd, shellcheck, the GPU bundle, this script).
    tests=()
    for f in "$REPO"/tests/test_*.py; do
        case $(basename "$f") in
        test_deploy.py | test_systemd_unit.py | test_shellcheck.py | test_gpu_bundle.py | test_arm64.py) continue ;;
        esac
        grep -qP '^\s*(from|import)\s+(tensorflow|keras|playwright)\b|^\s*(from|import)\s+host\.(?!mnist\b)|^\s*import\s+host\b' "$f" &&
            continue
        tests+=("tests/$(basename "$f")")
    done
fi
((${#tests[@]})) || die "no device tests found under tests/"
mkdir -p "$ROOTFS$WORK_IN/tests/frames" "$ROOTFS$WORK_IN/host" "$ROOTFS$WORK_IN/data"
rsync -a --delete --exclude __pycache__ "$REPO/device" "$REPO/models" "$REPO/pyproject.toml" "$ROOTFS$WORK_IN/"
rsync -a --delete "$FRAMES/" "$ROOTFS$WORK_IN/tests/frames/"
cp "$REPO/host/__init__.py" "$REPO/host/errors.py" "$REPO/host/mnist.py" "$ROOTFS$WORK_IN/host/"
if [[ -d $REPO/data/mnist ]]; then rsync -a "$REPO/data/mnist" "$ROOTFS$WORK_IN/data/"; fi
find "$ROOTFS$WORK_IN/tests" -maxdepth 1 -name '*.py' -delete
cp "${tests[@]/#/$REPO/}" "$ROOTFS$WORK_IN/tests/"
# Helpers the tests import (conftest.py, fixtures_*.py): every non-test module in tests/.
for f in "$REPO"/tests/*.py; do
    [[ $(basename "$f") == test_* ]] || cp "$f" "$ROOTFS$WORK_IN/tests/"
done

# --- stage 4: run -----------------------------------------------------------------------------
stage "running ${#tests[@]} device test file(s) under qemu-aarch64 (QEMU_CPU=$QEMU_CPU)"
in_chroot /bin/sh -c "cd $WORK_IN && uname -m && $VENV_IN/bin/python -c \
'import platform, numpy, cv2, ai_edge_litert; print(platform.machine(), \"numpy\", numpy.__version__, \"cv2\", cv2.__version__)'" ||
    die "the device dependencies do not import in the arm64 rootfs"
test_rc=0
# Emulation is several times slower: tests that wait for a broker or a process scale their
# timeouts by DIGIT_READER_TIMEOUT_SCALE.
in_chroot /bin/sh -c "cd $WORK_IN && GPIOZERO_PIN_FACTORY=mock DIGIT_READER_TIMEOUT_SCALE=5 $VENV_IN/bin/python -m pytest -q -p no:cacheprovider \
    -m 'not slow and not hardware and not arm64' $(printf '%q ' "${tests[@]}")" || test_rc=$?

stage "reading the frames natively (reference) and on arm64; the texts must agree"
cp "$REPO/host/arm64/read_frames.py" "$ROOTFS$WORK_IN/"
# The reference reads the copy in the rootfs, not the working tree, which may have changed since.
"$HOST_PY" "$ROOTFS$WORK_IN/read_frames.py" "$ROOTFS$WORK_IN" "$ROOTFS$WORK_IN/tests/frames" \
    --out "$ROOTFS$WORK_IN/reference.json" 2>/dev/null ||
    die "reading the frames on this machine failed; run: $HOST_PY host/arm64/read_frames.py . $FRAMES"
read_rc=0
in_chroot "$VENV_IN/bin/python" "$WORK_IN/read_frames.py" "$WORK_IN" "$WORK_IN/tests/frames" \
    --reference "$WORK_IN/reference.json" 2>/dev/null || read_rc=$?

stage "done (tests rc=$test_rc, frames rc=$read_rc)"
((test_rc == 0)) || die "device tests failed on arm64 (rc=$test_rc)"
((read_rc == 0)) || die "the arm64 readings of the frames differ from this machine's (rc=$read_rc)"
echo "test-arm64: OK"
