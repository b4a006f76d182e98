"""Resume an interrupted training run (``host.train --backup DIR``).

The full recipe takes about 2 hours on a 2-core laptop: a closed lid, a Ctrl-C or a power cut
should cost at most one epoch, not the run. After every epoch the run's state (the network's
and the optimizer's variables, so the learning-rate schedule goes on where it stopped) is saved
in ``DIR/keras`` by Keras' own ``BackupAndRestore``, and the epoch's metrics and seconds in
``DIR/run.json`` beside the options the run was started with and a fingerprint of its training
data. Rerunning the same command continues from the last finished epoch; other options, or
other data, are refused (they would silently mix two runs). When the run completes, its
``train.json`` gets the whole history and the seconds of all its parts, and ``DIR`` is deleted
once the model is saved.

A resumed run is not bit-identical to an uninterrupted one: the data are shuffled afresh from
the seed when it restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from host.errors import TrainingError

# What run.json's layout is; a backup written by another layout is refused, not guessed at.
BACKUP_FORMAT = 1
# Options that do not change what is trained: a resumed run may differ in these.
_FREE_OPTIONS = ("verbose", "backup")


def options_of(args: Any) -> dict[str, Any]:
    """The options a run was started with, as JSON values (paths as strings)."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if k not in _FREE_OPTIONS
    }


def data_fingerprint(*arrays: Any) -> str:
    """A cheap fingerprint of training arrays: their shapes and dtypes, every label and a
    sample of about 4,096 rows of each (enough to tell two renderings of crops apart)."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(f"{a.shape}{a.dtype}".encode())
        step = max(1, len(a) // 4096)
        digest.update(a[::step].tobytes() if a.ndim > 1 else a.tobytes())
    return digest.hexdigest()[:16]


class Backup:
    """The saved state of one training run in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path, options: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.options = options
        self._record_path = self.folder / "run.json"
        self.record: dict[str, Any] = {
            "format": BACKUP_FORMAT,
            "options": options,
            "epochs": {},
            "resumed_at": [],
        }

    def open(self) -> int:
        """Check the folder and return the epoch the run starts at (0 for a new run).

        Raises TrainingError, naming the folder and what to do, when it holds something else:
        another run's state, or files that are no training backup.
        """
        if self.folder.exists() and not self.folder.is_dir():
            raise TrainingError(f"--backup {self.folder} is a file; give a folder for the backup")
        if not self._record_path.is_file():
            if self.folder.is_dir() and any(self.folder.iterdir()):
                raise TrainingError(
                    f"--backup {self.folder} holds files but no training backup (run.json); "
                    "give an empty or new folder"
                )
            return 0
        try:
            record = json.loads(self._record_path.read_text(encoding="utf-8"))
            saved = record["options"]
            if not isinstance(record["epochs"], dict):
                raise TypeError("epochs is not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TrainingError(
                f"{self._record_path} is unreadable ({type(e).__name__}); delete {self.folder} "
                "to start the run afresh"
            ) from e
        if record.get("format") != BACKUP_FORMAT:
            raise TrainingError(
                f"{self._record_path} has layout {record.get('format')!r}, not "
                f"{BACKUP_FORMAT}; delete {self.folder} to start the run afresh"
            )
        if saved != self.options:
            differ = ", ".join(
                f"{k}: {saved.get(k)!r} there, {self.options.get(k)!r} now"
                for k in sorted(set(saved) | set(self.options))
                if saved.get(k) != self.options.get(k)
            )
            raise TrainingError(
                f"--backup {self.folder} holds an interrupted run started with other options "
                f"({differ}); rerun with its options to continue it, or delete the folder to "
                "start afresh"
            )
        self.record = record
        start = self.saved_epochs()
        if start:
            self.record["resumed_at"].append(start)
        return start

    def bind_data(self, fingerprint: str) -> None:
        """Tie the backup to the run's training data (``data_fingerprint``). Options alone do
        not fix them: the camera crops are cut by the device's segmenter of the day, and the
        ``--extra`` folder may have changed. Raises TrainingError when they differ from the
        interrupted run's."""
        saved = self.record.get("data")
        if saved is not None and saved != fingerprint:
            raise TrainingError(
                f"the training data differ from those of the run backed up in {self.folder} "
                "(the segmenter cutting the camera crops, or an --extra folder, changed since); "
                "delete the folder to start afresh"
            )
        self.record["data"] = fingerprint
        self._write()

    def saved_epochs(self) -> int:
        """How many epochs the saved state holds: the epoch a rerun starts at (0: none)."""
        meta = self.folder / "keras" / "training_metadata.json"
        try:
            return int(json.loads(meta.read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def callbacks(self) -> list[Any]:
        """Keras callbacks that keep the backup: this run's record, then its state."""
        import keras

        backup = self

        class _Record(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                self._started = time.monotonic()

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                seconds = time.monotonic() - self._started
                backup.epoch_done(epoch, dict(logs or {}), seconds)

        self._write()  # the options and data, before any state is saved beside them
        # The record first: an interruption between the two then re-runs an epoch already
        # recorded (its record is overwritten) instead of resuming after one it lacks. The
        # state stays until the model is saved (``finish``), not only until fit returns.
        state = keras.callbacks.BackupAndRestore(
            str(self.folder / "keras"), double_checkpoint=True, delete_checkpoint=False
        )
        return [_Record(), state]

    def epoch_done(self, epoch: int, logs: dict[str, Any], seconds: float) -> None:
        """Record a finished epoch (0-based) and its metrics."""
        self.record["epochs"][str(epoch)] = {
            "logs": {k: float(v) for k, v in logs.items()},
            "seconds": round(seconds, 1),
        }
        self._write()

    def history(self, epochs: int) -> dict[str, list[float]]:
        """The whole run's metrics per epoch, as Keras' ``History`` gives them."""
        done = [self.record["epochs"].get(str(i)) for i in range(epochs)]
        if any(d is None for d in done):
            missing = [i for i, d in enumerate(done) if d is None]
            raise TrainingError(f"the backup in {self.folder} has no record of epochs {missing}")
        keys = list(done[-1]["logs"])
        return {k: [d["logs"].get(k, float("nan")) for d in done] for k in keys}

    def seconds(self) -> float:
        """Seconds in ``fit`` over all the run's parts."""
        return float(sum(d["seconds"] for d in self.record["epochs"].values()))

    def finish(self) -> None:
        """The run is saved: the backup has done its job."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._record_path.with_name(f".{self._record_path.name}.tmp")
        tmp.write_text(json.dumps(self.record, indent=1), encoding="utf-8")
        os.replace(tmp, self._record_path)
