"""Runs on a Ray cluster (core/runs/ray_backend.py), through a real local Ray head on 127.0.0.1.

Ray is an optional extra (requirements-ray.txt): without it these tests are skipped, except in CI
(CI=true), which installs it, so a missing install is a failure there."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.runs import ray_backend, runner, store
from core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

try:
    import ray
except ImportError:  # pragma: no cover - depends on the machine
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("Ray is not installed (pip install -r requirements-ray.txt)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A one-node Ray cluster on loopback for this module; its address. Started in the foreground
    (--block) in a process group of its own, so that ending the group ends this cluster only,
    never another Ray on the machine (`ray stop` would stop them all)."""
    port = free_port()
    temp = f"/tmp/auglab-ray-{os.getpid()}"  # short: Ray's socket paths must fit in 107 characters
    log = tmp_path_factory.mktemp("ray") / "head.log"
    with log.open("wb") as out:
        head = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text(errors="replace"):
            assert head.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not start:\n" + log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(30)
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def on_ray(ray_head, monkeypatch):
    monkeypatch.setenv(ray_backend.ADDRESS_ENV, ray_head)
    runner.set_max_concurrent(2)
    return ray_head


def quick(epochs: int) -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"subset": 0.04, "image_size": 16},
        "model": {"options": {"width": 0.25, "depth": 1}},
        "run": {"epochs": epochs, "batch_size": 32, "threads": 1, "device": "cpu"},
    })


def wait_for(condition, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_run_is_submitted_to_the_cluster_and_streams_its_metrics_into_the_store(on_ray):
    assert "Ray cluster at " + on_ray in runner.where_runs_train()
    run_id = runner.launch(quick(epochs=1), "on ray")
    record = runner.wait(run_id, timeout=240)
    assert record.status == "finished", record.message
    assert record.backend == "ray"
    assert record.pid != os.getpid() and record.device.startswith("cpu")
    assert len(store.metrics(run_id, "epoch")) == 1 and len(store.metrics(run_id, "step")) > 0
    assert "finished: test acc" in (record.folder / "log.txt").read_text()
    # the actor left the cluster once the run had ended
    wait_for(lambda: not _actor_exists(run_id), timeout=60)


def _actor_exists(run_id: str) -> bool:
    try:
        ray.get_actor(ray_backend.actor_name(run_id), namespace=ray_backend.NAMESPACE)
    except ValueError:
        return False
    return True


def test_a_run_on_the_cluster_stops_from_the_page_and_keeps_its_steps(on_ray):
    run_id = runner.launch(quick(epochs=200))
    wait_for(lambda: len(store.metrics(run_id, "step")) >= 2)
    runner.stop(run_id)
    record = runner.wait(run_id, timeout=120)
    assert record.status == "stopped"
    assert len(store.metrics(run_id, "step")) >= 2 and (record.folder / "weights.pt").exists()


def test_a_killed_ray_worker_ends_the_run_interrupted_with_every_step_before_the_kill(on_ray):
    run_id = runner.launch(quick(epochs=200))
    wait_for(lambda: len(store.metrics(run_id, "step")) >= 3)
    before = len(store.metrics(run_id, "step"))
    pid = store.get_run(run_id).pid
    os.kill(pid, signal.SIGKILL)
    record = runner.wait(run_id, timeout=60)
    assert record.status == "interrupted"
    assert f"pid {pid}" in record.message
    assert len(store.metrics(run_id, "step")) >= before


def test_a_worker_lost_on_another_node_is_found_through_ray(on_ray, monkeypatch):
    """Where a pid means nothing (the run trains on another machine), Ray says the actor is gone."""
    run_id = runner.launch(quick(epochs=200))
    wait_for(lambda: len(store.metrics(run_id, "step")) >= 1)
    record = store.get_run(run_id)
    with store._connection() as conn:  # as if it trained on another node
        conn.execute("UPDATE runs SET host = 'gpu-node-7' WHERE id = ?", (run_id,))
    os.kill(record.pid, signal.SIGKILL)
    wait_for(lambda: not _actor_exists(run_id), timeout=60)
    assert store.get_run(run_id).status == "running"  # the pid check leaves other hosts alone
    monkeypatch.setattr(ray_backend, "_GRACE_S", 0.0)
    assert ray_backend.reconcile() == [run_id]
    record = store.get_run(run_id)
    assert record.status == "interrupted" and "Ray worker on gpu-node-7" in record.message


def test_a_run_goes_on_training_after_the_app_that_submitted_it_exits(on_ray, auglab_home):
    """The actor is detached: a driver (the app) that exits, or is killed, leaves the run training."""
    script = (
        "import os, signal; from core.runs import runner; from core.training.config import TrainConfig\n"
        f"run_id = runner.launch(TrainConfig.from_dict({quick(epochs=2).to_dict()!r}), 'orphan')\n"
        "print(run_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"  # kill -9 of the app: no clean-up runs
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == -signal.SIGKILL, out.stderr
    run_id = out.stdout.split()[0]
    record = runner.wait(run_id, timeout=240)
    assert record.status == "finished", record.message
    assert len(store.metrics(run_id, "epoch")) == 2


def test_a_run_that_needs_a_gpu_the_cluster_lacks_can_be_stopped_before_it_is_placed(on_ray):
    cfg = TrainConfig.from_dict({**quick(epochs=1).to_dict(), "run": {**quick(1).to_dict()["run"], "device": "cuda"}})
    assert ray_backend.resources(cfg.to_dict(), {"CPU": 2.0}) == {"num_cpus": 1, "num_gpus": 1}
    run_id = runner.launch(cfg, "waits for a GPU")
    time.sleep(3)
    record = store.get_run(run_id)
    assert record.status == "running" and record.pid is None  # claimed, waiting for Ray to place it
    assert _actor_exists(run_id)
    runner.stop(run_id)
    record = store.get_run(run_id)
    assert record.status == "stopped" and "before Ray had placed it" in record.message
    wait_for(lambda: not _actor_exists(run_id), timeout=60)


def test_without_ray_an_address_gives_a_clear_message(monkeypatch):
    monkeypatch.setenv(ray_backend.ADDRESS_ENV, "127.0.0.1:1")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    run_id = runner.launch(quick(epochs=1))
    record = store.get_run(run_id)
    assert record.status == "failed" and "pip install -r requirements-ray.txt" in record.message
