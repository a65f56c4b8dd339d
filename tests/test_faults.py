"""A disk that fills up while a run writes: the run ends with a message, the store stays readable.

The full disk is real as far as the trainer can tell: its process may not grow any file past a
limit (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write fails with EFBIG as it fails with ENOSPC on
a full disk), set just above the store's size once a few steps have room to be written."""
import os
import resource
import signal
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT

from core import cli
from core.runs import store
from core.training.config import TrainConfig

pytestmark = pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")


def quick(epochs: int) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"subset": 0.04, "image_size": 16},
        "model": {"options": {"width": 0.25, "depth": 1}},
        "run": {"epochs": epochs, "batch_size": 32, "threads": 1},
    })


def test_a_disk_that_fills_while_a_run_writes_fails_the_run_and_leaves_the_store_readable():
    earlier = cli.run(quick(epochs=1), name="before the disk filled")  # also warms the dataset cache
    assert store.get_run(earlier).status == "finished"
    run_id = store.create_run(quick(epochs=500), "writes until the disk is full")
    db = store.db_path()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the log starts empty: its growth is the run's
    room = db.stat().st_size + 256 * 1024  # no file of the trainer's may grow past this: ~20 commits

    def full_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    log = store.run_dir(run_id) / "log.txt"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "core.cli", "--run-id", run_id], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=full_disk,  # noqa: PLW1509  (no threads of ours run yet in the child)
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        code = proc.wait(timeout=300)
    assert code != 0  # it stopped training, rather than going on unrecorded

    record = store.get_run(run_id)  # the store is readable, by this process and the pages
    assert record.status in ("failed", "interrupted"), record.status
    # the page's message says why, whether the trainer could still record it or only log it
    assert "could not be written" in record.message and "is the disk full?" in record.message, record.message
    steps = store.metrics(run_id, "step")["step"].tolist()
    assert steps and steps == list(range(1, len(steps) + 1))  # what was committed is whole
    assert len(store.metrics(earlier, "epoch")) == 1 and store.get_run(earlier).status == "finished"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.get_run(store.create_run(TrainConfig(), "after")).status == "queued"  # space again: it works


def test_an_interrupted_run_quotes_the_last_error_its_trainer_logged_in_either_language(tmp_path):
    log = tmp_path / "log.txt"
    log.write_text("epoch 1: loss 2.3\nerror: first\n错误：磁盘已满\n", encoding="utf-8")
    assert store.last_error(log) == "磁盘已满"
    log.write_text("epoch 1\nerror: The run store could not be written\nTraceback ...\n", encoding="utf-8")
    assert store.last_error(log) == "The run store could not be written"
    log.write_text("epoch 1: loss 2.3\n", encoding="utf-8")
    assert store.last_error(log) is None
    assert store.last_error(tmp_path / "missing.txt") is None
