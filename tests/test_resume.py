"""host.resume: what a training backup accepts and refuses, without training (the resumed run
itself is tested in test_host_pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.errors import TrainingError
from host.resume import Backup, data_fingerprint

OPTIONS = {"epochs": 40, "width": 2.0, "seed": 1234}


def test_a_backup_of_other_training_data_is_refused_and_kept(tmp_path: Path) -> None:
    x = np.arange(5000 * 28 * 28, dtype=np.float32).reshape(5000, 28, 28)
    y = np.arange(5000) % 10
    first = Backup(tmp_path / "b", OPTIONS)
    assert first.open() == 0
    first.bind_data(data_fingerprint(x, y))
    first.epoch_done(0, {"loss": 1.0}, 3.0)

    again = Backup(tmp_path / "b", dict(OPTIONS))
    assert again.open() == 0  # (no Keras state saved: the run starts over, same data)
    again.bind_data(data_fingerprint(x, y))

    recut = x.copy()
    recut[-1, 14, 14] += 1.0  # one pixel of the last crop: another segmenter's cut
    later = Backup(tmp_path / "b", dict(OPTIONS))
    later.open()
    with pytest.raises(TrainingError, match="training data differ"):
        later.bind_data(data_fingerprint(recut, y))
    assert (tmp_path / "b" / "run.json").is_file()


def test_a_damaged_record_or_a_file_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "run.json").write_text("{not json")
    with pytest.raises(TrainingError, match=r"run\.json is unreadable .*delete"):
        Backup(folder, OPTIONS).open()
    (folder / "run.json").write_text('{"format": 99, "options": {}, "epochs": {}}')
    with pytest.raises(TrainingError, match="layout 99"):
        Backup(folder, OPTIONS).open()
    afile = tmp_path / "f"
    afile.write_text("x")
    with pytest.raises(TrainingError, match="is a file"):
        Backup(afile, OPTIONS).open()


def test_history_needs_every_epoch_recorded(tmp_path: Path) -> None:
    b = Backup(tmp_path / "b", OPTIONS)
    b.open()
    b.epoch_done(0, {"loss": 2.0, "val_accuracy": 0.5}, 10.0)
    b.epoch_done(1, {"loss": 1.0, "val_accuracy": 0.7}, 12.5)
    assert b.history(2) == {"loss": [2.0, 1.0], "val_accuracy": [0.5, 0.7]}
    assert b.seconds() == 22.5
    with pytest.raises(TrainingError, match=r"no record of epochs \[2\]"):
        b.history(3)
