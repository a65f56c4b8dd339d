"""The run store: CRUD, metrics as they happen, stop flags, interrupted runs, the queue claim.

Every test runs on the embedded SQLite store and on a PostgreSQL server (conftest.both_stores).
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.runs import store
from core.training.config import ConfigError, TrainConfig
from core.training.events import Eval, Failed, Finished, Started, Step, Stopped

pytestmark = pytest.mark.usefixtures("both_stores")


def started_event(run_id):
    return Started(
        run_id=run_id, config=TrainConfig().to_dict(), device="cpu (2 threads)", n_params=10, steps_per_epoch=3,
        total_steps=6, train_size=96, test_size=20, classes=("a", "b"), in_channels=3, image_size=8,
        mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2),
    )


def step_event(i):
    return Step(step=i, epoch=i / 3, loss=1.0 / i, acc=0.1 * i, lr=0.05, images_per_s=100.0, wall=0.1 * i)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_create_get_list_rename(auglab_home, both_stores):
    cfg = TrainConfig.from_dict({"run": {"epochs": 2}})
    run_id = store.create_run(cfg, "first")
    other = store.create_run(TrainConfig())
    record = store.get_run(run_id)
    assert (record.name, record.status, record.train_config()) == ("first", "queued", cfg)
    assert store.get_run(other).name == "fastcnn on shapes"
    assert record.folder == auglab_home / "runs" / run_id
    if both_stores == "sqlite":
        assert store.db_path() == auglab_home / "runs.sqlite" and store.where() == str(store.db_path())
    else:
        assert store.where().startswith("postgresql://127.0.0.1")

    runs = store.list_runs()
    assert list(runs.id) == [other, run_id]  # newest first
    row = runs.set_index("id").loc[run_id]
    assert (row["name"], row["status"], row["dataset"], row["model"], row["epochs"]) == (
        "first", "queued", "shapes", "fastcnn", 2)

    store.rename(run_id, "  renamed ")
    assert store.get_run(run_id).name == "renamed"
    with pytest.raises(ValueError):
        store.rename(run_id, " ")
    with pytest.raises(store.UnknownRunError):
        store.get_run("nope")
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'"):
        store.create_run({"optim": {"lrr": 1}})


def test_pages_read_while_a_trainer_writes(both_stores):
    run_id = store.create_run(TrainConfig(), status="running")
    writer = store._open()
    if both_stores == "sqlite":
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # readers never block the writer
    try:
        with writer.transaction():
            writer.execute("UPDATE runs SET name = 'writing' WHERE id = ?", (run_id,))
            assert store.get_run(run_id).name == "fastcnn on shapes"  # readers see the last commit
    finally:
        writer.close()
    assert store.get_run(run_id).name == "writing"
    assert store.get_run(run_id).name == "writing"


def test_the_sink_commits_every_step_once_a_commit_costs_at_most_a_percent_of_the_time_between_steps():
    """What a kill -9 of the trainer can lose: nothing committed, and with steps slower than 100
    commits (any real model on SQLite; see bench/store_commit.py), no step but the one in flight."""
    run_id = store.create_run(TrainConfig(), status="running")
    sink = store.StoreSink(run_id)
    sink(started_event(run_id))
    assert 0 < sink.commit_interval() <= sink.flush_every_s
    for i in range(1, 6):
        time.sleep(sink.commit_interval() + 0.002)  # a training step longer than 100 commits
        sink(step_event(i))
        assert len(store.metrics(run_id, "step")) == i  # on disk (or the server) before the next step
    # steps far faster than a commit are committed in groups, at most flush_every_steps waiting
    for i in range(6, 6 + sink.flush_every_steps):
        sink(step_event(i))
    total = 5 + sink.flush_every_steps
    assert total - len(store.metrics(run_id, "step")) <= sink.flush_every_steps - 1
    sink.close()
    assert len(store.metrics(run_id, "step")) == total


def test_the_sink_records_metrics_as_they_happen():
    run_id = store.create_run(TrainConfig(), status="running")
    # commits batched by steps only (no commit is ever cheap enough to make alone)
    sink = store.StoreSink(run_id, flush_every_s=3600, flush_every_steps=3, max_overhead=1e-12)
    sink(started_event(run_id))
    record = store.get_run(run_id)
    assert record.device == "cpu (2 threads)" and record.summary["data"]["classes"] == ["a", "b"]
    assert record.summary["total_steps"] == 6

    sink(step_event(1))
    sink(step_event(2))
    assert store.metrics(run_id, "step").empty  # buffered
    sink(step_event(3))
    steps = store.metrics(run_id, "step")
    assert list(steps.step) == [1, 2, 3] and list(steps.train_loss) == [1.0, 0.5, pytest.approx(1 / 3)]
    assert list(steps.columns) == [
        "step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "wall"]

    assert list(store.metrics(run_id, "step", after_step=1).step) == [2, 3]  # a live view's next read
    assert store.metrics(run_id, "step", after_step=3).empty

    sink(step_event(4))
    sink(Eval(epoch=1, step=4, train_loss=0.7, train_acc=0.6, test_loss=0.8, test_acc=0.55, wall=1.0))
    assert len(store.metrics(run_id, "step")) == 4  # an evaluation commits the buffered steps
    epochs = store.metrics(run_id, "epoch")
    assert epochs[["step", "test_acc", "train_acc"]].values.tolist() == [[4, 0.55, 0.6]]

    sink(Finished(metrics={"test_acc": 0.55}, classes=("a", "b"), confusion=[[5, 5], [4, 6]],
                  per_class_acc={"a": 0.5, "b": 0.6}, misclassified=[{"index": 3, "true": 0, "predicted": 1}],
                  weights_path="/somewhere/else/weights.pt"))
    sink.close()
    record = store.get_run(run_id)
    assert record.status == "finished" and record.ended >= record.started
    assert record.summary["confusion"] == [[5, 5], [4, 6]] and record.summary["weights"] == "weights.pt"
    assert record.summary["final"] == {"test_acc": 0.55} and record.summary["data"]["image_size"] == 8
    assert store.list_runs().set_index("id").loc[run_id, "test_acc"] == 0.55


@pytest.mark.parametrize(
    "event,status,message",
    [(Failed("loss became NaN at step 3", step=3), "failed", "loss became NaN at step 3"),
     (Stopped(step=2, epoch=0.5, wall=1.0), "stopped", "stopped on request")],
)
def test_the_sink_records_how_a_run_ended(event, status, message):
    run_id = store.create_run(TrainConfig(), status="running")
    sink = store.StoreSink(run_id)
    sink(step_event(1))
    sink(event)
    sink.close()
    record = store.get_run(run_id)
    assert (record.status, record.message) == (status, message)
    assert len(store.metrics(run_id, "step")) == 1


def test_stop_requests():
    queued = store.create_run(TrainConfig())
    store.request_stop(queued)
    record = store.get_run(queued)
    assert record.status == "stopped" and record.message == "stopped before it started"

    running = store.create_run(TrainConfig(), status="running")
    sink = store.StoreSink(running)
    assert not sink.should_stop() and not store.stop_requested(running)
    store.request_stop(running)
    assert sink.should_stop() and store.stop_requested(running)
    assert store.get_run(running).status == "running"  # the trainer ends it at its next step
    sink.close()
    with pytest.raises(store.UnknownRunError):
        store.request_stop("nope")


def test_a_running_run_whose_process_died_is_interrupted():
    run_id = store.create_run(TrainConfig(), status="running")
    assert store.get_run(run_id).status == "running"  # this process is alive
    pid = dead_pid()
    store.set_status(run_id, "running", pid=pid)
    record = store.get_run(run_id)
    assert record.status == "interrupted" and f"pid {pid}" in record.message and record.ended
    assert store.list_runs().set_index("id").loc[run_id, "status"] == "interrupted"


def test_a_zombie_process_counts_as_dead():
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to tell zombies apart")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 20
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not store.pid_alive(proc.pid)
    proc.wait()
    assert store.pid_alive(store.os.getpid())


def test_runs_of_another_host_are_left_alone():
    run_id = store.create_run(TrainConfig(), status="running")
    with store._connection() as conn:
        conn.execute("UPDATE runs SET pid = ?, host = 'gpu-server' WHERE id = ?", (dead_pid(), run_id))
    assert socket.gethostname() != "gpu-server"
    assert store.refresh_statuses() == []
    assert store.get_run(run_id).status == "running"


def test_delete_removes_the_run_its_metrics_and_its_folder(auglab_home):
    run_id = store.create_run(TrainConfig(), status="running")
    sink = store.StoreSink(run_id)
    sink(step_event(1))
    sink(Stopped(step=1, epoch=0.3, wall=0.1))
    sink.close()
    (store.run_dir(run_id) / "weights.pt").write_bytes(b"x")
    store.delete(run_id)
    assert not (auglab_home / "runs" / run_id).exists()
    assert store.metrics(run_id, "step").empty
    with pytest.raises(store.UnknownRunError):
        store.get_run(run_id)
    busy = store.create_run(TrainConfig(), status="running")
    with pytest.raises(ValueError, match="stop it before deleting"):
        store.delete(busy)


def test_claiming_respects_the_slots_and_the_queue_order():
    first, second = store.create_run(TrainConfig()), store.create_run(TrainConfig())
    assert store.claim_next_queued(max_concurrent=1) == first
    assert store.claim_next_queued(max_concurrent=1) is None
    assert store.get_run(second).status == "queued"
    assert store.claim_next_queued(max_concurrent=2) == second
    assert store.claim_next_queued(max_concurrent=5) is None  # nothing left in the queue


def test_ticking_an_idle_or_full_queue_leaves_the_write_lock_to_the_trainer():
    """Pages tick the queue every few seconds; with nothing to start they must not wait for (or take)
    the write lock a training process is using to record its metrics."""
    import threading

    running = store.create_run(TrainConfig(), status="running")  # this process: alive, so it stays running
    queued = store.create_run(TrainConfig())
    writer = store._open()
    answers = []
    try:
        with writer.transaction():  # a trainer in the middle of a commit, for as long as this test likes
            # the only slot is taken: nothing to claim
            tick = threading.Thread(target=lambda: answers.append(store.claim_next_queued(1)), daemon=True)
            tick.start()
            tick.join(timeout=10)  # it would block for the connection's 30 s timeout if it asked for the lock
            assert not tick.is_alive() and answers == [None]
    finally:
        writer.close()
    assert store.claim_next_queued(max_concurrent=2) == queued  # with a free slot it claims as before
    store.set_status(running, "stopped")
    assert store.claim_next_queued(max_concurrent=1) is None  # and an empty queue stays a read


def test_a_run_that_needs_another_waits_for_it_while_younger_runs_go_ahead():
    source = store.create_run(TrainConfig(), "pretraining")
    tuned = store.create_run(TrainConfig.from_dict({"model": {"init_from_run": source}}), "fine-tuned")
    student = store.create_run(TrainConfig.from_dict({"tricks": {"teacher_run_id": source}}), "student")
    scratch = store.create_run(TrainConfig(), "from scratch")
    assert store.dependencies(store.get_run(tuned).config) == [source]
    assert store.dependencies(TrainConfig.from_dict({"model": {"init_from_run": "a"}, "tricks": {"teacher_run_id": "b"}})) == ["a", "b"]
    assert store.waiting_for(tuned) == [source] and store.waiting_for(scratch) == []
    # Slots to spare: the source and the independent run start, the two that need the source wait.
    assert store.claim_next_queued(max_concurrent=4) == source
    assert store.claim_next_queued(max_concurrent=4) == scratch
    assert store.claim_next_queued(max_concurrent=4) is None
    assert store.get_run(tuned).status == store.get_run(student).status == "queued"
    store.set_status(source, "finished")
    assert store.waiting_for(tuned) == []
    assert store.claim_next_queued(max_concurrent=4) == tuned  # oldest first, once startable
    assert store.claim_next_queued(max_concurrent=4) == student
    # A source that ended any other way lets the run start too: the trainer then says why it fails.
    stopped = store.create_run(TrainConfig(), "stopped before it started")
    after = store.create_run(TrainConfig.from_dict({"model": {"init_from_run": stopped}}))
    store.request_stop(stopped)
    assert store.claim_next_queued(max_concurrent=10) == after


def test_settings_and_bad_statuses():
    assert store.get_setting("max_concurrent") is None
    store.set_setting("max_concurrent", "2")
    assert store.get_setting("max_concurrent") == "2"
    run_id = store.create_run(TrainConfig())
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_status(run_id, "done")
    with pytest.raises(ValueError):
        store.metrics(run_id, "batch")


def test_a_damaged_store_file_is_named_with_what_to_do_in_the_cli_and_the_page(auglab_home, both_stores, capsys):
    if both_stores == "sqlite":
        auglab_home.mkdir(parents=True, exist_ok=True)
        store.db_path().write_bytes(b"this is not a database, it was overwritten" * 100)
        said = "cannot be read"
    else:  # a server that is not there
        store.os.environ["AUGLAB_STORE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
        said = "cannot be reached"
    with pytest.raises(store.StoreError, match=said):
        store.list_runs()
    from core import cli

    assert cli.main(["--epochs", "1"]) == cli.EXIT_USAGE
    assert said in capsys.readouterr().err

    from conftest import ROOT, run
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    run(app)
    for page in ("pages/compare.py", "pages/train.py"):
        app.switch_page(page)
        run(app)  # no exception: the message instead
        assert any("The run store cannot be used" in e.value and said in e.value for e in app.error)


def test_the_sink_keeps_the_latest_batch_sample_in_the_runs_folder():
    import numpy as np

    from core.training.events import BatchSample

    run_id = store.create_run(TrainConfig(), status="running")
    assert store.read_batch_sample(run_id) is None
    sink = store.StoreSink(run_id)
    sink(started_event(run_id))
    images = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    for step in (1, 9):
        sink(BatchSample(step=step, epoch=step / 3, images=images + step, targets=[[(1, 0.7), (0, 0.3)], [(0, 1.0)]],
                         drawn=[["Mixup: λ = 0.70"], []]))
    read = store.read_batch_sample(run_id)
    assert (read.step, read.epoch) == (9, 3.0)  # the latest replaces the one before
    np.testing.assert_array_equal(read.images, images + 9)
    assert read.targets == [[(1, 0.7), (0, 0.3)], [(0, 1.0)]] and read.drawn == [["Mixup: λ = 0.70"], []]
    assert [p.name for p in store.run_dir(run_id).iterdir() if "batch" in p.name] == [store.BATCH_SAMPLE_FILE]

    (store.run_dir(run_id) / store.BATCH_SAMPLE_FILE).write_bytes(b"not a sample")
    assert store.read_batch_sample(run_id) is None  # a damaged file shows nothing rather than failing the page
