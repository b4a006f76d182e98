"""The on-disk FIFO behind MQTT delivery: order, survives reopen, bounded, crash leftovers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from device.errors import OutputError
from device.spool import Spool


def test_items_come_back_in_append_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", 10)
    seqs = [spool.append(f"item {i}".encode()) for i in range(5)]
    assert seqs == sorted(seqs)
    assert [data for _, data in spool.items()] == [f"item {i}".encode() for i in range(5)]
    assert len(spool) == 5


def test_removed_items_are_gone_and_the_rest_keep_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", 10)
    seqs = [spool.append(bytes([i])) for i in range(4)]
    assert spool.remove(seqs[1]) is True
    assert spool.remove(seqs[1]) is False  # a second PUBACK for the same item is harmless
    assert [data for _, data in spool.items()] == [b"\x00", b"\x02", b"\x03"]
    assert seqs[1] not in spool


def test_queue_survives_reopen_and_continues_numbering(tmp_path: Path) -> None:
    first = Spool(tmp_path / "q", 10)
    a = first.append(b"a")
    first.append(b"b")
    first.remove(a)
    first.close()

    second = Spool(tmp_path / "q", 10)
    c = second.append(b"c")
    assert [data for _, data in second.items()] == [b"b", b"c"]
    assert c > a  # new items sort after the old ones even after a restart


def test_full_queue_drops_the_oldest_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path / "q", 3)
    with caplog.at_level(logging.WARNING, logger="device.spool"):
        for i in range(5):
            spool.append(str(i).encode())
    assert [data for _, data in spool.items()] == [b"2", b"3", b"4"]
    assert len(list((tmp_path / "q").iterdir())) == 3
    drops = [r for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert len(drops) == 2


def test_reopening_with_a_smaller_bound_trims_the_oldest(tmp_path: Path) -> None:
    big = Spool(tmp_path / "q", 10)
    for i in range(6):
        big.append(str(i).encode())
    small = Spool(tmp_path / "q", 2)
    assert [data for _, data in small.items()] == [b"4", b"5"]


def test_half_written_item_from_a_crash_is_discarded(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", 10)
    spool.append(b"whole")
    (tmp_path / "q" / "00000000000000000099.tmp").write_bytes(b"half")
    (tmp_path / "q" / "notes.txt").write_text("left by someone")
    again = Spool(tmp_path / "q", 10)
    assert [data for _, data in again.items()] == [b"whole"]
    assert not list((tmp_path / "q").glob("*.tmp"))


def test_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match=r"cannot use queue directory .*queue_dir"):
        Spool(blocker / "q", 10)


def test_closed_queue_refuses_new_items_but_keeps_old_ones(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "q", 10)
    spool.append(b"kept")
    spool.close()
    with pytest.raises(OutputError, match="closed"):
        spool.append(b"late")
    assert [data for _, data in Spool(tmp_path / "q", 10).items()] == [b"kept"]
