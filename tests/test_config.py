"""Strict config: unknown keys (with line numbers), types, bounds, overrides, --check-config."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from device.config import (
    PROJECT_ROOT,
    SECTIONS,
    Config,
    ConfigError,
    default_config,
    env_overrides,
    field_help,
    find_line,
    load_config,
    parse_source,
    with_overrides,
)
from device.daemon import reader_config
from device.reader import ReaderConfig

EXAMPLE = PROJECT_ROOT / "device" / "config.example.toml"
DEMO = PROJECT_ROOT / "device" / "demo.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_file_documents_every_key_with_a_comment() -> None:
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    missing = []
    for dotted in field_help():
        section, key = dotted.split(".")
        line = find_line(text, section, key)
        if line is None or "#" not in lines[line - 1]:
            missing.append(dotted)
    assert missing == []


def test_example_file_loads_and_shows_the_defaults() -> None:
    assert load_config(EXAMPLE) == default_config()


def test_demo_file_loads_with_recorded_frames_from_the_repo() -> None:
    config = load_config(DEMO)
    assert config.source.kind == "recorded"
    assert config.source.path == str(PROJECT_ROOT / "tests" / "frames")
    assert config.source.repeat == 5


def test_every_field_has_help_and_bounds_or_choices_where_numeric() -> None:
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            assert f.metadata["help"], f"{name}.{f.name}"
            if isinstance(f.default, int | float) and not isinstance(f.default, bool):
                assert f.metadata["min"] is not None and f.metadata["max"] is not None


def test_unknown_key_names_section_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\nkind = "picamera"\n\n[leds]\ngreen = 5\ngren_hold_s = 1\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}, line 6: unknown key leds.gren_hold_s" in message
    assert "green_hold_s" in message  # the valid keys are listed


def test_unknown_section_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[source]\nkind = "picamera"\n[sorce]\nfps = 3\n')
    with pytest.raises(ConfigError, match=r"line 3: unknown section \[sorce\]"):
        load_config(path)


def test_dotted_keys_are_located_too(tmp_path: Path) -> None:
    path = write(tmp_path, "leds.enabled = false\nleds.bogus = 1\n")
    with pytest.raises(ConfigError, match=r"line 2: unknown key leds\.bogus"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('[source]\nfps = "fast"\n', r"line 2: source\.fps must be a number"),
        ("[leds]\nenabled = 1\n", r"line 2: leds\.enabled must be true or false"),
        ("[leds]\ngreen = 17.5\n", r"leds\.green must be a whole number"),
        ("[source]\nfps = 500\n", r"source\.fps must be between 0 and 120 \(got 500\.0\)"),
        ("[reader]\nthreshold = 1.5\n", r"reader\.threshold must be between 0 and 1"),
        ("[reader]\nviews_below = 2\n", r"reader\.views_below must be between 0 and 1"),
        ('[source]\nkind = "usb"\n', r"source\.kind must be one of picamera, opencv, recorded"),
        ("[reader]\nroi = [1, 2, 3]\n", r"reader\.roi must be \[\] or \[x, y, w, h\]"),
        ('[reader]\npattern = "(\\\\d"\n', r"reader\.pattern is not a valid regular expression"),
        ('[source]\nkind = "recorded"\n', r"source\.path must name a folder"),
        ("[leds]\nred = 17\n", r"three different pins"),
        ("[mqtt]\nport = 0\n", r"mqtt\.port must be between 1 and 65535"),
        ("source = 3\n", r"source must be a \[source\] table"),
        ("[source\n", r"not valid TOML"),
    ],
)
def test_bad_values_are_config_errors_naming_the_key(
    tmp_path: Path, text: str, pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, text))


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; copy device/config\.example\.toml"):
        load_config(tmp_path / "nope.toml")


def test_relative_paths_in_a_file_resolve_against_the_project_root(tmp_path: Path) -> None:
    path = write(tmp_path, '[reader]\nmodel = "models/other.tflite"\n[output]\nfile = ""\n')
    config = load_config(path)
    assert config.reader.model == str(PROJECT_ROOT / "models" / "other.tflite")
    assert config.output.file == ""  # empty stays "off"


def test_environment_overrides_file_and_command_line_overrides_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    config = load_config(write(tmp_path, "[reader]\nthreshold = 0.5\n"))
    env = {"DIGIT_READER_THRESHOLD": "0.7", "DIGIT_READER_SOURCE": "frames"}
    config = env_overrides(config, env)
    assert config.reader.threshold == 0.7
    assert (config.source.kind, config.source.path) == ("recorded", str(tmp_path / "frames"))
    config = with_overrides(config, threshold="0.9", leds=False, model="m.tflite")
    assert config.reader.threshold == 0.9
    assert config.leds.enabled is False
    assert config.reader.model == str(tmp_path / "m.tflite")


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"\$DIGIT_READER_THRESHOLD: reader\.threshold"):
        env_overrides(Config(), {"DIGIT_READER_THRESHOLD": "high"})
    with pytest.raises(ConfigError, match=r"\$DIGIT_READER_THRESHOLD: reader\.threshold must be"):
        env_overrides(Config(), {"DIGIT_READER_THRESHOLD": "2"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("picamera", {"kind": "picamera"}),
        ("opencv:0", {"kind": "opencv", "uri": "0"}),
        ("rtsp://cam/stream", {"kind": "opencv", "uri": "rtsp://cam/stream"}),
        ("/dev/video9-not-there", {"kind": "opencv", "uri": "/dev/video9-not-there"}),
    ],
)
def test_source_specs(spec: str, expected: dict[str, str]) -> None:
    assert parse_source(spec) == expected


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device.daemon", "--check-config", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )


def test_check_config_exits_0_for_a_good_file_and_2_for_a_bad_one(tmp_path: Path) -> None:
    good = run_check("--config", str(EXAMPLE))
    assert good.returncode == 0, good.stderr
    bad = run_check("--config", str(write(tmp_path, "[daemon]\nlog_levle = 'INFO'\n")))
    assert bad.returncode == 2
    assert "line 2: unknown key daemon.log_levle" in bad.stderr
    assert bad.stderr.count("\n") == 1  # one sentence, no traceback


def test_daemon_reader_section_defaults_are_the_readers_own() -> None:
    """The [reader] section repeats ReaderConfig's defaults (views_below, num_threads, ...) so
    that loading a config needs no classifier: a change to one must reach the other."""
    assert reader_config(default_config()) == ReaderConfig()


def test_daemon_reader_section_reaches_the_reader() -> None:
    base = default_config()
    section = dataclasses.replace(
        base.reader,
        threshold=0.9,
        views_below=0.0,
        roi=(1, 2, 30, 40),
        expected_count=5,
        fine_look=True,
    )
    got = reader_config(dataclasses.replace(base, reader=section))
    assert (got.threshold, got.views_below, got.roi, got.expected_count, got.fine_look) == (
        0.9,
        0.0,
        (1, 2, 30, 40),
        5,
        True,
    )
