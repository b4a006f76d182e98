"""The appliance daemon: frame -> reader -> decision -> LEDs + outputs, until told to stop.

``Daemon`` is built from its parts (a source factory, reader, decider, LEDs, outputs, notifier,
config, clock) so tests run it with fakes; ``main()`` wires the real ones in an ExitStack.
Exit status: 0 clean stop (signal, end of recorded frames, --max-frames), 2 bad config / model /
pins / outputs at start, 3 the camera stayed broken for ``daemon.give_up_after_s``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from device.config import (
    ENV_CONFIG,
    Config,
    default_config,
    env_overrides,
    load_config,
    with_overrides,
)
from device.decision import Decider
from device.digest import blake2b
from device.errors import (
    ConfigError,
    ModelError,
    OutputError,
    PinError,
    SourceEnded,
    SourceError,
)
from device.events import Output, ReadingEvent, Status
from device.leds import LedPanel, make_leds
from device.reading import Reading
from device.sdnotify import Notifier

if TYPE_CHECKING:
    from device.reader import ReaderConfig

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

EXIT_OK = 0
EXIT_FATAL = 2  # config, model, pins or outputs unusable at start: restarting will not help
EXIT_CAMERA = 3  # the camera stayed broken; systemd restarts us (Restart=on-failure)

WAIT_SLICE_S = 0.5  # longest single wait, so watchdog/status/LED timers keep running
AVERAGE_WEIGHT = 0.05  # weight of the newest sample in the running stage averages (~20 frames)
FAILED_FRAMES_FOR_ERROR = 10  # consecutive unprocessable frames that light the error pattern
STALE_STRIDE = 8  # every 8th pixel each way is enough to tell a frozen camera from a live one


class FrameSourceLike(Protocol):
    def read(self) -> Frame: ...

    def close(self) -> None: ...


class ReaderLike(Protocol):
    def read(self, frame: Frame) -> Reading: ...


class RunningMeans:
    """Exponentially weighted means per stage, in milliseconds."""

    def __init__(self, weight: float = AVERAGE_WEIGHT) -> None:
        self._weight = weight
        self._means: dict[str, float] = {}

    def add(self, stage: str, ms: float) -> None:
        old = self._means.get(stage)
        self._means[stage] = ms if old is None else old + self._weight * (ms - old)

    def snapshot(self) -> dict[str, float]:
        return dict(self._means)


def memory_mb() -> dict[str, float]:
    """Resident (VmRSS), peak resident (VmHWM) and anonymous resident (RssAnon) memory in MB;
    empty where /proc is absent. Most of the resident memory is shared-library pages (OpenCV,
    NumPy, LiteRT) mapped from the page cache, and how many are mapped varies with the host's
    state (77 and 83 MB peak for the same code and frames on two days); the anonymous part is
    the process's own, and is what a Pi cannot reclaim."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                out[key] = int(value.split()[0]) / 1024
    return out


def _fingerprint(frame: Frame) -> bytes:
    return blake2b(frame[::STALE_STRIDE, ::STALE_STRIDE].tobytes(), digest_size=16).digest()


class Daemon:
    """The read-decide-publish loop with camera fault handling.

    ``open_source`` is a factory rather than an open source because a failed camera is closed
    and opened again; ``wait`` (default: the stop event's wait) and ``clock`` are injected so
    tests run the backoff without sleeping.
    """

    def __init__(
        self,
        *,
        open_source: Callable[[], FrameSourceLike],
        reader: ReaderLike,
        decider: Decider,
        leds: LedPanel,
        outputs: Sequence[Output],
        notifier: Notifier,
        config: Config,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
        wait: Callable[[float], Any] | None = None,
        max_frames: int | None = None,
        model_version: str = "",
        trigger: threading.Event | None = None,
    ) -> None:
        self._open_source = open_source
        self._reader = reader
        self._decider = decider
        self._leds = leds
        self._outputs = list(outputs)
        self._notifier = notifier
        self._cfg = config.daemon
        self._check_stale = config.source.kind != "recorded" and self._cfg.stale_after_s > 0
        self._clock = clock
        self.stop_event = stop or threading.Event()
        self._wait = wait or self.stop_event.wait
        self._max_frames = max_frames
        self._model_version = model_version
        self._trigger = trigger or threading.Event()

        self._source: FrameSourceLike | None = None
        self.frames = 0
        self.rejected_frames = 0
        self.reconnects = 0
        self.events_sent = 0
        self._failed_in_row = 0
        self._means = RunningMeans()
        self._last_reading: str | None = None
        self._fault_since: float | None = None
        self._fault_reason: str | None = None
        self._backoff = self._cfg.backoff_initial_s
        self._stale_fp: bytes | None = None
        self._stale_since = 0.0
        self.ready_at: float | None = None
        self._started = 0.0
        self._next_watchdog = 0.0
        self._next_status = 0.0
        self._next_log = 0.0
        self._status_mark = (0.0, 0)  # (time, frames) at the last status
        self._log_mark = (0.0, 0)

    # --- public ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (signal handlers call this); it stops within one wait slice."""
        self.stop_event.set()

    def trigger(self) -> None:
        """Publish the reading in view again (MQTT/web callers, any thread)."""
        self._trigger.set()

    def run(self) -> int:
        """Run until stopped; return the process exit status."""
        self._started = now = self._clock()
        self._next_status = now
        self._next_log = now + self._cfg.log_interval_s
        self._next_watchdog = now
        self._status_mark = self._log_mark = (now, 0)
        self._leds.set_error(False)
        try:
            return self._loop()
        finally:
            self._shutdown()

    # --- the loop -------------------------------------------------------------------------------

    def _loop(self) -> int:
        while not self.stop_event.is_set():
            if self._max_frames is not None and self.frames >= self._max_frames:
                logger.info("stopping after --max-frames %d", self._max_frames)
                return EXIT_OK
            if self._source is None:
                try:
                    self._source = self._open_source()
                except SourceError as e:
                    code = self._fault(str(e))
                    if code is not None:
                        return code
                    continue
            t0 = self._clock()
            try:
                frame = self._source.read()
            except SourceEnded as e:
                logger.info("%s; stopping", e)
                return EXIT_OK
            except SourceError as e:
                code = self._fault(str(e))
                if code is not None:
                    return code
                continue
            now = self._clock()
            if self._check_stale and self._is_stale(frame, now):
                code = self._fault(
                    f"the camera delivered the same frame for {self._cfg.stale_after_s:g} s"
                )
                if code is not None:
                    return code
                continue
            self._frame_read(now)
            self._means.add("read", (now - t0) * 1000)
            try:
                self._process(frame, t0)
            except Exception:
                # Top of the loop: one bad frame must not stop the appliance.
                self.rejected_frames += 1
                self._failed_in_row += 1
                logger.exception("frame %d could not be processed; skipped", self.frames)
                if self._failed_in_row == FAILED_FRAMES_FOR_ERROR:
                    self._leds.set_error(True)
            else:
                if self._failed_in_row >= FAILED_FRAMES_FOR_ERROR and self._fault_since is None:
                    self._leds.set_error(False)
                self._failed_in_row = 0
            self._periodic()
        logger.info("stop requested")
        return EXIT_OK

    def _process(self, frame: Frame, t0: float) -> None:
        if self._trigger.is_set():
            self._trigger.clear()
            logger.info("trigger: the reading in view will be published again")
            self._decider.reset_scene()
        reading = self._reader.read(frame)
        t1 = self._clock()
        decision = self._decider.update(reading)
        t2 = self._clock()
        self._leds.show(decision.light, decision.accepted, t2)
        for output in self._outputs:
            output.on_frame(frame, reading)
        if decision.event is not None:
            self._publish(decision.event)
        t3 = self._clock()
        for stage, ms in reading.timings_ms.items():
            self._means.add(stage, ms)
        self._means.add("decide", (t2 - t1) * 1000)
        self._means.add("publish", (t3 - t2) * 1000)
        self._means.add("total", (t3 - t0) * 1000)

    def _publish(self, event: ReadingEvent) -> None:
        if event.accepted:
            self._last_reading = event.value
            logger.info("reading %s", event.value)
        for output in self._outputs:
            output.on_event(event)
        self.events_sent += 1

    def _frame_read(self, now: float) -> None:
        self.frames += 1
        if self.ready_at is None:
            self.ready_at = now
            self._notifier.ready()
            logger.info("ready: first frame read %.3f s after start", now - self._started)
        if self._fault_since is not None:
            logger.info(
                "camera back after %.1f s (%s)", now - self._fault_since, self._fault_reason
            )
            self.reconnects += 1
            self._fault_since = None
            self._fault_reason = None
            self._backoff = self._cfg.backoff_initial_s
            self._leds.set_error(False)

    def _is_stale(self, frame: Frame, now: float) -> bool:
        fp = _fingerprint(frame)
        if fp != self._stale_fp:
            self._stale_fp = fp
            self._stale_since = now
            return False
        return now - self._stale_since >= self._cfg.stale_after_s

    # --- faults ---------------------------------------------------------------------------------

    def _fault(self, reason: str) -> int | None:
        """Handle a camera fault: release it, wait (backoff) and return None to retry, or
        return EXIT_CAMERA once it has failed for ``give_up_after_s``."""
        now = self._clock()
        self._close_source()
        self._stale_fp = None
        if self._fault_since is None:
            self._fault_since = now
            self._fault_reason = reason
            self._leds.set_error(True)
            logger.error("camera fault: %s; retrying", reason)
            self._send_status(now)
        give_up_at = self._fault_since + self._cfg.give_up_after_s
        if now >= give_up_at:
            logger.critical(
                "the camera has failed for %.0f s (last: %s); exiting so systemd restarts us",
                now - self._fault_since,
                reason,
            )
            return EXIT_CAMERA
        delay = min(self._backoff, give_up_at - now)
        self._backoff = min(self._backoff * self._cfg.backoff_factor, self._cfg.backoff_max_s)
        logger.warning("camera: %s; next try in %.1f s", reason, delay)
        self._sleep(delay)
        return None

    def _sleep(self, seconds: float) -> None:
        deadline = self._clock() + seconds
        while not self.stop_event.is_set():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._wait(min(remaining, WAIT_SLICE_S))
            self._periodic()

    def _close_source(self) -> None:
        if self._source is not None:
            source, self._source = self._source, None
            try:
                source.close()
            except Exception:
                # A half-dead camera may fail to close; we are about to reopen it anyway.
                logger.exception("closing the failed camera raised")

    # --- timers ---------------------------------------------------------------------------------

    def _periodic(self) -> None:
        now = self._clock()
        self._leds.tick(now)
        interval = self._notifier.watchdog_interval()
        if interval and now >= self._next_watchdog:
            self._notifier.watchdog()
            self._next_watchdog = now + interval
        if now >= self._next_status:
            self._send_status(now)
        if now >= self._next_log:
            self._log_stats(now)

    def status(self, now: float | None = None) -> Status:
        now = self._clock() if now is None else now
        mark_t, mark_frames = self._status_mark
        fps = (self.frames - mark_frames) / (now - mark_t) if now > mark_t else 0.0
        return Status(
            uptime_s=now - self._started,
            frames=self.frames,
            fps=fps,
            rejected_frames=self.rejected_frames,
            reconnects=self.reconnects,
            latency_ms=self._means.snapshot(),
            last_reading=self._last_reading,
            camera_ok=self._fault_since is None,
            error=self._fault_reason,
            model_version=self._model_version,
        )

    def _send_status(self, now: float) -> None:
        status = self.status(now)
        self._status_mark = (now, self.frames)
        self._next_status = now + self._cfg.status_interval_s
        for output in self._outputs:
            output.on_status(status)
        if self._fault_reason:
            text = f"camera fault: {self._fault_reason}"
        else:
            text = f"last reading {self._last_reading or '-'}, {status.fps:.1f} fps"
        self._notifier.status(text)

    def _log_stats(self, now: float) -> None:
        mark_t, mark_frames = self._log_mark
        fps = (self.frames - mark_frames) / (now - mark_t) if now > mark_t else 0.0
        self._log_mark = (now, self.frames)
        self._next_log = now + self._cfg.log_interval_s
        means = " ".join(f"{k}={v:.2f}" for k, v in self._means.snapshot().items())
        mem = memory_mb()
        logger.info(
            "%d frames, %.1f fps, mean ms: %s; rejected frames %d, reconnects %d, rss %.1f MB",
            self.frames,
            fps,
            means or "-",
            self.rejected_frames,
            self.reconnects,
            mem.get("VmRSS", 0.0),
        )

    def _shutdown(self) -> None:
        self._notifier.stopping()
        self._leds.off()
        self._close_source()
        elapsed = self._clock() - self._started
        mem = memory_mb()
        logger.info(
            "stopped: %d frames in %.1f s (%.1f fps), %d events, %d rejected frames, "
            "%d reconnects, peak rss %.1f MB, anonymous %.1f MB at stop",
            self.frames,
            elapsed,
            self.frames / elapsed if elapsed > 0 else 0.0,
            self.events_sent,
            self.rejected_frames,
            self.reconnects,
            mem.get("VmHWM", 0.0),
            mem.get("RssAnon", 0.0),
        )


# --- wiring ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digit-reader",
        description="Read handwritten numbers from a camera; light LEDs and publish readings.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"TOML config file (default: ${ENV_CONFIG}, else built-in defaults)",
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the config and exit (0 ok, 2 bad)"
    )
    parser.add_argument(
        "--source",
        help="picamera | recorded:DIR | opencv:URI | a folder of frames | a camera URL or index",
    )
    parser.add_argument("--model", help="the .tflite model (its .json manifest beside it)")
    parser.add_argument("--threshold", help="minimum confidence per digit, 0..1")
    parser.add_argument("--no-leds", action="store_true", help="run without GPIO LEDs")
    parser.add_argument(
        "--max-frames", type=int, default=None, help="stop after this many frames (tests, bench)"
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    """File (or defaults) < environment < command line."""
    env = dict(os.environ) if env is None else env
    path = args.config or (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    config = load_config(path) if path is not None else default_config()
    config = env_overrides(config, env)
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be 1 or more (got {args.max_frames})")
    return with_overrides(
        config,
        source=args.source,
        model=args.model,
        threshold=args.threshold,
        leds=False if args.no_leds else None,
        log_level=args.log_level,
    )


def setup_logging(level: str) -> None:
    # stderr, so stdout carries only the JSON readings; the journal adds its own timestamps.
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        force=True,
    )


def source_factory(config: Config) -> Callable[[], FrameSourceLike]:
    """A function that opens the configured source (called again after each camera fault)."""
    from device.sources import open_source

    src = config.source
    kw: dict[str, Any]
    if src.kind == "recorded":
        kw = {
            "path": src.path,
            "loop": src.loop,
            "fps": src.fps or None,
            "repeat": src.repeat,
            "grey": src.grey,
        }
    elif src.kind == "opencv":
        kw = {
            "uri": src.uri,
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "read_timeout_s": src.read_timeout_s,
        }
    else:
        kw = {
            "width": src.width,
            "height": src.height,
            "fps": src.fps,
            "read_timeout_s": src.read_timeout_s,
        }

    def open_it() -> FrameSourceLike:
        return open_source(src.kind, **kw)

    return open_it


def reader_config(config: Config) -> ReaderConfig:
    """The reader's settings from the daemon config's [reader] section."""
    from device.reader import ReaderConfig

    r = config.reader
    return ReaderConfig(
        threshold=r.threshold or None,  # 0 = the model manifest's recommended threshold
        expected_count=r.expected_count or None,
        pattern=r.pattern or None,
        roi=(r.roi[0], r.roi[1], r.roi[2], r.roi[3]) if r.roi else None,
        polarity=r.polarity,
        num_threads=r.num_threads,
        views_below=r.views_below,
        fine_look=r.fine_look,
    )


def build_reader(config: Config) -> Any:
    """Load the model once (raises ModelError with a clear message)."""
    from device.reader import Reader

    return Reader.from_model(Path(config.reader.model), reader_config(config))


def _annotator(config: Config) -> Callable[[Frame, Reading], Frame] | None:
    try:
        from device.annotate import annotate
    except ImportError:
        logger.warning("device.annotate is missing; frames are saved without annotations")
        return None
    r = config.reader.roi
    roi = (r[0], r[1], r[2], r[3]) if r else None

    def draw(frame: Frame, reading: Reading) -> Frame:
        return annotate(frame, reading, roi=roi)

    return draw


def build_outputs(
    config: Config, stack: contextlib.ExitStack, on_trigger: Callable[[], None]
) -> list[Output]:
    """The enabled outputs, each registered on ``stack`` so it is closed on exit."""
    from device.outputs import FileOutput, FrameSaver, StdoutOutput

    out = config.output
    outputs: list[Output] = []
    if out.file:
        outputs.append(stack.enter_context(FileOutput(out.file, out.max_bytes, out.backups)))
    if out.stdout:
        outputs.append(stack.enter_context(StdoutOutput()))
    if out.save_frames:
        saver = FrameSaver(out.save_frames, out.max_saved, annotate=_annotator(config))
        outputs.append(stack.enter_context(saver))
    mqtt = None
    if config.mqtt.enabled:
        from device.mqtt import MqttOutput

        mqtt = MqttOutput(config.mqtt, on_trigger=on_trigger)
        stack.callback(mqtt.close)
        outputs.append(mqtt)
    if config.web.enabled:
        from device.web import WebServer

        r = config.reader.roi
        roi = (r[0], r[1], r[2], r[3]) if r else None
        # The page shows whether the broker is reachable and how many readings wait for it.
        extra = (lambda m=mqtt: {"mqtt": m.health()}) if mqtt is not None else None
        web = WebServer(config.web, on_trigger=on_trigger, roi=roi, extra_status=extra)
        stack.callback(web.close)
        outputs.append(web)
    return outputs


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        config = build_config(args)
    except ConfigError as e:
        print(f"digit-reader: {e}", file=sys.stderr)
        return EXIT_FATAL
    if args.check_config:
        print(f"digit-reader: the config is valid ({args.config or 'built-in defaults'})")
        return EXIT_OK
    setup_logging(config.daemon.log_level)

    stop = threading.Event()
    trigger = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()
        # A second Ctrl-C (or SIGTERM) kills at once, should the clean stop ever hang.
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        with contextlib.ExitStack() as stack:
            leds = make_leds(config.leds)
            stack.callback(leds.close)
            notifier = stack.enter_context(Notifier())
            outputs = build_outputs(config, stack, trigger.set)
            reader = build_reader(config)
            if hasattr(reader, "close"):
                stack.callback(reader.close)
            classifier = getattr(reader, "classifier", None)
            daemon = Daemon(
                open_source=source_factory(config),
                reader=reader,
                decider=Decider(config.decision),
                leds=leds,
                outputs=outputs,
                notifier=notifier,
                config=config,
                stop=stop,
                max_frames=args.max_frames,
                model_version=str(getattr(classifier, "model_version", "")),
                trigger=trigger,
            )
            return daemon.run()
    except (ConfigError, ModelError, PinError, OutputError) as e:
        logger.critical("cannot start: %s", e)
        return EXIT_FATAL


if __name__ == "__main__":
    raise SystemExit(main())
