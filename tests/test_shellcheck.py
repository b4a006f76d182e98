"""Every shell script in the project passes shellcheck (sourced files followed with -x)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {
    ".git",
    ".venv",
    "build",
    "data",
    "node_modules",
    "reports",
    ".mypy_cache",
    ".ruff_cache",
}


def shell_scripts() -> list[Path]:
    """*.sh files, plus files whose first line is a bash/sh shebang (e.g. .ci/run)."""
    found = []
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO)
        if any(part in SKIP_DIRS for part in rel.parts) or not path.is_file():
            continue
        if path.suffix == ".sh":
            found.append(path)
            continue
        try:
            with path.open("rb") as fh:
                first = fh.readline(100)
        except OSError:
            continue
        if first.startswith(b"#!") and first.split()[-1].split(b"/")[-1] in (b"bash", b"sh"):
            found.append(path)
    return found


def test_the_deploy_and_arm64_scripts_are_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {"host/deploy/deploy.sh", "host/deploy/provision.sh", "host/arm64/run.sh"} <= names


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (Debian package)")
@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "-x", "--severity=style", str(script.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
