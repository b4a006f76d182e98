"""Strict TOML configuration of the daemon: one frozen dataclass per section, every key checked.

Every field has a default, bounds (or choices) and a one-line description in its metadata; an
unknown key, a wrong type or an out-of-range value raises ``ConfigError`` naming ``section.key``
(and the line in the file). Relative paths in a config file are resolved against the project
root (the repository, or the release directory on the Pi: the folder holding ``device/``), so one
file works whatever the working directory; paths given on the command line or in the environment
are relative to the working directory, as usual for a command.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from device.contract import POLARITIES
from device.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Environment variables for the few values changed often (file < environment < command line).
ENV_SOURCE = "DIGIT_READER_SOURCE"
ENV_MODEL = "DIGIT_READER_MODEL"
ENV_THRESHOLD = "DIGIT_READER_THRESHOLD"
ENV_LOG_LEVEL = "DIGIT_READER_LOG_LEVEL"
ENV_CONFIG = "DIGIT_READER_CONFIG"

SOURCE_KINDS = ("picamera", "opencv", "recorded")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_BCM_PIN = 27  # the 40-pin header exposes BCM 0..27


def _f(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    path: bool = False,
) -> Any:
    """A config field: default plus the metadata the validator and the example file rely on."""
    meta = {"help": help, "min": min, "max": max, "choices": choices, "path": path}
    return field(default=default, metadata=meta)


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_value(section: str, name: str, kind: Any, meta: Mapping[str, Any], value: Any) -> Any:
    """Check one value against its field's type and bounds; return it in the field's type."""
    key = f"{section}.{name}"
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, not {_describe(value)}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number, not {_describe(value)}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, not {_describe(value)}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {_describe(value)}")
    elif kind == tuple[int, ...]:
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{key} must be a list of whole numbers, not {_describe(value)}")
        value = tuple(value)
    else:  # pragma: no cover - a programming error in this module, not bad input
        raise TypeError(f"{key}: unsupported field type {kind!r}")

    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    items = value if isinstance(value, tuple) else (value,)
    if kind is not bool and kind is not str:
        for item in items:
            if (lo is not None and item < lo) or (hi is not None and item > hi):
                raise ConfigError(f"{key} must be between {lo:g} and {hi:g} (got {item!r})")
    if choices and value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)} (got {value!r})")
    return value


class _Section:
    """Mixin: validates every field of a section dataclass after construction."""

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = check_value(
                self.SECTION, f.name, hints[f.name], f.metadata, getattr(self, f.name)
            )
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Rules that involve more than one key of the section."""


@dataclass(frozen=True)
class SourceConfig(_Section):
    SECTION: ClassVar[str] = "source"

    kind: str = _f("picamera", "where frames come from", choices=SOURCE_KINDS)
    uri: str = _f("", "opencv: a camera index ('0'), a video file or an rtsp:// or http:// URL")
    path: str = _f("", "recorded: a folder of .png/.jpg frames, or one image", path=True)
    width: int = _f(640, "frame width in pixels (camera kinds)", min=16, max=4096)
    height: int = _f(480, "frame height in pixels (camera kinds)", min=16, max=4096)
    fps: float = _f(
        10.0, "frames per second to capture; 0 = as fast as possible (recorded)", min=0, max=120
    )
    loop: bool = _f(False, "recorded: start again at the end instead of ending the daemon")
    repeat: int = _f(1, "recorded: deliver each frame this many times in a row", min=1, max=1000)
    grey: bool = _f(False, "recorded: decode frames as grey (faster; the reader needs no colour)")
    read_timeout_s: float = _f(
        2.0, "a read that takes longer counts as a camera fault", min=0.1, max=60
    )

    def check(self) -> None:
        if self.kind == "recorded" and not self.path:
            raise ConfigError(
                "source.path must name a folder of frames when source.kind = 'recorded'"
            )
        if self.kind == "opencv" and not self.uri:
            raise ConfigError("source.uri must be set when source.kind = 'opencv' (e.g. '0')")
        if self.kind != "recorded" and self.fps == 0:
            raise ConfigError(f"source.fps must be above 0 for a camera (kind {self.kind!r})")


@dataclass(frozen=True)
class ReaderSection(_Section):
    SECTION: ClassVar[str] = "reader"

    model: str = _f(
        "models/digits.tflite", "the LiteRT model; its manifest (.json) sits beside it", path=True
    )
    threshold: float = _f(
        0.0,
        "every digit needs this confidence; 0 = the model's recommended value",
        min=0.0,
        max=1.0,
    )
    expected_count: int = _f(0, "digits a reading must have; 0 = any number", min=0, max=32)
    pattern: str = _f("", "regular expression the whole reading must match; '' = any")
    roi: tuple[int, ...] = _f(
        (), "region of interest [x, y, w, h] in pixels; [] = whole frame", min=0, max=8192
    )
    polarity: str = _f("auto", "ink darker or lighter than the paper", choices=POLARITIES)
    num_threads: int = _f(1, "CPU threads for the interpreter", min=1, max=8)
    views_below: float = _f(
        0.99,
        "digits read below this confidence are read again a pixel off each way; 0 = once only",
        min=0.0,
        max=1.0,
    )
    fine_look: bool = _f(
        False,
        "read an unsure frame of at most 480 rows again enlarged (about 9 ms per such 640x480 "
        "frame); the next camera frame is the daemon's cheaper second look",
    )

    def check(self) -> None:
        if len(self.roi) not in (0, 4):
            raise ConfigError(f"reader.roi must be [] or [x, y, w, h] (got {list(self.roi)})")
        if len(self.roi) == 4 and (self.roi[2] == 0 or self.roi[3] == 0):
            raise ConfigError("reader.roi width and height must be above 0")
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise ConfigError(f"reader.pattern is not a valid regular expression: {e}") from e


@dataclass(frozen=True)
class DecisionConfig(_Section):
    SECTION: ClassVar[str] = "decision"

    stable_k: int = _f(3, "accept a reading seen in at least K ...", min=1, max=100)
    stable_n: int = _f(5, "... of the last N frames", min=1, max=100)
    clear_after_s: float = _f(
        2.0,
        "no digits for this long = a new scene; the same reading is sent again",
        min=0.0,
        max=3600,
    )
    meter: bool = _f(False, "meter mode: the number may only grow")
    max_rate_per_hour: float = _f(
        0.0, "meter mode: the most it may grow per hour; 0 = no limit", min=0.0, max=1e12
    )

    def check(self) -> None:
        if self.stable_k > self.stable_n:
            raise ConfigError(
                f"decision.stable_k ({self.stable_k}) must not exceed "
                f"decision.stable_n ({self.stable_n})"
            )


@dataclass(frozen=True)
class LedsConfig(_Section):
    SECTION: ClassVar[str] = "leds"

    enabled: bool = _f(True, "drive the LEDs; false runs without GPIO")
    green: int = _f(17, "BCM pin of the green LED (confident reading)", min=0, max=MAX_BCM_PIN)
    red: int = _f(27, "BCM pin of the red LED (digits seen, not sure)", min=0, max=MAX_BCM_PIN)
    status: int = _f(
        22, "BCM pin of the status LED (heartbeat, fast blink on error)", min=0, max=MAX_BCM_PIN
    )
    active_high: bool = _f(True, "true when a high pin lights the LED")
    green_hold_s: float = _f(
        2.0, "how long green stays on after an accepted reading", min=0.0, max=60
    )

    def check(self) -> None:
        if len({self.green, self.red, self.status}) != 3:
            raise ConfigError("leds.green, leds.red and leds.status must be three different pins")


@dataclass(frozen=True)
class OutputConfig(_Section):
    SECTION: ClassVar[str] = "output"

    stdout: bool = _f(True, "print one JSON line per accepted reading")
    file: str = _f(
        "", "append every event (accepted and rejected) as JSON lines here; '' = off", path=True
    )
    max_bytes: int = _f(
        1_000_000, "rotate the file when it would grow beyond this", min=1024, max=10**10
    )
    backups: int = _f(3, "rotated files to keep (file.1 is the newest)", min=0, max=100)
    save_frames: str = _f(
        "", "save annotated frames of events into this folder; '' = off", path=True
    )
    max_saved: int = _f(
        200, "saved frames to keep; the oldest are deleted first", min=1, max=100_000
    )


@dataclass(frozen=True)
class DaemonConfig(_Section):
    SECTION: ClassVar[str] = "daemon"

    log_level: str = _f("INFO", "log level", choices=LOG_LEVELS)
    log_interval_s: float = _f(60.0, "seconds between performance log lines", min=0.1, max=86400)
    status_interval_s: float = _f(
        1.0, "seconds between status updates to outputs and systemd", min=0.1, max=60
    )
    backoff_initial_s: float = _f(
        0.5, "first wait before reopening a failed camera", min=0.01, max=60
    )
    backoff_factor: float = _f(2.0, "each further wait is this many times longer", min=1.0, max=10)
    backoff_max_s: float = _f(10.0, "longest wait between camera retries", min=0.01, max=600)
    give_up_after_s: float = _f(
        60.0, "exit with status 3 (systemd restarts us) after failing this long", min=0.1, max=86400
    )
    stale_after_s: float = _f(
        5.0, "identical frames for this long = a frozen camera; 0 = never", min=0.0, max=3600
    )


@dataclass(frozen=True)
class MqttConfig(_Section):
    SECTION: ClassVar[str] = "mqtt"

    enabled: bool = _f(False, "publish readings and status to an MQTT broker")
    host: str = _f("127.0.0.1", "broker host name or address")
    port: int = _f(1883, "broker port (8883 is usual with TLS)", min=1, max=65535)
    client_id: str = _f("digit-reader", "MQTT client id; unique per broker")
    device_id: str = _f("digit-reader", "device name used in topics and Home Assistant discovery")
    prefix: str = _f("digit-reader", "topic prefix")
    username: str = _f("", "broker user name; '' = anonymous")
    password_file: str = _f(
        "", "file holding the broker password (kept out of this file)", path=True
    )
    tls: bool = _f(False, "connect with TLS")
    ca_file: str = _f("", "CA certificate for TLS; '' = system store", path=True)
    keepalive_s: int = _f(30, "MQTT keepalive in seconds", min=5, max=3600)
    queue_dir: str = _f(
        "/var/lib/digit-reader/mqtt-queue", "readings wait here while the broker is away", path=True
    )
    queue_max: int = _f(
        10000, "most queued readings; the oldest are dropped beyond it", min=1, max=10_000_000
    )
    discovery: bool = _f(True, "publish Home Assistant discovery messages")
    discovery_prefix: str = _f("homeassistant", "Home Assistant discovery topic prefix")

    def check(self) -> None:
        if self.enabled and not self.host:
            raise ConfigError("mqtt.host must be set when mqtt.enabled = true")


@dataclass(frozen=True)
class WebConfig(_Section):
    SECTION: ClassVar[str] = "web"

    enabled: bool = _f(False, "serve the status page, preview and trigger endpoint")
    host: str = _f("127.0.0.1", "address to listen on; 0.0.0.0 = every interface")
    port: int = _f(8080, "TCP port", min=1, max=65535)
    token_file: str = _f(
        "", "file holding the access token; '' = no token (only on 127.0.0.1)", path=True
    )
    preview_fps: float = _f(
        3.0, "most preview frames per second sent to a browser", min=0.1, max=30
    )
    history: int = _f(20, "recent readings shown on the page", min=1, max=1000)


@dataclass(frozen=True)
class Config:
    """The whole configuration: one attribute per TOML section."""

    source: SourceConfig = field(default_factory=SourceConfig)
    reader: ReaderSection = field(default_factory=ReaderSection)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    leds: LedsConfig = field(default_factory=LedsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def model_path(self) -> Path:
        return Path(self.reader.model)


SECTIONS: dict[str, type[_Section]] = {
    f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)
}


# --- locating keys in the file text, for error messages -------------------------------------

_TABLE_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=")


def find_line(text: str, section: str, key: str | None = None) -> int | None:
    """The 1-based line of ``[section]`` (or of ``key`` in it), by scanning the text; None if
    not found (tomllib reports no positions for valid TOML, so we look ourselves)."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        table = _TABLE_RE.match(line)
        if table:
            current = table.group(1)
            if key is None and current == section:
                return number
            continue
        match = _KEY_RE.match(line)
        if match and key is not None:
            dotted = f"{current}.{match.group(1)}" if current else match.group(1)
            if dotted == f"{section}.{key}":
                return number
    return None


def _at(text: str | None, origin: str, section: str, key: str | None = None) -> str:
    line = find_line(text, section, key) if text is not None else None
    return f"{origin}, line {line}: " if line else f"{origin}: "


# --- building a Config --------------------------------------------------------------------------


def resolve_path(value: str, base: Path) -> str:
    """An absolute path for ``value`` ('' stays '', meaning "not set")."""
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def config_from_dict(
    data: Mapping[str, Any],
    *,
    text: str | None = None,
    origin: str = "config",
    base: Path = PROJECT_ROOT,
) -> Config:
    """Validate parsed TOML and build a Config; ``text`` lets errors give line numbers."""
    sections: dict[str, Any] = {}
    for name, table in data.items():
        if name not in SECTIONS:
            raise ConfigError(
                f"{_at(text, origin, name)}unknown section [{name}]; "
                f"the sections are {', '.join(SECTIONS)}"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{_at(text, origin, name, None)}{name} must be a [{name}] table")
        cls = SECTIONS[name]
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values: dict[str, Any] = {}
        for key, value in table.items():
            where = _at(text, origin, name, key)
            if key not in fields:
                raise ConfigError(
                    f"{where}unknown key {name}.{key}; the keys of [{name}] are {', '.join(fields)}"
                )
            try:
                checked = check_value(name, key, hints[key], fields[key].metadata, value)
            except ConfigError as e:
                raise ConfigError(f"{where}{e}") from None
            if fields[key].metadata.get("path"):
                checked = resolve_path(checked, base)
            values[key] = checked
        try:
            sections[name] = cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{_at(text, origin, name)}{e}") from None
    for name, cls in SECTIONS.items():
        if name not in sections:
            sections[name] = _default_section(cls, base)
    return Config(**sections)


def _default_section(cls: type[_Section], base: Path) -> Any:
    """A section with defaults, relative default paths resolved like a file's."""
    changes = {
        f.name: resolve_path(f.default, base)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.metadata.get("path") and isinstance(f.default, str) and f.default
    }
    return cls(**changes)


def default_config() -> Config:
    """Every key at its default."""
    return config_from_dict({})


def load_config(path: Path | str) -> Config:
    """Read, parse and validate a TOML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; copy device/config.example.toml"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} cannot be read: {e}") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return config_from_dict(data, text=text, origin=str(path))


def parse_source(spec: str) -> dict[str, Any]:
    """Source fields from a short spec: 'picamera', 'recorded:DIR', 'opencv:URI', a folder or
    image file (recorded), or anything else (an OpenCV URI or camera index)."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("the source spec is empty; use picamera, recorded:DIR or opencv:URI")
    kind, sep, rest = spec.partition(":")
    if spec == "picamera":
        return {"kind": "picamera"}
    if sep and kind == "recorded":
        return {"kind": "recorded", "path": str(Path(rest).expanduser().resolve())}
    if sep and kind == "opencv":
        return {"kind": "opencv", "uri": rest}
    if "://" not in spec and Path(spec).expanduser().exists():
        return {"kind": "recorded", "path": str(Path(spec).expanduser().resolve())}
    return {"kind": "opencv", "uri": spec}


def with_overrides(
    config: Config,
    *,
    source: str | None = None,
    model: str | None = None,
    threshold: float | str | None = None,
    leds: bool | None = None,
    log_level: str | None = None,
    origin: str = "command line",
) -> Config:
    """A copy of ``config`` with the often-changed values replaced (validated like the file)."""
    try:
        if source is not None:
            config = dataclasses.replace(
                config, source=dataclasses.replace(config.source, **parse_source(source))
            )
        if model is not None:
            model_path = str(Path(model).expanduser().resolve())
            config = dataclasses.replace(
                config, reader=dataclasses.replace(config.reader, model=model_path)
            )
        if threshold is not None:
            try:
                value = float(threshold)
            except ValueError:
                raise ConfigError(
                    f"reader.threshold must be a number (got {threshold!r})"
                ) from None
            config = dataclasses.replace(
                config, reader=dataclasses.replace(config.reader, threshold=value)
            )
        if leds is not None:
            config = dataclasses.replace(
                config, leds=dataclasses.replace(config.leds, enabled=leds)
            )
        if log_level is not None:
            config = dataclasses.replace(
                config, daemon=dataclasses.replace(config.daemon, log_level=log_level.upper())
            )
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None
    return config


def env_overrides(config: Config, env: Mapping[str, str] | None = None) -> Config:
    """Apply ``DIGIT_READER_*`` environment variables (unset or empty ones are ignored)."""
    env = os.environ if env is None else env
    config = with_overrides(config, source=env.get(ENV_SOURCE) or None, origin=f"${ENV_SOURCE}")
    config = with_overrides(config, model=env.get(ENV_MODEL) or None, origin=f"${ENV_MODEL}")
    config = with_overrides(
        config, threshold=env.get(ENV_THRESHOLD) or None, origin=f"${ENV_THRESHOLD}"
    )
    return with_overrides(
        config, log_level=env.get(ENV_LOG_LEVEL) or None, origin=f"${ENV_LOG_LEVEL}"
    )


def field_help() -> dict[str, str]:
    """``section.key`` -> one-line description, for docs and the example-file test."""
    out: dict[str, str] = {}
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            out[f"{name}.{f.name}"] = str(f.metadata["help"])
    return out
