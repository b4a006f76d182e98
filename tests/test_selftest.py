"""device.selftest: the health check the deploy runs inside a new release before switching."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import load_config
from device.selftest import SELFTEST_IMAGE, SELFTEST_TEXT, SelfTest, main

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "digits.tflite"


def run_main(*argv: str) -> tuple[int, list[str]]:
    out = io.StringIO()
    rc = main(list(argv), out=out)
    return rc, out.getvalue().splitlines()


def status_of(lines: list[str]) -> dict[str, str]:
    return {line.split()[1].rstrip(":"): line.split()[0] for line in lines}


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(body)
    return path


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    for suffix in (".tflite", ".json"):
        shutil.copy(MODEL.with_suffix(suffix), tmp_path / f"digits{suffix}")
    return tmp_path / "digits.tflite"


def test_selftest_passes_on_the_bundled_model_and_image() -> None:
    rc, lines = run_main()
    assert rc == 0, lines
    assert status_of(lines) == {
        "config": "PASS",
        "manifest": "PASS",
        "model": "PASS",
        "reading": "PASS",
    }
    assert f"'{SELFTEST_TEXT}'" in lines[-1] or SELFTEST_TEXT in lines[-1].replace(" ", "")


def test_model_not_matching_its_manifest_fails_and_skips_what_needs_it(
    tmp_path: Path, model_copy: Path
) -> None:
    model_copy.write_bytes(model_copy.read_bytes() + b"\0")
    config = write_config(tmp_path, f'[reader]\nmodel = "{model_copy}"\n')
    rc, lines = run_main("--config", str(config))
    assert rc == 1
    assert status_of(lines) == {
        "config": "PASS",
        "manifest": "FAIL",
        "model": "SKIP",
        "reading": "SKIP",
    }
    assert "sha256" in lines[1]


def test_missing_model_fails_with_the_make_hint(tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[reader]\nmodel = "{tmp_path / "none.tflite"}"\n')
    rc, lines = run_main("--config", str(config))
    assert rc == 1
    assert status_of(lines)["manifest"] == "FAIL"
    assert "make" in lines[1]


def test_a_wrong_reading_fails_naming_both_texts(model_copy: Path, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, f'[reader]\nmodel = "{model_copy}"\n'))
    test = SelfTest(config, expected="1234")
    checks = {c.name: c for c in test.run()}
    assert checks["reading"].status == "FAIL"
    assert "'1234'" in checks["reading"].detail and SELFTEST_TEXT in checks[
        "reading"
    ].detail.replace(" ", "")
    assert not test.passed


def test_an_unreadable_test_image_fails_the_reading(tmp_path: Path) -> None:
    bad = tmp_path / "selftest.png"
    bad.write_bytes(b"not a png")
    config = load_config(write_config(tmp_path, f'[reader]\nmodel = "{MODEL}"\n'))
    checks = {c.name: c.status for c in SelfTest(config, image=bad).run()}
    assert checks == {"manifest": "PASS", "model": "PASS", "reading": "FAIL"}


def test_invalid_config_fails_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[reader]\nthreshhold = 0.5\n")
    rc, lines = run_main("--config", str(config))
    assert rc == 1
    assert len(lines) == 1 and lines[0].startswith("FAIL config:") and "threshhold" in lines[0]


def test_camera_check_reads_one_frame_from_the_configured_source(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, f'[source]\nkind = "recorded"\npath = "{SELFTEST_IMAGE}"\nfps = 0.0\n'
    )
    rc, lines = run_main("--config", str(config), "--camera")
    assert rc == 0, lines
    assert status_of(lines)["camera"] == "PASS"
    assert "recorded delivered a" in lines[-1]


def test_camera_check_fails_when_the_camera_cannot_be_opened(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, f'[source]\nkind = "opencv"\nuri = "{tmp_path / "no-such-video.mp4"}"\n'
    )
    rc, lines = run_main("--config", str(config), "--camera")
    assert rc == 1
    assert status_of(lines)["camera"] == "FAIL"
    assert status_of(lines)["reading"] == "PASS"


def test_runs_as_a_module_from_a_release_directory(tmp_path: Path) -> None:
    # As deploy.sh runs it: cwd = the release (device/ + models/ only), exit status 0.
    release = tmp_path / "release"
    shutil.copytree(
        REPO / "device", release / "device", ignore=shutil.ignore_patterns("__pycache__")
    )
    (release / "models").mkdir()
    for suffix in (".tflite", ".json"):
        shutil.copy(MODEL.with_suffix(suffix), release / "models" / f"digits{suffix}")
    result = subprocess.run(
        [sys.executable, "-m", "device.selftest"],
        cwd=release,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(release / "models" / "digits.tflite") in result.stdout
