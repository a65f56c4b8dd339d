"""Runs on a Ray cluster: the optional backend for a lab that has outgrown one machine.

    AUGLAB_RAY_ADDRESS=127.0.0.1:6379 streamlit run app.py    # every queued run goes to that cluster

With an address set, the queue (core/runs/runner.py) hands each run it claims to Ray instead of
starting a local process: one detached Ray actor per run, asking for a GPU when the run's device
needs one (and "auto" when the cluster has one) and a CPU otherwise, trains it with the same code
as `python -m core.cli --run-id ID`, writing every step into the run store as a local run does.

- Detached, in the namespace "auglab": the actor belongs to the cluster, not to the app that
  submitted it, so a restart (or kill -9) of the app leaves it training; a reopened page reads it
  live from the store.
- Stop: the store's stop flag, read at every step, as for a local run. A run that Ray has not
  placed yet (it waits for a free GPU) has its actor killed and is stopped at once.
- A killed worker: on the app's own machine its pid is checked like a local trainer's; anywhere
  else `reconcile` (every queue tick) asks Ray whether the actor still exists. Either way the run
  ends "interrupted" with a message and keeps every step recorded before.
- The code travels with the run (Ray's runtime_env uploads the `core` package, once per version);
  the store must be one every worker reaches (AUGLAB_STORE_URL=postgresql://..., see the README)
  and AUGLAB_HOME a folder they share for artefacts.

Ray is an optional extra (requirements-ray.txt), imported only when an address is set.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from core.i18n import LANGUAGE_ENV, _, language
from core.paths import HOME_ENV, home
from core.runs import database, store

ADDRESS_ENV = "AUGLAB_RAY_ADDRESS"
NAMESPACE = "auglab"
BACKEND = "ray"
# A run claimed less than this long ago may not have its actor yet (claim, then submit):
# reconcile leaves it alone.
_GRACE_S = 30.0
_PACKAGE = Path(__file__).resolve().parents[1]  # core/
_lock = threading.Lock()


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached; the message says which."""


def address() -> str | None:
    """The cluster's address, or None for the local process backend."""
    return os.environ.get(ADDRESS_ENV) or None


def actor_name(run_id: str) -> str:
    return f"run-{run_id}"


def _ray() -> Any:
    """The ray module, connected to the cluster (once per process)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(_("{env} is set, but Ray is not installed: pip install -r requirements-ray.txt").format(
            env=ADDRESS_ENV)) from None
    with _lock:
        if not ray.is_initialized():
            try:
                # The code travels once per connection (Ray uploads the `core` package, cached by
                # its hash); each run's actor inherits it, with its own variables (_runtime_env).
                ray.init(address=address(), namespace=NAMESPACE, log_to_driver=False,
                         logging_level=logging.WARNING, configure_logging=False,
                         runtime_env={"py_modules": [str(_PACKAGE)]})
            except Exception as exc:  # ConnectionError and Ray's own: the cluster, in words
                raise RayUnavailable(_("The Ray cluster at {address} cannot be reached: {error}").format(
                    address=address(), error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                )) from exc
    return ray


def resources(config: dict[str, Any], cluster: dict[str, float]) -> dict[str, float]:
    """What a run asks Ray for: a GPU when its device needs one ("auto": when the cluster has one)."""
    run = config.get("run", {})
    device = str(run.get("device", "auto"))
    wants_gpu = device.startswith("cuda") or (device == "auto" and cluster.get("GPU", 0) > 0)
    threads = int(run.get("threads") or 0)
    return {"num_cpus": max(1, threads), "num_gpus": 1 if wants_gpu else 0}


def _runtime_env() -> dict[str, Any]:
    env = {HOME_ENV: str(home()), LANGUAGE_ENV: language(), ADDRESS_ENV: address() or ""}
    if os.environ.get(database.URL_ENV):
        env[database.URL_ENV] = os.environ[database.URL_ENV]
    return {"env_vars": env}


def submit(run_id: str) -> None:
    """Hand a claimed run to the cluster. A run Ray cannot take fails at once, with the reason."""
    try:
        ray = _ray()
        record = store.get_run(run_id)
        trainer = ray.remote(max_restarts=0)(_Trainer)
        trainer.options(
            name=actor_name(run_id), lifetime="detached", runtime_env=_runtime_env(),
            **resources(record.config, ray.cluster_resources()),
        ).remote(run_id)
        _registered(ray, actor_name(run_id))
    except Exception as exc:  # noqa: BLE001  (whatever Ray raises: the run fails with it, nothing hangs)
        store.set_status(run_id, "failed", message=_("could not submit the run to Ray: {error}").format(error=exc))


def _registered(ray: Any, name: str, timeout_s: float = 30.0) -> None:
    """Wait until the cluster knows the actor: `.remote()` only queues its creation in this
    process, and an app killed a moment later would take the run with it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get_actor(name)
            return
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop(record: store.RunRecord) -> None:
    """A run Ray has not started yet (no trainer has written its pid) is removed from the cluster and
    stopped; a training one stops at its next step through the store's flag, like a local run."""
    run_id = record.id
    if record.backend != BACKEND or record.status != "running" or record.pid is not None:
        return
    try:
        ray = _ray()
        ray.kill(ray.get_actor(actor_name(run_id)))
    except (RayUnavailable, ValueError):
        return  # gone already (reconcile reports it) or unreachable (its flag stops it when it starts)
    store.set_status(run_id, "stopped", message=_("stopped before Ray had placed it"))


def reconcile() -> list[str]:
    """Runs on Ray that the store says are running but whose actor is gone: interrupted, with a
    message. Returns their ids; quietly nothing when the cluster cannot be reached."""
    live = [r for r in store.running_runs() if r.backend == BACKEND and time.time() - (r.started or 0) > _GRACE_S]
    if not live:
        return []
    try:
        ray = _ray()
    except RayUnavailable:
        return []
    gone = []
    for record in live:
        try:
            ray.get_actor(actor_name(record.id))
        except ValueError:
            gone.append(record.id)
            store.mark_interrupted(record.id, _(
                "its Ray worker{where} ended without recording a result (killed, or its node was lost)"
            ).format(where=_(" on {host}").format(host=record.host) if record.host else ""))
    return gone


class _Trainer:
    """One run's Ray actor: trains it in this worker process as it is created, then leaves the
    cluster. In the constructor because Ray creates a detached actor for the cluster itself,
    whereas a method call would belong to the app that made it and die with it."""

    def __init__(self, run_id: str) -> None:
        import ray

        log = store.run_dir(run_id) / "log.txt"
        with log.open("ab") as f:  # the run's output where a local run's goes
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
        from core.cli import ConsoleSink, run_stored
        from core.training.allocator import keep_freed_memory

        keep_freed_memory()  # as a local trainer process does
        try:
            run_stored(run_id, [ConsoleSink()])
        finally:
            ray.actor.exit_actor()
