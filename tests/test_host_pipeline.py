"""Host pipeline end to end on a tiny run: train → convert → the interpreter reads digits;
and bad input (wrong --arch, not-a-model, unwritable output) fails cleanly, losing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.contract import load_contract, sha256_file

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "digits.keras"
    r = run(
        "-m", "host.train", "--limit", "2000", "--epochs", "1", "--out", str(out), "--verbose", "0"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Total params" in r.stdout  # model.summary() printed at start
    return out


@pytest.mark.slow
def test_tiny_train_convert_and_interpreter_predicts(tiny_model: Path):
    tflite = tiny_model.with_suffix(".tflite")
    r = run("-m", "host.convert", "--keras", str(tiny_model), "--out", str(tflite))
    assert r.returncode == 0, r.stderr[-2000:]
    contract = load_contract(tflite)  # schema + sha256 checked by the device's own loader
    assert contract.sha256 == sha256_file(tflite)
    manifest = json.loads(tflite.with_suffix(".json").read_text())
    assert manifest["training"]["limit"] == 2000 and manifest["arch"] == "default"
    assert manifest["width"] == 1.0  # read from the network, as train.json's
    # Chosen on the digits the run held out (a tenth of --limit), never on those it learned.
    assert "held-out validation digits (200, seed 1234)" in manifest["threshold_basis"]

    from ai_edge_litert.interpreter import Interpreter

    from device.contract import dequantize, to_input_tensor
    from host.augment import renormalize
    from host.mnist import load_mnist

    interp = Interpreter(model_path=str(tflite))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    data = load_mnist()
    x = renormalize(data.x_test[:200])
    interp.resize_tensor_input(inp["index"], [200, 28, 28, 1])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], to_input_tensor(x, contract.input))
    interp.invoke()
    probs = dequantize(interp.get_tensor(out["index"]), contract.output)
    # Ten digits and "none" (not a digit), as the manifest says.
    assert probs.shape == (200, 11) and contract.labels[-1] == "none"
    assert np.allclose(probs.sum(1), 1.0, atol=0.05)
    # One epoch on 2,000 digits is not a good model, but the int8 file must agree with it.
    import keras

    keras_probs = keras.models.load_model(tiny_model).predict(x[..., None], verbose=0)
    assert (keras_probs.argmax(1) == probs.argmax(1)).mean() >= 0.9


@pytest.mark.slow
def test_init_from_continues_and_extra_images_are_used(tiny_model: Path, tmp_path: Path):
    import cv2

    extra = tmp_path / "mine"
    for d in (3, 7):
        (extra / str(d)).mkdir(parents=True)
        img = np.full((60, 40), 230, np.uint8)
        cv2.putText(img, str(d), (5, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.8, 20, 4)
        cv2.imwrite(str(extra / str(d) / "a.png"), img)
    (extra / "7" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "ft.keras"
    r = run(
        "-m", "host.train", "--limit", "500", "--epochs", "1", "--init-from", str(tiny_model),
        "--extra", str(extra), "--out", str(out), "--verbose", "0", "--mnist-repeat", "2",
        "--elastic", "0.5",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "broken.png" in r.stderr  # reported by path and skipped
    info = json.loads(out.with_suffix(".train.json").read_text())
    assert info["init_from"] == str(tiny_model) and info["mnist_repeat"] == 2
    assert info["elastic"] == 0.5  # the bend ran inside the compiled training step
    # 500 MNIST digits (plus a few style variants) presented twice, and the two own images.
    assert 1000 < info["train_samples"] < 1200


@pytest.mark.slow
def test_continuing_a_wide_network_records_its_width(tmp_path: Path):
    """--init-from leaves --width at 1; train.json must say the width of what was trained."""
    from host.architectures import default_model

    wide = default_model(2.0)
    parent = tmp_path / "wide.keras"
    wide.save(parent)
    out = tmp_path / "wide-ft.keras"
    r = run(
        "-m", "host.train", "--limit", "300", "--epochs", "1", "--init-from", str(parent),
        "--out", str(out), "--verbose", "0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(out.with_suffix(".train.json").read_text())
    assert info["width"] == 2.0 and info["init_from"] == str(parent)
    assert info["parameters"] == wide.count_params()


@pytest.mark.slow
def test_an_interrupted_run_continues_from_its_last_finished_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """--backup: a run stopped after its first epoch goes on from the second when the same
    command is run again, its optimizer where it was; other options are refused by name."""
    import keras

    from host.errors import TrainingError
    from host.train import parse_args, train

    steps_done: dict[str, int] = {}

    class StopAtSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            if epoch == 1:
                steps_done["before"] = int(self.model.optimizer.iterations)
                raise KeyboardInterrupt  # as Ctrl-C would

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            steps_done.setdefault("after", int(self.model.optimizer.iterations))
            steps_done.setdefault("epoch", epoch)

    backup, out = tmp_path / "backup", tmp_path / "m.keras"
    argv = ["--limit", "300", "--out", str(out), "--backup", str(backup), "--verbose", "0"]
    with pytest.raises(KeyboardInterrupt):
        train(parse_args([*argv, "--epochs", "3"]), callbacks=[StopAtSecondEpoch()])
    assert not out.exists()
    assert list(json.loads((backup / "run.json").read_text())["epochs"]) == ["0"]
    assert "1 of 3 epochs are saved" in caplog.text and "rerun the same command" in caplog.text

    with pytest.raises(TrainingError, match="epochs: 3 there, 4 now"):
        train(parse_args([*argv, "--epochs", "4"]))
    assert (backup / "run.json").is_file()  # refused, and kept

    train(parse_args([*argv, "--epochs", "3"]), callbacks=[Watch()])
    assert steps_done["epoch"] == 1 and steps_done["after"] == steps_done["before"] > 0
    info = json.loads(out.with_suffix(".train.json").read_text())
    assert info["resumed_at"] == [1] and len(info["history"]["val_accuracy"]) == 3
    assert not backup.exists()  # the model is saved: the backup has done its job


def test_a_backup_folder_holding_other_files_is_refused(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    r = run("-m", "host.train", "--limit", "300", "--epochs", "1", "--backup", str(tmp_path),
            "--out", str(tmp_path / "m.keras"), "--verbose", "0")  # fmt: skip
    assert r.returncode == 2 and "no training backup" in r.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_saved_model_is_the_network_without_the_training_augmentation(tiny_model: Path):
    import keras

    model = keras.models.load_model(tiny_model)
    assert model.name == "default" and model.output_shape == (None, 11)
    assert not [layer.name for layer in model.layers if "augment" in layer.name]
    info = json.loads(tiny_model.with_suffix(".train.json").read_text())
    assert info["augment"] is True and info["mnist_repeat"] == 1 and info["elastic"] == 0.0
    assert info["width"] == 1.0


def test_mnist_repeat_out_of_range_is_refused():
    r = run("-m", "host.train", "--mnist-repeat", "0", "--limit", "100", "--out", "/tmp/x.keras")
    assert r.returncode == 2 and "--mnist-repeat must be 1..10" in r.stderr


def test_elastic_share_out_of_range_is_refused():
    r = run("-m", "host.train", "--elastic", "1.5", "--limit", "100", "--out", "/tmp/x.keras")
    assert r.returncode == 2 and "--elastic must be in 0..1" in r.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--width", "5"], "--width must be in 0.5..4.0"),
        (["--width", "2", "--arch", "seed"], "--width applies to a new default network only"),
    ],
)
def test_width_out_of_range_or_for_another_network_is_refused(extra, message):
    r = run("-m", "host.train", *extra, "--limit", "100", "--out", "/tmp/x.keras")
    assert r.returncode == 2 and message in r.stderr


def test_wrong_arch_is_a_clear_error():
    r = run("-m", "host.train", "--arch", "resnet", "--limit", "100", "--out", "/tmp/x.keras")
    assert r.returncode == 2
    assert "unknown --arch 'resnet'" in r.stderr and "default" in r.stderr


def test_convert_refuses_a_file_that_is_not_a_model(tmp_path: Path):
    bogus = tmp_path / "digits.keras"
    bogus.write_bytes(b"PK\x03\x04 definitely not keras")
    out = tmp_path / "out.tflite"
    r = run("-m", "host.convert", "--keras", str(bogus), "--out", str(out))
    assert r.returncode == 2 and "is not a Keras model" in r.stderr
    assert not out.exists()


def test_unwritable_output_path_is_refused_before_training(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    r = run("-m", "host.train", "--limit", "100", "--out", str(blocker / "digits.keras"))
    assert r.returncode == 2 and "cannot write" in r.stderr
    assert blocker.read_text() == "I am a file, not a folder"


def test_failed_conversion_keeps_the_existing_model(tmp_path: Path):
    bogus = tmp_path / "digits.keras"
    bogus.write_bytes(b"PK\x03\x04 not a model")
    out = tmp_path / "out.tflite"
    out.write_bytes(b"last good model")
    r = run("-m", "host.convert", "--keras", str(bogus), "--out", str(out))
    assert r.returncode == 2
    assert out.read_bytes() == b"last good model"


def test_crops_seed_gives_new_camera_frames_but_keeps_the_validation_split(monkeypatch):
    import host.crops
    from host.train import prepare_data

    seeds: list[int] = []

    def fake_crops(frames: int, seed: int, indices: np.ndarray, size=(640, 480)):
        seeds.append(seed)
        return np.zeros((frames, 28, 28), np.float32), np.zeros(frames, np.uint8), None

    monkeypatch.setattr(host.crops, "camera_crops", fake_crops)
    runs = [
        prepare_data("default", 300, np.random.default_rng(1), 4, 1, crops_seed)
        for crops_seed in (None, 5, None)
    ]
    assert seeds[1] == 5 and seeds[0] == seeds[2] != 5
    for _, _, x_val, y_val in runs[1:]:
        np.testing.assert_array_equal(x_val, runs[0][2])
        np.testing.assert_array_equal(y_val, runs[0][3])


def test_peak_lr_out_of_range_is_refused():
    r = run("-m", "host.train", "--peak-lr", "0", "--limit", "100", "--out", "/tmp/x.keras")
    assert r.returncode == 2 and "--peak-lr must be in (0, 0.1]" in r.stderr


def test_hd_frames_add_crops_of_both_hd_sizes_from_seeds_of_their_own(monkeypatch):
    import host.crops
    from host.train import prepare_data

    calls: list[tuple[int, int, tuple[int, int]]] = []

    def fake_crops(frames: int, seed: int, indices: np.ndarray, size=(640, 480)):
        calls.append((frames, seed, size))
        return np.zeros((frames, 28, 28), np.float32), np.full(frames, 7, np.uint8), None

    monkeypatch.setattr(host.crops, "camera_crops", fake_crops)
    plain = prepare_data("default", 300, np.random.default_rng(1), 4, 1, None)
    calls.clear()
    x_tr, y_tr, _, _ = prepare_data("default", 300, np.random.default_rng(1), 4, 1, None, 5)
    assert [(n, size) for n, _, size in calls] == [
        (4, (640, 480)),
        (3, (1280, 720)),
        (2, (1920, 1080)),
    ]
    assert len({seed for _, seed, _ in calls}) == 3
    # The 640x480 crops are the plain run's; the HD ones come on top.
    assert len(x_tr) == len(plain[0]) + 5 and (y_tr[-5:] == 7).all()


def test_negative_frame_counts_are_refused():
    r = run("-m", "host.train", "--hd-frames", "-1", "--limit", "100", "--out", "/tmp/x.keras")
    assert r.returncode == 2 and "--hd-frames must be 0 or more" in r.stderr
