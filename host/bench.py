"""Benchmarks side by side (``make bench``): speed, memory, accuracy -> reports/bench.md, charts.

One process, one core: the process is pinned to CPU 0 where the OS allows it, OpenCV, LiteRT
and TensorFlow each get one thread, and every contender is timed interleaved with the others
(round-robin per repetition) so that load from elsewhere hits all of them alike. Sections:

1. per-digit inference: int8 LiteRT vs float32 LiteRT vs Keras ``model(x)`` vs ``predict``,
   for the shipped network and the tutorial's seed network, batch 1 and 8;
2. per-frame pipeline on freshly rendered frames at 640x480, 1280x720 and 1920x1080;
3. Tesseract on the same frames (skipped with a note when it is not installed);
4. accuracy: MNIST test, rendered frames, and the confidence-threshold curve;
5. footprint: model files, peak memory and start-up of a LiteRT vs a TensorFlow process,
   installed size of each side's packages, and the daemon over recorded frames;
6. an ESTIMATE of per-digit and per-frame time on Raspberry Pi boards from the MACs.

    python -m host.bench                 # full run (about 10 minutes on 2 cores)
    python -m host.bench --quick --out /tmp/bench   # smoke test: a handful of frames
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from host.errors import OutputPathError, TrainingError, run_command
from host.mnist import ROOT

logger = logging.getLogger(__name__)

MODELS = ROOT / "models"
DEFAULT_OUT = ROOT / "reports"
# Frames are rendered with this seed; tests/frames uses 7 (make frames) and must never be
# what the benchmark measures on.
FRESH_SEED = 20260
SIZES = ((640, 480), (1280, 720), (1920, 1080))
BATCHES = (1, 8)
# Frames of the larger sizes: they only add timing, so fewer are enough.
HD_FRAMES = 100
# Tesseract's single-line mode (psm 7) is run on this many frames as a cross-check of the
# block mode (psm 6) used for the headline figures; both cost ~0.3 s a frame.
PSM7_FRAMES = 50
# Thresholds for the accepted-rate / error curve: coarse below 0.9, fine above.
THRESHOLDS = tuple(
    float(t)
    for t in np.unique(
        np.round(np.concatenate([np.linspace(0.0, 0.9, 19), np.linspace(0.9, 0.995, 20)]), 3)
    )
)
REPRESENTATIVE = 200  # training digits used when the bench must convert a model itself


@dataclass(frozen=True)
class Plan:
    """How much to measure; --quick shrinks everything to a smoke test."""

    quick: bool
    frames: int
    hd_frames: int
    reps: int
    sample_s: float  # target duration of one timed micro-benchmark sample
    mnist_limit: int | None
    psm7_frames: int
    footprint_reps: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            frames = args.frames or 6
            return cls(True, frames, min(3, frames), args.reps or 1, 0.01, 500, 2, 1)
        frames = args.frames or 500
        return cls(
            False,
            frames,
            min(HD_FRAMES, frames),
            args.reps or 5,
            0.15,
            None,
            min(PSM7_FRAMES, frames),
            3,
        )


@dataclass
class Network:
    """One network in its three runnable forms."""

    label: str
    arch: str
    keras_path: Path | None
    int8_path: Path
    float_path: Path
    model: Any
    macs: int
    params: int
    trained: bool
    notes: list[str] = field(default_factory=list)


# --- environment ------------------------------------------------------------------------------


def pin_to_one_core() -> str:
    """Run this process (and its children) on CPU 0 and give OpenCV one thread."""
    import cv2

    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {0})
        return "pinned to CPU 0 (os.sched_setaffinity)"
    except (AttributeError, OSError) as e:
        return f"not pinned ({e.__class__.__name__}); OpenCV/LiteRT/TF limited to one thread"


def pin_tensorflow() -> Any:
    """Import TensorFlow with one intra- and one inter-op thread (before any TF op runs)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or platform.machine()


def environment(tf: Any) -> dict[str, str]:
    import ai_edge_litert
    import cv2
    import keras

    from host import peer_ocr

    tess = peer_ocr.tesseract_path()
    return {
        "cpu": f"{_cpu_name()} ({os.cpu_count()} logical CPUs on this machine)",
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "tesseract": peer_ocr.tesseract_version(tess) if tess else "not installed",
    }


# --- networks ---------------------------------------------------------------------------------


def _convert_into(model: Any, arch: str, quantize: bool, path: Path) -> Path:
    from host.convert import atomic_write_bytes, model_inputs, to_tflite
    from host.mnist import load_mnist

    data = load_mnist()
    rng = np.random.default_rng(0)
    pick = rng.choice(len(data.x_train), REPRESENTATIVE, replace=False)
    representative = model_inputs(data.x_train[pick], arch)
    atomic_write_bytes(path, to_tflite(model, representative, quantize=quantize))
    return path


def load_networks(models: Path, tmp: Path) -> list[Network]:
    """The shipped network and the seed; missing float/seed files are converted into ``tmp``."""
    import keras

    from host.architectures import build, count_macs
    from host.convert import load_keras

    shipped_keras = models / "digits.keras"
    shipped_int8 = models / "digits.tflite"
    for p in (shipped_keras, shipped_int8):
        if not p.is_file():
            raise TrainingError(f"{p} does not exist; run `make train convert` first")
    nets = []
    model = load_keras(shipped_keras)
    net = Network(
        "shipped (default)",
        "default",
        shipped_keras,
        shipped_int8,
        models / "digits_float.tflite",
        model,
        count_macs(model),
        int(model.count_params()),
        True,
    )
    if not net.float_path.is_file():
        net.float_path = _convert_into(model, "default", False, tmp / "digits_float.tflite")
        net.notes.append("float32 LiteRT converted by the bench (no models/digits_float.tflite)")
    nets.append(net)

    seed_keras = models / "seed.keras"
    if seed_keras.is_file():
        seed_model, trained = load_keras(seed_keras), True
    else:
        keras.utils.set_random_seed(0)
        seed_model, trained = build("seed"), False
    seed = Network(
        "seed (tutorial)",
        "seed",
        seed_keras if trained else None,
        models / "seed.tflite",
        models / "seed_float.tflite",
        seed_model,
        count_macs(seed_model),
        int(seed_model.count_params()),
        trained,
    )
    if not trained:
        seed.notes.append(
            "models/seed.keras absent: an UNTRAINED seed network stands in (timing valid, "
            "accuracy meaningless); run `make train-seed convert-seed`"
        )
    if not trained or not seed.int8_path.is_file():
        seed.int8_path = _convert_into(seed_model, "seed", True, tmp / "seed.tflite")
        if trained:
            seed.notes.append("seed int8 converted by the bench (models/seed.tflite absent)")
    if not trained or not seed.float_path.is_file():
        seed.float_path = _convert_into(seed_model, "seed", False, tmp / "seed_float.tflite")
        if trained:
            seed.notes.append("seed float32 converted by the bench (no models/seed_float.tflite)")
    nets.append(seed)
    return nets


# --- 1. per-digit inference -------------------------------------------------------------------


class _LiteRT:
    """A raw interpreter at a fixed batch; input already in the model's dtype."""

    def __init__(self, path: Path, x: np.ndarray) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from device.contract import to_input_tensor
        from host.convert import _spec_from_details

        self.interp = Interpreter(model_path=str(path), num_threads=1)
        inp = self.interp.get_input_details()[0]
        self.interp.resize_tensor_input(inp["index"], [len(x), 28, 28, 1])
        self.interp.allocate_tensors()
        self.in_index = inp["index"]
        self.out_index = self.interp.get_output_details()[0]["index"]
        self.x = to_input_tensor(x, _spec_from_details(inp))

    def __call__(self) -> np.ndarray:
        self.interp.set_tensor(self.in_index, self.x)
        self.interp.invoke()
        return self.interp.get_tensor(self.out_index)


def bench_inference(nets: list[Network], plan: Plan, tf: Any) -> dict[str, Any]:
    from device.classifier import LiteRTClassifier
    from host.bench_timing import Contender, Summary, calibrate, interleaved
    from host.convert import model_inputs
    from host.mnist import load_mnist

    digits = load_mnist().x_test[: max(BATCHES)]
    contenders: list[Contender] = []
    rows: list[dict[str, Any]] = []
    owned = []
    for net in nets:
        x_all = model_inputs(digits, net.arch)
        for b in BATCHES:
            x = x_all[:b]
            xt = tf.constant(x[..., None])
            xn = x[..., None]
            forms: list[tuple[str, Any]] = [
                ("int8 LiteRT", _LiteRT(net.int8_path, x)),
                ("float32 LiteRT", _LiteRT(net.float_path, x)),
                ("Keras model(x)", lambda m=net.model, t=xt: m(t, training=False)),
                (
                    "Keras model.predict(x)",
                    lambda m=net.model, a=xn, n=b: m.predict(a, batch_size=n, verbose=0),
                ),
            ]
            if net.arch == "default":
                clf = LiteRTClassifier(net.int8_path, num_threads=1)
                owned.append(clf)
                forms.insert(1, ("int8 via device.classifier", lambda c=clf, a=x: c.classify(a)))
            for runtime, call in forms:
                name = f"{net.label} | {runtime} | b{b}"
                contenders.append(Contender(name, call, units=b))
                rows.append({"network": net.label, "runtime": runtime, "batch": b, "name": name})
    for c in contenders:
        calibrate(c, plan.sample_s)
    reps = max(plan.reps, 1) if plan.quick else max(3 * plan.reps, 5)
    samples = interleaved(contenders, reps)
    for clf in owned:
        clf.close()
    for r in rows:
        r["us"] = Summary.of(samples[r["name"]]).scaled(1e6)
    base = {
        b: next(
            r["us"].median
            for r in rows
            if r["network"] == nets[0].label and r["runtime"] == "int8 LiteRT" and r["batch"] == b
        )
        for b in BATCHES
    }
    for r in rows:
        r["ratio"] = r["us"].median / base[r["batch"]]
    return {"rows": rows, "reps": reps}


# --- 2 & 3. frames: our pipeline and Tesseract -----------------------------------------------


@dataclass
class FrameSet:
    size: tuple[int, int]
    files: list[bytes]
    truth: list[dict[str, Any]]
    directory: Path


def render_frames(tmp: Path, plan: Plan) -> list[FrameSet]:
    from host.frames import load_bank, render_set

    bank = load_bank("test")
    sets = []
    for i, size in enumerate(SIZES):
        count = plan.frames if i == 0 else plan.hd_frames
        d = tmp / f"frames_{size[0]}x{size[1]}"
        truth = render_set(d, count, FRESH_SEED + i, size, "test", bank)
        frames = truth["frames"]
        sets.append(FrameSet(size, [(d / f["file"]).read_bytes() for f in frames], frames, d))
    return sets


def _read_frame(reader: Any, data: bytes) -> tuple[Any, dict[str, float]]:
    from device.images import decode_image

    start = time.perf_counter()
    frame = decode_image(data, grey=True)  # as device.read does: the reader needs grey only
    decode = (time.perf_counter() - start) * 1000.0
    reading = reader.read(frame)
    timings = {"decode": decode, **reading.timings_ms}
    timings["total"] = (time.perf_counter() - start) * 1000.0
    return reading, timings


def _peer_read(peer: Any, data: bytes, failures: list[str]) -> Any:
    """The peer's reading; a frame it fails on counts as read wrong (empty), and is listed."""
    from host.peer_ocr import PeerResult

    start = time.perf_counter()
    try:
        return peer.read(data)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        failures.append(f"psm {peer.psm}: {e}")
        return PeerResult("", (time.perf_counter() - start) * 1000.0)


STAGES = ("decode", "segment", "normalize", "classify", "total")


def bench_frames(int8_path: Path, sets: list[FrameSet], plan: Plan) -> dict[str, Any]:
    """Our pipeline over every frame set, ``plan.reps`` times, with Tesseract interleaved."""
    from device.reader import Reader, ReaderConfig
    from host import peer_ocr
    from host.bench_timing import Summary
    from host.score_frames import mnist_misread

    tess_path = peer_ocr.tesseract_path()
    peers = []
    if tess_path:
        peers = [
            (peer_ocr.Tesseract(tess_path, peer_ocr.PSM_BLOCK), len(sets[0].files)),
            (peer_ocr.Tesseract(tess_path, peer_ocr.PSM_LINE), plan.psm7_frames),
        ]
    timings: dict[tuple[int, int], dict[str, list[float]]] = {
        s.size: {k: [] for k in STAGES} for s in sets
    }
    readings: dict[tuple[int, int], list[Any]] = {s.size: [] for s in sets}
    peer_out: dict[int, list[Any]] = {p.psm: [] for p, _ in peers}
    failures: list[str] = []
    # What the model is given per frame (first repetition): crops and batches.
    fed: dict[tuple[int, int], list[int]] = {s.size: [0, 0] for s in sets}
    with Reader.from_model(int8_path, ReaderConfig(num_threads=1)) as reader:
        classify = reader.classifier.classify
        counting: list[int] | None = None

        def counted(batch: Any) -> Any:
            if counting is not None:
                counting[0] += len(batch)
                counting[1] += 1
            return classify(batch)

        reader.classifier.classify = counted  # type: ignore[method-assign]
        for s in sets:  # warm-up: first allocations and the interpreter's first batch sizes
            _read_frame(reader, s.files[0])
        for rep in range(plan.reps):
            order = sets[rep % len(sets) :] + sets[: rep % len(sets)]
            for s in order:
                counting = fed[s.size] if rep == 0 else None
                for i, data in enumerate(s.files):
                    reading, t = _read_frame(reader, data)
                    for k in STAGES:
                        timings[s.size][k].append(t[k])
                    if rep == 0:
                        readings[s.size].append(reading)
                        if s is sets[0]:
                            # The peer reads the same frame right after ours: same load.
                            for peer, limit in peers:
                                if i < limit:
                                    peer_out[peer.psm].append(_peer_read(peer, data, failures))
        startup = {p.psm: p.startup_ms() for p, _ in peers}
        misread = mnist_misread(reader.classifier)
    out: dict[str, Any] = {
        "sizes": {},
        "tesseract": None,
        "mnist_misread": misread,
        "one_shot": one_shot(int8_path, sets[0]),
    }
    for s in sets:
        stage = {k: Summary.of(v) for k, v in timings[s.size].items()}
        out["sizes"][s.size] = {
            "frames": len(s.files),
            "samples": len(timings[s.size]["total"]),
            "stages": stage,
            "fps": 1000.0 / stage["total"].mean,
            "crops_per_frame": fed[s.size][0] / max(1, len(s.files)),
            "invokes_per_frame": fed[s.size][1] / max(1, len(s.files)),
            "readings": readings[s.size],
            "truth": s.truth,
        }
    if tess_path:
        out["tesseract"] = {
            "version": peer_ocr.tesseract_version(tess_path),
            "failures": failures,
            "runs": {
                psm: {
                    "results": peer_out[psm],
                    "ms": Summary.of([r.ms for r in peer_out[psm]]),
                    "startup_ms": startup[psm],
                }
                for psm in peer_out
            },
        }
    return out


def one_shot(int8_path: Path, s: FrameSet) -> dict[str, Any]:
    """The 640x480 frames read once each as ``device.read`` reads by default: an unsure frame
    is read again enlarged (``ReaderConfig.fine_look``, ``device.looks``). Time per frame
    (decode included) and the readings."""
    from device.reader import Reader, ReaderConfig
    from host.bench_timing import Summary

    totals, readings = [], []
    with Reader.from_model(int8_path, ReaderConfig(num_threads=1, fine_look=True)) as reader:
        _read_frame(reader, s.files[0])  # warm-up: the enlarged frame's buffers
        for data in s.files:
            reading, t = _read_frame(reader, data)
            totals.append(t["total"])
            readings.append(reading)
    return {"total": Summary.of(totals), "readings": readings, "truth": s.truth}


# --- 4. accuracy ------------------------------------------------------------------------------


def mnist_accuracy(nets: list[Network], plan: Plan) -> list[dict[str, Any]]:
    from host.convert import model_inputs, tflite_predict
    from host.mnist import load_mnist

    data = load_mnist()
    x, y = data.x_test, data.y_test
    if plan.mnist_limit:
        x, y = x[: plan.mnist_limit], y[: plan.mnist_limit]
    rows = []
    for net in nets:
        xin = model_inputs(x, net.arch)
        keras_probs = net.model.predict(xin[..., None], batch_size=500, verbose=0)
        for runtime, probs in (
            ("Keras float32", keras_probs),
            ("float32 LiteRT", tflite_predict(net.float_path, xin)),
            ("int8 LiteRT", tflite_predict(net.int8_path, xin)),
        ):
            acc = float((np.asarray(probs).argmax(1) == y).mean())
            rows.append(
                {
                    "network": net.label,
                    "runtime": runtime,
                    "accuracy": acc,
                    "n": len(y),
                    "trained": net.trained,
                }
            )
    return rows


def _judged(truth: list[dict[str, Any]], readings: list[Any]) -> dict[str, Any]:
    """Readings against their frames' truth: the score, which were right, and how many were
    confident (and right)."""
    from host.reading_score import score

    truths = [f["text"] for f in truth]
    texts = [r.text for r in readings]
    correct = [t == g for t, g in zip(truths, texts, strict=True)]
    confident = [r.confident for r in readings]
    return {
        "score": score(truths, texts),
        "correct": correct,
        "confident": sum(confident),
        "confident_right": sum(c and ok for c, ok in zip(confident, correct, strict=True)),
    }


def frame_accuracy(frames: dict[str, Any]) -> dict[str, Any]:
    from host.reading_score import (
        DIGIT_OUTCOMES,
        ERROR_KINDS,
        boxes_right,
        error_kind,
        frame_outcomes,
        glyph_split,
        score,
        threshold_curve,
    )

    out: dict[str, Any] = {"sizes": {}, "peers": []}
    for size, res in frames["sizes"].items():
        judged = _judged(res["truth"], res["readings"])
        truths = [f["text"] for f in res["truth"]]
        texts = [r.text for r in res["readings"]]
        correct = judged["correct"]
        min_conf = [min((d.confidence for d in r.digits), default=0.0) for r in res["readings"]]
        outcomes = dict.fromkeys((*DIGIT_OUTCOMES, "extra"), 0)
        found = 0  # digits boxed one each, grouped as the truth's (or the frame read right)
        for f, r, ok in zip(res["truth"], res["readings"], correct, strict=True):
            for k, v in frame_outcomes(f, r.digits).items():
                outcomes[k] += v
            found += ok or boxes_right(f, r.digits)
        out["sizes"][size] = {
            "outcomes": outcomes,
            "boxes_right": found,
            "score": judged["score"],
            "curve": threshold_curve(correct, min_conf, THRESHOLDS),
            "errors": {
                k: sum(error_kind(t, g) == k for t, g in zip(truths, texts, strict=True))
                for k in ERROR_KINDS[1:]
            },
            "confident": judged["confident"],
            "confident_right": judged["confident_right"],
            "glyphs": glyph_split(res["truth"], correct, frames["mnist_misread"]),
        }
    shot = frames.get("one_shot")
    if shot:
        out["one_shot"] = _judged(shot["truth"], shot["readings"])
    tess = frames.get("tesseract")
    if tess:
        first = next(iter(frames["sizes"].values()))
        truth = first["truth"]
        ours = [r.text for r in first["readings"]]
        for psm, run in tess["runs"].items():
            n = len(run["results"])
            subsets = [("all", list(range(n)))]
            dark = [i for i in range(n) if truth[i]["polarity"] == "dark_on_light"]
            subsets.append(("dark_on_light", dark))
            for subset, idx in subsets:
                t = [truth[i]["text"] for i in idx]
                out["peers"].append(
                    {
                        "psm": psm,
                        "subset": subset,
                        "tesseract": score(t, [run["results"][i].text for i in idx]),
                        "ours": score(t, [ours[i] for i in idx]),
                    }
                )
    return out


# --- 5. footprint ------------------------------------------------------------------------------


def footprint(nets: list[Network], sets: list[FrameSet], plan: Plan) -> dict[str, Any]:
    from host import bench_footprint as fp

    files = sorted(p for p in MODELS.glob("*") if p.suffix in (".tflite", ".keras") and p.is_file())
    frame_file = sets[0].directory / sets[0].truth[0]["file"]
    probes: dict[str, list[Any]] = {"device": [], "tensorflow": []}
    for _ in range(plan.footprint_reps):  # interleaved: device, TF, device, TF...
        probes["device"].append(
            fp.run_probe(fp.DEVICE_PROBE, [str(nets[0].int8_path), str(frame_file)], ROOT)
        )
        probes["tensorflow"].append(fp.run_probe(fp.TF_PROBE, [str(nets[0].keras_path)], ROOT))
    device_size, tf_size = fp.installed_sizes()
    daemon: dict[str, Any] | str
    cfg = sets[0].directory.parent / "daemon.toml"
    cfg.write_text(fp.daemon_config(sets[0].directory, nets[0].int8_path), encoding="utf-8")
    try:
        daemon = fp.run_daemon(cfg, len(sets[0].files), ROOT)
    except (RuntimeError, OSError) as e:
        daemon = f"the daemon run failed: {e}"
    return {
        "files": [(p.name, p.stat().st_size) for p in files],
        "extra_files": [
            (f"{p.name} (converted by the bench)", p.stat().st_size)
            for net in nets
            for p in (net.int8_path, net.float_path)
            if p.parent != MODELS
        ],
        "probes": probes,
        "installed": (device_size, tf_size),
        "daemon": daemon,
    }


# --- main ---------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number of 1 or more")
    return n


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a handful of frames, one repetition")
    p.add_argument("--frames", type=_positive, help="fresh 640x480 frames (default 500)")
    p.add_argument("--reps", type=_positive, help="repetitions of every timing (default 5)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (reports/)")
    p.add_argument("--models", type=Path, default=MODELS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as e:
        raise OutputPathError(
            f"cannot write the report to {out} ({e.strerror}); choose another --out"
        ) from e


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    plan = Plan.from_args(args)
    _check_out(args.out)
    pinning = pin_to_one_core()
    tf = pin_tensorflow()
    load_before = os.getloadavg()
    results: dict[str, Any] = {"plan": plan, "pinning": pinning, "env": environment(tf)}
    results["argv"] = args.command
    results["seed"] = FRESH_SEED
    spent: dict[str, float] = {}
    results["section_s"] = spent

    @contextlib.contextmanager
    def section(name: str) -> Any:
        logger.info("%s", name)
        t0 = time.perf_counter()
        yield
        spent[name] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        with section("loading (and, if missing, converting) the models"):
            nets = load_networks(args.models, tmp)
            results["nets"] = nets
            results["manifest"] = _manifest(nets[0].int8_path)
        with section("1. per-digit inference"):
            results["inference"] = bench_inference(nets, plan, tf)
        with section(f"rendering fresh frames (seed {FRESH_SEED})"):
            sets = render_frames(tmp, plan)
        with section("2-3. frame pipeline with Tesseract interleaved"):
            results["frames"] = bench_frames(nets[0].int8_path, sets, plan)
        with section("4. MNIST accuracy"):
            results["mnist"] = mnist_accuracy(nets, plan)
            results["frame_accuracy"] = frame_accuracy(results["frames"])
        with section("5. footprint (subprocess probes, installed size, daemon)"):
            results["footprint"] = footprint(nets, sets, plan)
    results["load"] = (load_before, os.getloadavg())
    results["elapsed_s"] = time.perf_counter() - started
    from host import bench_report

    bench_report.write(results, args.out)
    print(bench_report.summary(results))
    print(f"wrote {args.out / 'bench.md'} in {results['elapsed_s']:.0f} s")
    return results


def _manifest(model: Path) -> dict[str, Any]:
    from device.contract import load_contract

    contract = load_contract(model)
    return {"sha256": contract.sha256, **contract.extra}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.command = "python -m host.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
