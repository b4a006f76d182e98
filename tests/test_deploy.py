"""host/deploy: deploy, deploy-model and rollback against a real sshd on loopback (a fake Pi).

sshd runs as the current user on 127.0.0.1 with throw-away keys; each test deploys a copy of
the project into its own PI_DIR. The service manager is left out (DEPLOY_NO_SYSTEMD=1) and the
Pi's venv is this project's .venv (DEPLOY_VENV), both documented options of deploy.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SSHD = Path("/usr/sbin/sshd")
DEPLOY_TIMEOUT_S = 120
SSHD_START_TIMEOUT_S = 10.0

pytestmark = pytest.mark.skipif(
    not SSHD.exists() or not shutil.which("ssh") or not shutil.which("rsync"),
    reason="needs Debian's openssh-server (/usr/sbin/sshd), openssh-client and rsync",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


# systemctl on the fake Pi: logs its arguments; is-active answers from a file the test writes.
FAKE_SYSTEMCTL = """#!/bin/bash
echo "$*" >>{log}
case $1 in
is-active) state=$(cat {state}); echo "$state"; [[ $state == active ]] ;;
show) echo "fake: reading digits" ;;
esac
"""


@dataclass
class FakePi:
    """An sshd on loopback and the client settings to reach it."""

    root: Path
    port: int
    key: Path
    user: str

    def env(self, pi_dir: Path, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PI", "DEPLOY_"))}
        env.update(
            PI=f"{self.user}@127.0.0.1",
            PI_PORT=str(self.port),
            PI_KEY=str(self.key),
            PI_DIR=str(pi_dir),
            PI_SSH_OPTS=f"-F /dev/null -o UserKnownHostsFile={self.root}/known_hosts",
            DEPLOY_VENV=str(Path(sys.prefix)),
            DEPLOY_NO_SYSTEMD="1",
            DEPLOY_CONF_DIR=str(pi_dir.parent / "etc-digit-reader"),
            PYTHON=sys.executable,
        )
        env.update(extra)
        return env


@pytest.fixture(scope="module")
def fake_pi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePi]:
    root = tmp_path_factory.mktemp("fakepi")
    _keygen(root / "host_key")
    _keygen(root / "client_key")
    shutil.copy(root / "client_key.pub", root / "authorized_keys")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    port = _free_port()
    (root / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root}/host_key",
                f"PidFile {root}/sshd.pid",
                f"AuthorizedKeysFile {root}/authorized_keys",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user}",
                "LogLevel ERROR",
                # A stand-in systemctl comes first on the fake Pi's PATH (see fake_systemctl).
                f"SetEnv PATH={root}/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                "",
            ]
        )
    )
    (root / "bin").mkdir()
    fake = root / "bin" / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(log=root / "systemctl.log", state=root / "service.state"))
    fake.chmod(0o755)
    if os.geteuid() == 0:
        # sshd started by root insists on its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (root / "sshd.log").open("w")
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + SSHD_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited at start: {(root / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not start listening within 10 s")
                time.sleep(0.1)
        yield FakePi(root, port, root / "client_key", user)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def make_source(dest: Path) -> Path:
    """A copy of what a deploy reads from the project (so tests can change it)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("device", "systemd", "host/deploy"):
        shutil.copytree(REPO / part, dest / part, ignore=ignore)
    (dest / "models").mkdir()
    for name in ("digits.tflite", "digits.json"):
        shutil.copy2(REPO / "models" / name, dest / "models" / name)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    return dest


def run_deploy(src: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(src / "host/deploy/deploy.sh"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEPLOY_TIMEOUT_S,
        check=False,
    )


def current(pi_dir: Path) -> str:
    return os.readlink(pi_dir / "current")


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def deployed(fake_pi: FakePi, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One good deploy, done once: (source tree, PI_DIR); tests work on copies of PI_DIR."""
    base = tmp_path_factory.mktemp("deployed")
    src = make_source(base / "src")
    pi_dir = base / "pi"
    pi_dir.mkdir()
    result = run_deploy(src, "deploy", fake_pi.env(pi_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    return src, pi_dir


@pytest.fixture
def pi(deployed: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the deployed PI_DIR (and its config dir) plus a private source tree."""
    pi_dir = deployed[1]
    shutil.copytree(pi_dir, tmp_path / "pi", symlinks=True)
    conf = pi_dir.parent / "etc-digit-reader"
    shutil.copytree(conf, tmp_path / "etc-digit-reader", symlinks=True)
    return make_source(tmp_path / "src"), tmp_path / "pi"


def test_deploy_creates_a_release_and_points_current_at_it(deployed: tuple[Path, Path]) -> None:
    src, pi_dir = deployed
    target = current(pi_dir)
    assert target.startswith("releases/")
    release = pi_dir / target
    for rel in (
        "device/selftest.py",
        "models/digits.tflite",
        "models/digits.json",
        "systemd/digit-reader.service",
        "requirements.txt",
    ):
        assert (release / rel).is_file(), rel
    assert (release / "models/digits.tflite").read_bytes() == (
        src / "models/digits.tflite"
    ).read_bytes()
    assert "tensorflow" not in (release / "requirements.txt").read_text()
    assert (release / "venv/bin/python").exists()
    assert not list((pi_dir / "releases").glob(".incoming-*"))
    conf = pi_dir.parent / "etc-digit-reader"
    assert (conf / "config.toml").read_bytes() == (src / "device/config.example.toml").read_bytes()


def test_redeploy_without_changes_is_a_successful_no_op(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    result = run_deploy(src, "deploy", fake_pi.env(pi_dir))
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert current(pi_dir) == before
    assert len(list((pi_dir / "releases").iterdir())) == 1


def test_deploy_refuses_a_model_that_does_not_match_its_manifest(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    model = src / "models/digits.tflite"
    model.write_bytes(model.read_bytes() + b"\0")  # the manifest's sha256 no longer matches
    result = run_deploy(src, "deploy", fake_pi.env(pi_dir))
    line = one_line_error(result)
    assert "health check failed" in line and "sha256" in line
    assert current(pi_dir) == before
    assert not (pi_dir / "previous").exists()


def test_changed_release_goes_live_and_rollback_returns_to_the_previous(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    first = current(pi_dir)
    conf = pi_dir.parent / "etc-digit-reader"
    example = src / "device/config.example.toml"
    example.write_text(example.read_text() + "\n# new defaults\n")
    env = fake_pi.env(pi_dir)
    result = run_deploy(src, "deploy", env)
    assert result.returncode == 0, result.stderr
    second = current(pi_dir)
    assert second != first
    assert (pi_dir / second / "device/config.example.toml").read_text() == example.read_text()
    assert os.readlink(pi_dir / "previous") == first
    # The installed config had not been edited, so it follows the new defaults.
    assert (conf / "config.toml").read_text() == example.read_text()
    assert not (conf / "config.toml.new").exists()
    # Unchanged files are hard links to the previous release, not copies.
    assert (pi_dir / second / "models/digits.tflite").stat().st_ino == (
        pi_dir / first / "models/digits.tflite"
    ).stat().st_ino

    result = run_deploy(src, "rollback", env)
    assert result.returncode == 0, result.stderr
    assert current(pi_dir) == first
    assert os.readlink(pi_dir / "previous") == second


def test_rollback_without_a_previous_release_fails_in_one_line(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    line = one_line_error(run_deploy(src, "rollback", fake_pi.env(pi_dir)))
    assert "no previous release" in line
    assert current(pi_dir) == before


@pytest.mark.parametrize("fault", ["after-rsync", "before-switch"])
def test_a_deploy_that_dies_before_the_switch_leaves_current_alone(
    fake_pi: FakePi, pi: tuple[Path, Path], fault: str
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    (src / "device/extra.txt").write_text("new file\n")
    result = run_deploy(src, "deploy", fake_pi.env(pi_dir, DEPLOY_FAULT=fault))
    assert "fault injected" in one_line_error(result)
    assert current(pi_dir) == before
    assert not (pi_dir / before / "device/extra.txt").exists()


def test_user_edited_config_is_kept_and_new_defaults_go_beside_it(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    conf = pi_dir.parent / "etc-digit-reader"
    edited = (conf / "config.toml").read_text().replace("green = 17", "green = 5")
    assert "green = 5" in edited
    (conf / "config.toml").write_text(edited)
    example = src / "device/config.example.toml"
    example.write_text(example.read_text() + "\n# new defaults\n")
    result = run_deploy(src, "deploy", fake_pi.env(pi_dir))
    assert result.returncode == 0, result.stderr
    assert (conf / "config.toml").read_text() == edited
    assert (conf / "config.toml.new").read_text() == example.read_text()
    assert "config.toml.new" in result.stdout


def test_a_config_the_new_release_rejects_stops_the_deploy_and_is_left_as_it_was(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    conf = pi_dir.parent / "etc-digit-reader"
    (conf / "config.toml").write_text((conf / "config.toml").read_text() + "\n[camera]\nfps = 5\n")
    files_before = {p.name: p.read_bytes() for p in conf.iterdir()}
    example = src / "device/config.example.toml"
    example.write_text(example.read_text() + "\n# new defaults\n")  # would add config.toml.new
    line = one_line_error(run_deploy(src, "deploy", fake_pi.env(pi_dir)))
    assert "health check failed" in line and "camera" in line
    assert current(pi_dir) == before
    assert {p.name: p.read_bytes() for p in conf.iterdir()} == files_before


def test_old_releases_beyond_the_keep_count_and_leftovers_are_removed(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    first = current(pi_dir)
    releases = pi_dir / "releases"
    # An older release (neither current nor previous), a dead transfer and an unused venv.
    shutil.copytree(pi_dir / first, releases / "0ld0ld0ld0ld", symlinks=True)
    os.utime(releases / "0ld0ld0ld0ld", (1_000_000_000, 1_000_000_000))
    (releases / ".incoming-deadbeef0000/device").mkdir(parents=True)
    (pi_dir / "venvs/unused0000000000").mkdir(parents=True)
    (src / "device/extra.txt").write_text("new file\n")
    result = run_deploy(src, "deploy", fake_pi.env(pi_dir, DEPLOY_KEEP="2"))
    assert result.returncode == 0, result.stderr
    second = current(pi_dir)
    assert sorted(p.name for p in releases.iterdir()) == sorted(
        Path(v).name for v in (first, second)
    )
    assert not (pi_dir / "venvs/unused0000000000").exists()


def test_deploy_model_replaces_only_the_model_files(fake_pi: FakePi, pi: tuple[Path, Path]) -> None:
    src, pi_dir = pi
    first = current(pi_dir)
    manifest = src / "models/digits.json"
    data = json.loads(manifest.read_text())
    data["note"] = "same weights, new manifest"
    manifest.write_text(json.dumps(data, indent=2))
    (src / "device/selftest.py").write_text("raise SystemExit('device/ must not be deployed')\n")
    result = run_deploy(src, "deploy-model", fake_pi.env(pi_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    second = current(pi_dir)
    assert second != first
    assert json.loads((pi_dir / second / "models/digits.json").read_text())["note"]
    # device/ is the previous release's, shared by hard link.
    old_code, new_code = (pi_dir / r / "device/selftest.py" for r in (first, second))
    assert new_code.stat().st_ino == old_code.stat().st_ino


def test_deploy_model_refuses_a_broken_model(fake_pi: FakePi, pi: tuple[Path, Path]) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    (src / "models/digits.tflite").write_bytes(b"not a model")
    line = one_line_error(run_deploy(src, "deploy-model", fake_pi.env(pi_dir)))
    assert "health check failed" in line
    assert current(pi_dir) == before


def test_unreachable_host_fails_in_one_line(fake_pi: FakePi, tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    env = fake_pi.env(tmp_path / "pi", PI_PORT=str(_free_port()), DEPLOY_CONNECT_TIMEOUT="3")
    assert "cannot reach" in one_line_error(run_deploy(src, "deploy", env))


def test_wrong_key_fails_in_one_line(fake_pi: FakePi, tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    _keygen(tmp_path / "other_key")
    env = fake_pi.env(tmp_path / "pi", PI_KEY=str(tmp_path / "other_key"))
    assert "refused the login" in one_line_error(run_deploy(src, "deploy", env))


def test_unprovisioned_pi_fails_in_one_line(fake_pi: FakePi, tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    line = one_line_error(run_deploy(src, "deploy", fake_pi.env(tmp_path / "missing")))
    assert "make provision" in line
    assert not (tmp_path / "missing").exists()


def test_no_space_left_fails_in_one_line_before_copying(
    fake_pi: FakePi, pi: tuple[Path, Path]
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    (src / "device/extra.txt").write_text("new file\n")
    env = fake_pi.env(pi_dir, DEPLOY_RESERVE_MB=str(1 << 40))  # more than any disk has free
    assert "no space left" in one_line_error(run_deploy(src, "deploy", env))
    assert current(pi_dir) == before
    assert not list((pi_dir / "releases").glob(".incoming-*"))


def test_missing_pi_setting_is_explained(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k != "PI"}
    assert "PI is not set" in one_line_error(run_deploy(src, "deploy", env))


@pytest.fixture
def systemd_env(fake_pi: FakePi, pi: tuple[Path, Path]) -> dict[str, str]:
    """Deploy settings with the service-manager steps on, against the stand-in systemctl."""
    pi_dir = pi[1]
    (fake_pi.root / "systemctl.log").write_text("")
    (fake_pi.root / "service.state").write_text("active")
    env = fake_pi.env(
        pi_dir, DEPLOY_UNIT_DIR=str(pi_dir.parent / "units"), DEPLOY_READY_TIMEOUT="3"
    )
    del env["DEPLOY_NO_SYSTEMD"]
    (pi_dir.parent / "units").mkdir()
    return env


def test_with_systemd_the_unit_is_installed_and_the_service_restarted(
    fake_pi: FakePi, pi: tuple[Path, Path], systemd_env: dict[str, str]
) -> None:
    src, pi_dir = pi
    (src / "device/extra.txt").write_text("new file\n")
    result = run_deploy(src, "deploy", systemd_env)
    assert result.returncode == 0, result.stdout + result.stderr
    unit = (pi_dir.parent / "units/digit-reader.service").read_text()
    assert f"ExecStart={pi_dir}/venv/bin/python -m device.daemon" in unit
    assert "/opt/digit-reader" not in unit
    calls = (fake_pi.root / "systemctl.log").read_text().splitlines()
    assert calls[:3] == [
        "daemon-reload",
        "enable --quiet digit-reader",
        "restart --no-block digit-reader",
    ]
    assert "is-active digit-reader" in calls
    assert "is running: fake: reading digits" in result.stdout
    assert (pi_dir / "venv/bin/python").exists()  # PI_DIR/venv -> current/venv, as ExecStart uses


def test_a_release_that_does_not_become_ready_is_switched_back(
    fake_pi: FakePi, pi: tuple[Path, Path], systemd_env: dict[str, str]
) -> None:
    src, pi_dir = pi
    before = current(pi_dir)
    (fake_pi.root / "service.state").write_text("failed")
    (src / "device/extra.txt").write_text("new file\n")
    line = one_line_error(run_deploy(src, "deploy", systemd_env))
    assert "did not start" in line and "back on" in line
    assert current(pi_dir) == before
    calls = (fake_pi.root / "systemctl.log").read_text().splitlines()
    assert calls.count("restart --no-block digit-reader") == 2  # the new release, then the old
