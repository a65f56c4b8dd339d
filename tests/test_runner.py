"""Background runs in their own processes, and the queue that keeps one at a time on a CPU."""

import os
import signal
import time

import pytest

from core.runs import runner, store
from core.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("both_stores")  # on SQLite and on PostgreSQL (conftest)


def quick(epochs: int) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"subset": 0.04, "image_size": 16},  # 16 px: generating the set takes a quarter of the time
        "model": {"options": {"width": 0.25, "depth": 1}},
        "run": {"epochs": epochs, "batch_size": 32, "threads": 1},
    })


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_second_launch_waits_in_the_queue_then_runs_when_the_first_stops():
    runner.set_max_concurrent(1)
    first = runner.launch(quick(epochs=200), "long")
    second = runner.launch(quick(epochs=1), "short")
    assert store.get_run(first).status == "running"
    assert store.get_run(second).status == "queued"

    # Once the first run is really training, the second is still waiting for the slot.
    wait_for(lambda: len(store.metrics(first, "step")) >= 2)
    assert store.get_run(second).status == "queued"
    assert runner.tick() == []  # no free slot

    runner.stop(first)
    first_record = runner.wait(first, timeout=60)
    assert first_record.status == "stopped"
    assert first_record.pid != os.getpid() and first_record.device.startswith("cpu")
    kept = store.metrics(first, "step")
    assert len(kept) >= 2 and (first_record.folder / "weights.pt").exists()

    # The first run's process started the second one as it ended; nobody else ticked the queue.
    second_record = runner.wait(second, timeout=120)
    assert second_record.status == "finished", second_record.message
    assert second_record.started >= first_record.ended
    assert len(store.metrics(second, "epoch")) == 1
    assert "finished: test acc" in (second_record.folder / "log.txt").read_text()


def test_a_killed_training_process_is_reported_as_interrupted():
    run_id = runner.launch(quick(epochs=200))
    wait_for(lambda: len(store.metrics(run_id, "step")) >= 1)
    pid = store.get_run(run_id).pid
    os.kill(pid, signal.SIGKILL)
    record = runner.wait(run_id, timeout=30)
    assert record.status == "interrupted" and f"pid {pid}" in record.message
    assert len(store.metrics(run_id, "step")) >= 1  # what was recorded before the kill is kept


def test_a_fine_tuning_run_waits_for_the_run_it_starts_from_then_uses_its_weights():
    import torch

    runner.set_max_concurrent(2)  # a free slot, so only the dependency holds the second run back
    source = runner.launch(quick(epochs=1), "source")
    tuned_cfg = TrainConfig.from_dict({
        **quick(epochs=1).to_dict(),
        "model": {"options": {"width": 0.25, "depth": 1}, "init_from_run": source},
        "optim": {"freeze_body_epochs": 1, "head_lr_mult": 10.0},
    })
    tuned = runner.launch(tuned_cfg, "fine-tuned")
    assert store.get_run(source).status == "running"
    assert store.get_run(tuned).status == "queued" and store.waiting_for(tuned) == [source]
    assert runner.tick() == []  # a slot is free, but the run it needs has not ended

    source_record = runner.wait(source, timeout=120)
    assert source_record.status == "finished", source_record.message
    tuned_record = runner.wait(tuned, timeout=120)  # started by the source's process as it ended
    assert tuned_record.status == "finished", tuned_record.message
    assert tuned_record.started >= source_record.ended  # it waited, though a second slot was free all along
    before = torch.load(source_record.folder / "weights.pt", weights_only=True)
    after = torch.load(tuned_record.folder / "weights.pt", weights_only=True)
    # The body was frozen for the whole (one-epoch) run: its weights are the source's, the head is new.
    conv = "features.0.weight"
    assert torch.equal(after[conv], before[conv]) and not torch.equal(after["head.weight"], before["head.weight"])


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="niceness is a Unix notion")
def test_a_trainer_runs_niced_so_the_app_stays_responsive(monkeypatch):
    monkeypatch.setenv(runner.TRAINER_NICE_ENV, "7")
    run_id = runner.launch(quick(epochs=200))
    wait_for(lambda: len(store.metrics(run_id, "step")) >= 1)
    pid = store.get_run(run_id).pid
    try:
        assert os.getpriority(os.PRIO_PROCESS, pid) == max(7, os.nice(0))
    finally:
        runner.stop(run_id)
    assert runner.wait(run_id, timeout=60).status == "stopped"


@pytest.mark.skipif(not hasattr(os, "nice"), reason="niceness is a Unix notion")
def test_lower_priority_lowers_but_never_raises():
    import subprocess
    import sys

    code = ("import os; from core.cli import lower_priority; os.nice(5); "
            "print(lower_priority(3), lower_priority(9), lower_priority(0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    base = 5 + os.nice(0)
    assert out.stdout.split() == [str(min(19, base)), str(min(19, max(9, base))), str(min(19, max(9, base)))]


def test_trainer_nice_reads_the_environment_and_stays_in_range(monkeypatch):
    monkeypatch.delenv(runner.TRAINER_NICE_ENV, raising=False)
    assert runner.trainer_nice() == runner.DEFAULT_TRAINER_NICE
    monkeypatch.setenv(runner.TRAINER_NICE_ENV, "0")
    assert runner.trainer_nice() == 0
    monkeypatch.setenv(runner.TRAINER_NICE_ENV, "40")
    assert runner.trainer_nice() == 19
