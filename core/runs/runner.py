"""Background runs: each run trains in its own process, and a queue keeps the machine from drowning.

    run_id = runner.launch(config, "baseline")   # queued, and started at once if a slot is free
    runner.stop(run_id)
    runner.wait(run_id, timeout=60)              # for tests and scripts

A run's process is `python -m core.cli --run-id ID`, started in a session of its own, so it
outlives the Streamlit script rerun, a closed browser tab and even the dashboard itself. At most
`max_concurrent()` runs train at once; the others wait in the store as "queued". A run that
starts from another run's weights (model.init_from_run) or learns from a teacher run waits until
that run has ended, however many slots are free (store.claim_next_queued).

Each run is attributed to an owner (a browser session's name, a user, the CLI) and the queue
takes turns between owners (store.claim_next_queued), with at most `max_queued()` runs waiting for
each, so one student's ten runs cannot starve a classmate's one.

With $AUGLAB_RAY_ADDRESS set, claimed runs go to that Ray cluster instead of a local process
(core/runs/ray_backend.py); the queue, the store and the pages are the same.

There is no scheduler daemon. The queue moves whenever someone calls `tick()`: `launch` does,
every training process does when it ends (so a queue drains on its own), and the dashboard does
on each refresh (which also picks the queue up again after a crash).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.i18n import LANGUAGE_ENV, _, language
from core.paths import HOME_ENV, home
from core.runs import ray_backend, store
from core.training.config import TrainConfig

MAX_CONCURRENT_ENV = "AUGLAB_MAX_CONCURRENT"
_MAX_CONCURRENT_KEY = "max_concurrent"
MAX_QUEUED_ENV = "AUGLAB_MAX_QUEUED"
_MAX_QUEUED_KEY = "max_queued"
# Enough for a preset at five seeds with its pretraining run, twice over.
DEFAULT_MAX_QUEUED = 24
OWNER_ENV = "AUGLAB_OWNER"
# Training processes run at this niceness (Unix; 0: the app's own priority). A trainer takes every
# core it is given; niced, it still does when nothing else wants them, but the app's server, which
# answers every open tab, gets a core the moment it needs one (bench/soak.py measures the page
# under load).
TRAINER_NICE_ENV = "AUGLAB_TRAINER_NICE"
DEFAULT_TRAINER_NICE = 10
# The folder that holds the `core` package: the training process must import the same code.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Processes this process started, kept so that finished ones are reaped instead of lingering
# as zombies (a zombie still "exists" for os.kill).
_children: dict[str, subprocess.Popen] = {}


def max_concurrent() -> int:
    """Runs allowed to train at once: the store's setting, else $AUGLAB_MAX_CONCURRENT, else 1.

    One is right for a CPU, where two runs would each take twice as long; a large GPU can take more.
    """
    value = store.get_setting(_MAX_CONCURRENT_KEY) or os.environ.get(MAX_CONCURRENT_ENV) or "1"
    return max(1, int(value))


def set_max_concurrent(n: int) -> None:
    """Stored, so that every process that ticks the queue (pages, trainers, CLI) agrees."""
    if n < 1:
        raise ValueError(_("max_concurrent must be at least 1, got {n}").format(n=n))
    store.set_setting(_MAX_CONCURRENT_KEY, str(n))
    tick()


def trainer_nice() -> int:
    """The niceness training processes start at: $AUGLAB_TRAINER_NICE, else 10 (0 to 19)."""
    return min(19, max(0, int(os.environ.get(TRAINER_NICE_ENV) or DEFAULT_TRAINER_NICE)))


def max_queued() -> int:
    """Runs one owner may have waiting at once: the store's setting, else $AUGLAB_MAX_QUEUED, else 24."""
    value = store.get_setting(_MAX_QUEUED_KEY) or os.environ.get(MAX_QUEUED_ENV) or str(DEFAULT_MAX_QUEUED)
    return max(1, int(value))


def set_max_queued(n: int) -> None:
    if n < 1:
        raise ValueError(_("max_queued must be at least 1, got {n}").format(n=n))
    store.set_setting(_MAX_QUEUED_KEY, str(n))


_owner_source: Callable[[], str | None] = lambda: None


def use_owner_source(source: Callable[[], str | None]) -> None:
    """Where `owner()` asks first: the pages register the browser session's name here."""
    global _owner_source
    _owner_source = source


def owner() -> str | None:
    """Whom a run launched now belongs to: the session's name (pages), else $AUGLAB_OWNER, else None."""
    return _owner_source() or os.environ.get(OWNER_ENV) or None


def ensure_room(n: int, who: str | None = None) -> None:
    """Raise store.QueueFullError unless `n` more runs fit in the owner's share of the queue (a
    group of runs checks before its first launch, so it is queued whole or not at all)."""
    who = who if who is not None else owner()
    waiting = store.queued_by(who)
    if waiting + n > max_queued():
        raise store.QueueFullError(_(
            "{owner} has {waiting} runs waiting and may queue {limit}; these {n} would not fit. Wait until "
            "some start, or stop some."
        ).format(owner=who or _("this session"), waiting=waiting, limit=max_queued(), n=n))


def launch(config: TrainConfig | Mapping[str, Any], name: str | None = None, *, who: str | None = None) -> str:
    """Queue a run for `who` (default: `owner()`) and start it if a slot is free; returns its id at once.
    Raises store.QueueFullError when that owner already has max_queued() runs waiting."""
    run_id = store.create_run(config, name, status="queued", owner=who if who is not None else owner(),
                              max_queued=max_queued())
    tick()
    return run_id


def backend() -> str | None:
    """None: runs train as local processes; "ray": on the cluster at $AUGLAB_RAY_ADDRESS."""
    return ray_backend.BACKEND if ray_backend.address() else None


def where_runs_train() -> str:
    """Where a launched run will train, in words, for the page."""
    if backend() == ray_backend.BACKEND:
        return _("Runs train on the Ray cluster at {address}, with a GPU when the run's device asks for one.").format(
            address=ray_backend.address())
    return _("Runs train as processes on this machine.")


def tick() -> list[str]:
    """Start queued runs while slots are free; returns the ids started. Safe to call from anywhere."""
    for run_id, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[run_id]
    where = backend()
    if where == ray_backend.BACKEND:
        ray_backend.reconcile()
    started = []
    while (run_id := store.claim_next_queued(max_concurrent(), backend=where)) is not None:
        if where == ray_backend.BACKEND:
            ray_backend.submit(run_id)
        else:
            _spawn(run_id)
        started.append(run_id)
    return started


def _spawn(run_id: str) -> None:
    log = (store.run_dir(run_id) / "log.txt").open("ab")
    env = dict(os.environ)
    env[HOME_ENV] = str(home())  # the child must write to the store this process reads
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    # the run's messages (a stop, an error) in the language of the session that started it
    env[LANGUAGE_ENV] = language()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "--run-id", run_id, "--nice", str(trainer_nice())],
            cwd=_PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Not in the dashboard's process group, so its Ctrl-C and its exit leave the run alone.
            **({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}),
        )
    except OSError as exc:
        store.set_status(run_id, "failed", message=_("could not start the training process: {error}").format(error=exc))
        return
    finally:
        log.close()  # the child holds its own descriptor
    _children[run_id] = proc
    store.record_pid(run_id, proc.pid)


def stop(run_id: str) -> None:
    """Ask the run to stop; a running one ends cleanly at its next step, a queued one never starts."""
    store.request_stop(run_id)
    record = store.get_run(run_id)
    if record.backend == ray_backend.BACKEND:
        ray_backend.stop(record)  # one Ray has not placed yet would never read its flag


def wait(run_id: str, timeout: float = 60.0, poll_s: float = 0.1) -> store.RunRecord:
    """Block until the run has ended (finished, stopped, failed or interrupted) and return it."""
    deadline = time.monotonic() + timeout
    while True:
        record = store.get_run(run_id)
        if record.is_final:
            tick()  # reap our child now rather than at the next launch
            return record
        if time.monotonic() > deadline:
            raise TimeoutError(_("run {run_id} is still {status} after {timeout:g} s").format(
                run_id=run_id,
                status=record.status,
                timeout=timeout,
            ))
        time.sleep(poll_s)
