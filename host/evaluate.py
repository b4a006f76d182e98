"""Evaluate the shipped model on the MNIST test set and write reports/ (``make evaluate``).

Runs the int8 .tflite through the LiteRT interpreter (the device's runtime) and the Keras model,
for the default network and, when trained (``make train-seed``), the tutorial's seed network.
Writes ``reports/evaluation.md`` and PNG figures, and checks that the int8 accuracy equals the
figure recorded in ``models/digits.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from device.contract import NOT_A_DIGIT_INDEX, NOT_A_DIGIT_LABEL
from host.errors import OutputPathError, TrainingError, run_command
from host.mnist import ROOT, load_mnist

logger = logging.getLogger(__name__)

MODELS = ROOT / "models"
REPORTS = ROOT / "reports"
MISCLASSIFIED_SHOWN = 40
# The int8 accuracy must match the manifest exactly: same file, same data, deterministic kernels.
MANIFEST_TOLERANCE = 1e-9


@dataclass
class ArchResult:
    name: str
    keras_acc: float | None
    int8_acc: float
    float_tflite_acc: float | None
    params: int | None
    macs: int | None
    tflite_bytes: int
    keras_bytes: int | None
    probs: np.ndarray  # int8 model's probabilities on the test set


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    _plt().close(fig)


def fig_samples(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(3, 10, figsize=(10, 3.3))
    for ax, i in zip(axes.ravel(), range(30), strict=True):
        ax.imshow(x[i], cmap="gray")
        ax.set_title(str(y[i]), fontsize=9)
        ax.axis("off")
    fig.suptitle("MNIST test digits with their labels")
    _save(fig, path)


def fig_curves(histories: dict[str, dict], path: Path) -> None:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        if not hist:
            continue
        epochs = range(1, len(hist.get("loss", [])) + 1)
        a1.plot(epochs, hist["loss"], label=f"{name} train")
        a1.plot(epochs, hist["val_loss"], "--", label=f"{name} validation")
        a2.plot(epochs, hist["accuracy"], label=f"{name} train")
        a2.plot(epochs, hist["val_accuracy"], "--", label=f"{name} validation")
    a1.set(title="loss", xlabel="epoch", yscale="log")
    a2.set(title="accuracy", xlabel="epoch", ylim=(0.97, 1.0))
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    _save(fig, path)


def fig_confusion(y: np.ndarray, pred: np.ndarray, path: Path) -> None:
    plt = _plt()
    # An 11th column when the model has a "none" (not a digit) output and used it.
    cols = max(10, int(pred.max()) + 1)
    cm = np.zeros((10, cols), dtype=int)
    np.add.at(cm, (y, pred), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    off = cm.copy()
    np.fill_diagonal(off, 0)
    ax.imshow(off, cmap="Reds")
    for i in range(10):
        for j in range(cols):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", xticks=range(cols), yticks=range(10))
    ax.set_xticklabels(
        [str(j) if j < NOT_A_DIGIT_INDEX else NOT_A_DIGIT_LABEL for j in range(cols)]
    )
    ax.set_title("confusion matrix, int8 LiteRT (colour: errors only)")
    _save(fig, path)


def fig_misclassified(x: np.ndarray, y: np.ndarray, probs: np.ndarray, path: Path) -> None:
    plt = _plt()
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y)[:MISCLASSIFIED_SHOWN]
    cols = 10
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(10, 1.25 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), wrong, strict=False):
        ax.imshow(x[i], cmap="gray")
        shown = pred[i] if pred[i] < NOT_A_DIGIT_INDEX else NOT_A_DIGIT_LABEL
        ax.set_title(f"{y[i]}→{shown} {probs[i].max():.2f}", fontsize=8, color="crimson")
    fig.suptitle("misclassified test digits: true→predicted, confidence")
    _save(fig, path)


def threshold_curve(probs: np.ndarray, y: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, accepted fraction, error rate among accepted) for digit-level decisions."""
    conf = probs.max(1)
    wrong = probs.argmax(1) != y
    rows = []
    for t in (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99):
        acc = conf >= t
        rows.append((t, float(acc.mean()), float(wrong[acc].mean()) if acc.any() else 0.0))
    return rows


def fig_threshold(rows: list[tuple[float, float, float]], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot([r[1] for r in rows], [r[2] * 100 for r in rows], "o-")
    for t, a, e in rows:
        ax.annotate(f"{t:.2f}", (a, e * 100), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="digits accepted (fraction)", ylabel="error among accepted (%)")
    ax.set_title("MNIST test: confidence threshold trade-off (int8)")
    _save(fig, path)


def evaluate_arch(name: str, keras_path: Path, tflite_path: Path, x_u8, y) -> ArchResult | None:
    from host.convert import load_keras, model_inputs, tflite_predict

    if not tflite_path.is_file():
        return None
    info_path = keras_path.with_suffix(".train.json")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    arch = info.get("arch", name)
    x = model_inputs(x_u8, arch)
    probs = tflite_predict(tflite_path, x)
    int8_acc = float((probs.argmax(1) == y).mean())
    keras_acc = params = None
    if keras_path.is_file():
        model = load_keras(keras_path)
        keras_acc = float(
            (model.predict(x[..., None], batch_size=500, verbose=0).argmax(1) == y).mean()
        )
        params = int(model.count_params())
    float_path = tflite_path.with_name(f"{tflite_path.stem}_float.tflite")
    float_acc = None
    if float_path.is_file():
        float_acc = float((tflite_predict(float_path, x).argmax(1) == y).mean())
    return ArchResult(
        name=name,
        keras_acc=keras_acc,
        int8_acc=int8_acc,
        float_tflite_acc=float_acc,
        params=params,
        macs=info.get("macs"),
        tflite_bytes=tflite_path.stat().st_size,
        keras_bytes=keras_path.stat().st_size if keras_path.is_file() else None,
        probs=probs,
    )


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.2f}%"


def _none_lines(r: ArchResult) -> list[str]:
    """What the "none" (not a digit) output did on MNIST's digits, when the model has one."""
    if r.probs.shape[1] <= NOT_A_DIGIT_INDEX:
        return []
    rejected = int((r.probs.argmax(1) == NOT_A_DIGIT_INDEX).sum())
    return [
        'The default network\'s 11th output, "none", rejects crops that are no digit (touching',
        "pairs, pieces of digits, smudges: trained on the segmenter's crops of rendered frames).",
        f'On MNIST\'s 10,000 test digits it answered "none" {rejected} time(s); those count as',
        "errors above.",
        "",
    ]


def write_report(results: list[ArchResult], curve, manifest: dict, out: Path) -> None:
    lines = [
        "# Evaluation: MNIST test set (10,000 digits)",
        "",
        "Made by `make evaluate` (`python -m host.evaluate`). The int8 model runs through the",
        "LiteRT interpreter (`ai_edge_litert`), exactly as on the device.",
        "",
        "| network | Keras float | LiteRT int8 | int8 − float | parameters | MACs / digit "
        "| .tflite size |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delta = "—" if r.keras_acc is None else f"{(r.int8_acc - r.keras_acc) * 100:+.2f} pp"
        lines.append(
            f"| {r.name} | {_pct(r.keras_acc)} | {_pct(r.int8_acc)} | {delta} | "
            f"{r.params or '—':,} | {r.macs or '—':,} | {r.tflite_bytes / 1024:.1f} KB |"
            if r.params and r.macs
            else f"| {r.name} | {_pct(r.keras_acc)} | {_pct(r.int8_acc)} | {delta} | — | — | "
            f"{r.tflite_bytes / 1024:.1f} KB |"
        )
    lines += [
        "",
        f"Manifest `models/digits.json` records int8 accuracy "
        f"{_pct(manifest.get('accuracy', {}).get('litert_int8'))}; recommended threshold "
        f"{manifest.get('recommended_threshold')}.",
        "",
        *_none_lines(results[0]),
        "## Confidence threshold (default network, int8, per digit)",
        "",
        "| threshold | digits accepted | error among accepted |",
        "|---|---|---|",
    ]
    lines += [f"| {t:.2f} | {a * 100:.2f}% | {e * 100:.3f}% |" for t, a, e in curve]
    lines += [
        "",
        "## Figures",
        "",
        "![samples](samples.png)",
        "![training curves](training_curves.png)",
        "![confusion matrix](confusion.png)",
        "![misclassified](misclassified.png)",
        "![threshold](threshold.png)",
        "",
    ]
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, out)


def evaluate(args: argparse.Namespace) -> int:
    reports = Path(args.reports)
    try:
        reports.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"cannot create {reports} ({e.strerror})") from e
    model = Path(args.model)
    manifest_path = model.with_suffix(".json")
    if not model.is_file() or not manifest_path.is_file():
        raise TrainingError(f"{model} or its manifest is missing; run `make train convert` first")
    manifest = json.loads(manifest_path.read_text())
    data = load_mnist()
    results = []
    default = evaluate_arch(
        "default (ours)", model.with_suffix(".keras"), model, data.x_test, data.y_test
    )
    assert default is not None
    results.append(default)
    seed = evaluate_arch(
        "seed (tutorial)", MODELS / "seed.keras", MODELS / "seed.tflite", data.x_test, data.y_test
    )
    if seed is not None:
        results.append(seed)
    else:
        logger.info("no models/seed.tflite: run `make train-seed convert-seed` for the comparison")

    fig_samples(data.x_test, data.y_test, reports / "samples.png")
    histories = {}
    for r, path in (
        (default, model.with_suffix(".train.json")),
        (seed, MODELS / "seed.train.json"),
    ):
        if r is not None and path.is_file():
            histories[r.name.split()[0]] = json.loads(path.read_text()).get("history", {})
    fig_curves(histories, reports / "training_curves.png")
    fig_confusion(data.y_test, default.probs.argmax(1), reports / "confusion.png")
    fig_misclassified(data.x_test, data.y_test, default.probs, reports / "misclassified.png")
    curve = threshold_curve(default.probs, data.y_test)
    fig_threshold(curve, reports / "threshold.png")
    write_report(results, curve, manifest, reports / "evaluation.md")

    recorded = manifest.get("accuracy", {}).get("litert_int8")
    for r in results:
        print(
            f"{r.name:16s} keras {_pct(r.keras_acc)}  int8 {_pct(r.int8_acc)}  "
            f"params {r.params}  MACs {r.macs}  {r.tflite_bytes / 1024:.1f} KB"
        )
    print(f"report: {reports / 'evaluation.md'}")
    if recorded is not None and abs(round(default.int8_acc, 5) - recorded) > MANIFEST_TOLERANCE:
        print(
            f"error: int8 accuracy {default.int8_acc:.5f} differs from the manifest's {recorded}; "
            "the model and manifest are out of step, run `make convert`",
            file=sys.stderr,
        )
        return 1
    print(f"int8 accuracy matches the manifest ({recorded})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=MODELS / "digits.tflite")
    p.add_argument("--reports", type=Path, default=REPORTS)
    args = p.parse_args(argv)
    return run_command(lambda: evaluate(args))


if __name__ == "__main__":
    raise SystemExit(main())
