"""Background runs in their own processes, and the queue that keeps one at a time on a CPU."""

import os
import signal
import time

from core import runner, store
from core.config import TrainConfig


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
