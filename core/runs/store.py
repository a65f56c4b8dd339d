"""The run store: every run's config, status and metrics in one database.

By default that is one SQLite file, home()/runs.sqlite; with $AUGLAB_STORE_URL a PostgreSQL server
that every machine of a lab reaches (core/runs/database.py holds what differs between the two;
the SQL is here, once). Pages, the CLI, the runner and the tests all read and write this one
store; files a run produces (weights, log) live in its folder, home()/runs/<id>/. SQLite runs in
WAL mode so the dashboard can read while a trainer process writes, and every call opens its own
short-lived connection, so any process may use the module at any time.

A run's status moves queued -> running -> finished | stopped | failed. A run left "running"
whose process has died (killed, machine slept through a crash) is reported as "interrupted"
the next time anyone reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.uploads import dataset_title
from core import i18n
from core.i18n import _
from core.paths import home
from core.runs import database
from core.runs.database import Connection, Row, StoreError  # StoreError: for callers
from core.training.config import TrainConfig
from core.training.events import BatchSample, Eval, Event, Failed, Finished, Started, Step, Stopped

STATUSES = ("queued", "running", "finished", "stopped", "failed", "interrupted")
FINAL_STATUSES = ("finished", "stopped", "failed", "interrupted")
METRIC_COLUMNS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "wall")

_SCHEMA = {dialect: database.schema(dialect, STATUSES, METRIC_COLUMNS) for dialect in ("sqlite", "postgresql")}


class UnknownRunError(LookupError):
    """No run with this id in the store."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    name: str
    config: dict[str, Any]
    status: str
    message: str | None
    device: str | None
    created: float
    started: float | None
    ended: float | None
    pid: int | None
    host: str | None
    stop_requested: bool
    summary: dict[str, Any]
    owner: str | None = None  # who launched it (see create_run)
    backend: str | None = None  # None: a local process; "ray": a Ray cluster

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    @property
    def folder(self) -> Path:
        return run_dir(self.id)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def db_path() -> Path:
    """The embedded SQLite store's file (the store unless $AUGLAB_STORE_URL names another)."""
    return home() / "runs.sqlite"


def where() -> str:
    """The store, as a message names it: the SQLite file's path, or the server (no password)."""
    return database.describe()


def run_dir(run_id: str) -> Path:
    """The run's own folder for weights and logs (created on first use)."""
    path = home() / "runs" / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open() -> Connection:
    return database.connect(_SCHEMA)


@contextmanager
def _connection() -> Iterator[Connection]:
    conn = _open()
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """A write transaction taken up front, so read-then-write steps cannot race."""
    with conn.transaction():
        yield conn


def check() -> None:
    """Raises StoreError, with what to do, when the store cannot be opened or read."""
    try:
        with _connection() as conn:
            conn.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
    except StoreError:
        raise
    except Exception as exc:  # sqlite3's or psycopg's: the store's, in words
        raise StoreError(_("The run store {where} cannot be read ({error}).").format(where=where(), error=exc)) from exc


def _new_id() -> str:
    # Sortable by creation time and readable in a URL; the suffix separates runs of one second.
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()


# ---------------------------------------------------------------------------------- runs


class QueueFullError(ValueError):
    """An owner already has as many runs waiting as one may; the message says how many."""


def create_run(
    config: TrainConfig | Mapping[str, Any],
    name: str | None = None,
    *,
    status: str = "queued",
    owner: str | None = None,
    max_queued: int | None = None,
) -> str:
    """Record a new run (validating its config) and return its id.

    owner: who launched it (a browser session's name, a user, "cli"); the queue takes turns
    between owners (claim_next_queued). max_queued: refuse a queued run while this owner already
    has that many waiting (QueueFullError), checked and inserted in one write transaction.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    if status not in ("queued", "running"):
        raise ValueError(_("a new run is queued or running, not {status!r}").format(status=status))
    run_id = _new_id()
    name = name or default_run_name(cfg)
    now = time.time()
    with _connection() as conn, transaction(conn):
        if status == "queued" and max_queued is not None:
            waiting = _queued_by(conn, owner)
            if waiting >= max_queued:
                raise QueueFullError(_(
                    "{owner} already has {n} runs waiting, the most one may queue; wait until one "
                    "starts, or stop one."
                ).format(owner=owner or _("this session"), n=waiting))
        conn.execute(
            "INSERT INTO runs (id, name, config, status, created, started, pid, host, owner) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                run_id, name, cfg.to_json(indent=None), status, now,
                now if status == "running" else None,
                os.getpid() if status == "running" else None,
                socket.gethostname() if status == "running" else None,
                owner,
            ),
        )
    return run_id


def queued_by(owner: str | None) -> int:
    """How many runs `owner` has waiting in the queue."""
    with _connection() as conn:
        return _queued_by(conn, owner)


def _queued_by(conn: Connection, owner: str | None) -> int:
    same_owner = "owner IS NULL" if owner is None else "owner = ?"
    return conn.execute(f"SELECT COUNT(*) FROM runs WHERE status = 'queued' AND {same_owner}",
                        () if owner is None else (owner,)).fetchone()[0]


def default_run_name(cfg: TrainConfig) -> str:
    """The name of a run launched without one, for the page and the CLI alike: "fastcnn on shapes".
    An upload goes by the name it was uploaded under ("fastcnn on pets.zip"), not by the path it is
    stored at (".../uploads/86b4e9df41ac25b3.zip"); a zip or folder by its file name."""
    return _("{model} on {dataset}").format(model=cfg.model.name, dataset=dataset_title(cfg.data.dataset))


def _record(row: Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        config=json.loads(row["config"]),
        status=row["status"],
        message=row["message"],
        device=row["device"],
        created=row["created"],
        started=row["started"],
        ended=row["ended"],
        pid=row["pid"],
        host=row["host"],
        stop_requested=bool(row["stop_requested"]),
        summary=json.loads(row["summary"]),
        owner=row["owner"],
        backend=row["backend"],
    )


def get_run(run_id: str) -> RunRecord:
    """The run as stored now; a dead "running" run is reported (and recorded) as interrupted."""
    refresh_statuses([run_id])
    with _connection() as conn:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise UnknownRunError(_("no run with id {run_id!r} in {db_path}").format(run_id=run_id, db_path=where()))
    return _record(row)


def list_runs() -> pd.DataFrame:
    """One row per run, newest first, with its latest test accuracy and progress."""
    refresh_statuses()
    query = """
        SELECT r.id, r.name, r.status, r.message, r.device, r.created, r.started, r.ended, r.pid,
               r.stop_requested, r.owner, r.backend, r.config,
               (SELECT m.test_acc FROM metrics m WHERE m.run_id = r.id AND m.kind = 'epoch'
                ORDER BY m.step DESC LIMIT 1) AS test_acc,
               (SELECT MAX(m.step) FROM metrics m WHERE m.run_id = r.id AND m.kind = 'step') AS step,
               {total_steps} AS total_steps
        FROM runs r ORDER BY r.created DESC, r.id DESC
    """
    with _connection() as conn:
        df = conn.frame(query.format(total_steps=conn.json_number("r.summary", "total_steps")))
    configs = [json.loads(c) for c in df.pop("config")]
    df.insert(2, "dataset", [c["data"]["dataset"] for c in configs])
    df.insert(3, "model", [c["model"]["name"] for c in configs])
    df.insert(4, "epochs", [c["run"]["epochs"] for c in configs])
    end = df["ended"].fillna(time.time())
    df["duration_s"] = (end - df["started"]).where(df["started"].notna())
    for column in ("created", "started", "ended"):
        df[column] = pd.to_datetime([datetime.fromtimestamp(t) if pd.notna(t) else None for t in df[column]])
    df["stop_requested"] = df["stop_requested"].astype(bool)
    return df


def metrics(run_id: str, kind: str = "epoch", after_step: int | None = None) -> pd.DataFrame:
    """The run's metric rows of one kind ('step' or 'epoch') in step order.

    after_step: only the rows of later steps, for a live view that already holds the earlier ones.
    """
    if kind not in ("step", "epoch"):
        raise ValueError(_("kind must be 'step' or 'epoch', not {kind!r}").format(kind=kind))
    columns = ", ".join(("step", "epoch") + METRIC_COLUMNS)
    query = f"SELECT {columns} FROM metrics WHERE run_id = ? AND kind = ?"
    params: tuple[Any, ...] = (run_id, kind)
    if after_step is not None:
        query += " AND step > ?"
        params += (int(after_step),)
    with _connection() as conn:
        return conn.frame(query + f" ORDER BY step, {conn.order}", params)


def set_status(
    run_id: str,
    status: str,
    *,
    message: str | None = None,
    pid: int | None = None,
) -> None:
    """Move a run to `status`; final statuses stamp `ended`, "running" stamps `started` and the host."""
    if status not in STATUSES:
        raise ValueError(_("status must be one of {statuses}, not {status!r}").format(statuses=", ".join(STATUSES), status=status))
    now = time.time()
    fields: dict[str, Any] = {"status": status}
    if message is not None:
        fields["message"] = message
    if pid is not None:
        fields["pid"] = pid
    if status == "running":
        fields["host"] = socket.gethostname()
    if status in FINAL_STATUSES:
        fields["ended"] = now
    assignments = ", ".join(f"{k} = ?" for k in fields)
    with _connection() as conn:
        cur = conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))
        if status == "running":
            conn.execute("UPDATE runs SET started = ? WHERE id = ? AND started IS NULL", (now, run_id))
    if cur.rowcount == 0:
        raise UnknownRunError(_("no run with id {run_id!r}").format(run_id=run_id))


def record_pid(run_id: str, pid: int) -> None:
    """The training process of a running run (a run that already ended keeps its status)."""
    with _connection() as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE id = ? AND status = 'running'", (pid, run_id))


def _merge_summary(conn: Connection, run_id: str, parts: Mapping[str, Any]) -> None:
    row = conn.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise UnknownRunError(_("no run with id {run_id!r}").format(run_id=run_id))
    summary = json.loads(row["summary"]) | dict(parts)
    conn.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(summary), run_id))


def request_stop(run_id: str) -> None:
    """Ask a run to stop: a queued run is stopped at once, a running one at its next step."""
    with _connection() as conn, transaction(conn):
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRunError(_("no run with id {run_id!r}").format(run_id=run_id))
        conn.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
        if row["status"] == "queued":
            conn.execute(
                "UPDATE runs SET status = 'stopped', message = ?, ended = ? WHERE id = ?",
                (_("stopped before it started"), time.time(), run_id),
            )


def stop_requested(run_id: str) -> bool:
    with _connection() as conn:
        row = conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
    return bool(row and row["stop_requested"])


def rename(run_id: str, name: str) -> None:
    if not name.strip():
        raise ValueError(_("a run name must not be empty"))
    with _connection() as conn:
        cur = conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name.strip(), run_id))
    if cur.rowcount == 0:
        raise UnknownRunError(_("no run with id {run_id!r}").format(run_id=run_id))


def delete(run_id: str) -> None:
    """Remove the run, its metrics and its folder. A running run must be stopped first."""
    if get_run(run_id).status == "running":
        raise ValueError(_("run {run_id} is still running: stop it before deleting it").format(run_id=run_id))
    with _connection() as conn:
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    shutil.rmtree(home() / "runs" / run_id, ignore_errors=True)


def dependencies(config: TrainConfig | Mapping[str, Any]) -> list[str]:
    """Runs this config needs to have ended before it can start: the run whose weights it starts
    from (model.init_from_run) and its distillation teacher (tricks.teacher_run_id)."""
    tree = config.to_dict() if isinstance(config, TrainConfig) else config
    needed = (tree.get("model", {}).get("init_from_run"), tree.get("tricks", {}).get("teacher_run_id"))
    return [run_id for run_id in dict.fromkeys(needed) if run_id]


def waiting_for(run_id: str) -> list[str]:
    """The dependencies of a run that are still queued or running (empty when it may start)."""
    needed = dependencies(get_run(run_id).config)
    if not needed:
        return []
    with _connection() as conn:
        rows = conn.execute(
            f"SELECT id FROM runs WHERE status IN ('queued', 'running') AND id IN ({','.join('?' * len(needed))})",
            needed,
        ).fetchall()
    live = {row["id"] for row in rows}
    return [d for d in needed if d in live]


def claim_next_queued(max_concurrent: int, backend: str | None = None) -> str | None:
    """Mark the next startable queued run as running if fewer than `max_concurrent` runs are running.

    Owners take turns (see `queue_order`): one owner's ten runs do not hold back another's one.

    A queued run whose dependencies (see `dependencies`) are still queued or running is passed
    over, so a fine-tuning run waits for the run it starts from while younger runs go ahead. Once
    a dependency has ended, whatever its status, the run is claimed; if the dependency did not
    finish, the trainer fails the run with a message that says so.

    Counting and claiming happen in one write transaction, so two processes that tick at the same
    moment cannot both take the last free slot. The caller starts the run's process and records its pid.
    """
    refresh_statuses()
    with _connection() as conn:
        # A read first: pages call this every few seconds, and most of the time there is nothing to
        # claim; the write lock below would make a training process wait for nothing.
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM runs WHERE status IN ('queued', 'running') GROUP BY status").fetchall())
        if not counts.get("queued") or counts.get("running", 0) >= max_concurrent:
            return None
    with _connection() as conn, transaction(conn):
        live = conn.execute("SELECT id, status FROM runs WHERE status IN ('queued', 'running')").fetchall()
        running = sum(row["status"] == "running" for row in live)
        if running >= max_concurrent:
            return None
        order = _queue_order(conn)
        unfinished = {row["id"] for row in live}
        startable = (run_id for run_id, unused, config in order if unfinished.isdisjoint(dependencies(json.loads(config))))
        run_id = next(startable, None)
        if run_id is None:
            return None
        # The claimer's pid stands in until the caller records the training process's pid. A run
        # handed to a cluster has none until its trainer starts there (the claimer may exit first).
        local = backend is None
        conn.execute(
            "UPDATE runs SET status = 'running', started = ?, pid = ?, host = ?, backend = ? WHERE id = ?",
            (time.time(), os.getpid() if local else None, socket.gethostname() if local else None, backend, run_id),
        )
        return run_id


def queue_order() -> list[tuple[str, str | None]]:
    """The queued runs as (id, owner), in the order they would start (dependencies aside)."""
    with _connection() as conn:
        return [(run_id, owner) for run_id, owner, unused in _queue_order(conn)]


def _queue_order(conn: Connection) -> list[tuple[str, str | None, str]]:
    """Round-robin between owners: the owners with a run waiting take turns, the one who started a
    run least recently (never, first) going first, and each owner's runs keep their own order. So
    a student who queues ten runs gets every other slot, not the next ten. Each run comes with its
    config's JSON text (parsed only by the claim, which needs its dependencies)."""
    queued = conn.execute("SELECT id, owner, config, created FROM runs WHERE status = 'queued' ORDER BY created, id").fetchall()
    last_start = dict(conn.execute(
        "SELECT owner, MAX(started) FROM runs WHERE started IS NOT NULL AND status <> 'queued' GROUP BY owner"
    ).fetchall())
    lines: dict[str | None, list[tuple[str, str | None, str]]] = {}
    first_queued: dict[str | None, int] = {}
    for i, row in enumerate(queued):
        lines.setdefault(row["owner"], []).append((row["id"], row["owner"], row["config"]))
        first_queued.setdefault(row["owner"], i)
    # whose turn: least recent start first (never started: -1), then who queued first
    turns = sorted(lines, key=lambda owner: (last_start.get(owner) or -1.0, first_queued[owner]))
    order = []
    for i in range(max(map(len, lines.values()), default=0)):
        order += [lines[owner][i] for owner in turns if i < len(lines[owner])]
    return order


# ------------------------------------------------------------------------- interrupted runs


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and has not already exited (zombies count as dead)."""
    if os.name == "nt":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): existence is all we can check
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _windows_pid_alive(pid: int) -> bool:
    # os.kill(pid, 0) would send Ctrl-C on Windows, so ask the kernel for the exit code instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    kernel32.CloseHandle(handle)
    return bool(ok) and code.value == 259  # STILL_ACTIVE


def running_runs() -> list[RunRecord]:
    """The runs the store says are training now (on any host or backend)."""
    with _connection() as conn:
        return [_record(row) for row in conn.execute("SELECT * FROM runs WHERE status = 'running'").fetchall()]


def mark_interrupted(run_id: str, message: str) -> None:
    """A running run whose trainer is gone ends "interrupted"; its recorded steps stay."""
    with _connection() as conn:
        conn.execute(
            "UPDATE runs SET status = 'interrupted', ended = ?, message = ? WHERE id = ? AND status = 'running'",
            (time.time(), message, run_id),
        )


def last_error(log: Path, tail_bytes: int = 8192) -> str | None:
    """The last "error: ..." line a trainer wrote to its log (what it said before it died), if any."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - tail_bytes))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    # "error: ..." in whichever language the run spoke (LANGUAGE_ENV of the session that started it)
    prefixes = {i18n.catalog_text(lang, "error: {message}").split("{message}")[0] for lang in i18n.LANGUAGES}
    for line in reversed(lines):
        for prefix in prefixes:
            if prefix and line.startswith(prefix):
                return line.removeprefix(prefix)[:600]
    return None


def refresh_statuses(run_ids: list[str] | None = None) -> list[str]:
    """Mark "running" runs of this host whose process is gone as interrupted; returns their ids.

    Runs started on another host (a GPU server sharing AUGLAB_HOME) are left alone: their pids
    mean nothing here.
    """
    query = "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?"
    params: list[Any] = [socket.gethostname()]
    if run_ids is not None:
        query += f" AND id IN ({','.join('?' * len(run_ids))})"
        params += run_ids
    with _connection() as conn:
        rows = conn.execute(query, params).fetchall()
    dead = [(row["id"], row["pid"]) for row in rows if row["pid"] is None or not pid_alive(row["pid"])]
    for run_id, pid in dead:
        log = home() / "runs" / run_id / "log.txt"
        message = (
            _("the training process (pid {pid}) ended without recording a result; its output is in {log}")
            if log.exists()
            else _("the training process (pid {pid}) ended without recording a result")
        ).format(pid=pid, log=log)
        if said := last_error(log):
            message += _(". Its last words: {error}").format(error=said)
        mark_interrupted(run_id, message)
    return [run_id for run_id, unused in dead]


# --------------------------------------------------------------------------------- settings


def get_setting(key: str, default: str | None = None) -> str | None:
    with _connection() as conn:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return row["value"] if row else default


def set_setting(key: str, value: str) -> None:
    with _connection() as conn:
        conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


# ----------------------------------------------------------------------------- the sink


def add_ended_runs(runs: Sequence[tuple[RunRecord, pd.DataFrame]]) -> None:
    """Record runs made elsewhere (an import), each with its metric rows, in one transaction: all
    of them or, on any error, none. The records must be ended and their ids new to this store."""
    columns = ("kind", "step", "epoch", *METRIC_COLUMNS)
    with _connection() as conn, transaction(conn):
        for record, rows in runs:
            if record.status not in FINAL_STATUSES:
                raise ValueError(_("only an ended run can be added, not a {status} one").format(status=record.status))
            conn.execute(
                "INSERT INTO runs (id, name, config, status, message, device, created, started, ended, summary) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record.id, record.name, json.dumps(record.config), record.status, record.message, record.device,
                 record.created, record.started, record.ended, json.dumps(record.summary)),
            )
            values = rows.reindex(columns=list(columns))
            values = values.astype(object).where(values.notna(), None)
            conn.executemany(
                f"INSERT INTO metrics (run_id, {', '.join(columns)}) VALUES ({','.join('?' * (len(columns) + 1))})",
                [(record.id, *row) for row in values.itertuples(index=False, name=None)],
            )


def has_run(run_id: str) -> bool:
    with _connection() as conn:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None


def all_metrics(run_id: str) -> pd.DataFrame:
    """Every metric row of a run, steps and evaluations, as stored (kind, step, epoch, the metrics)."""
    with _connection() as conn:
        return conn.frame(
            f"SELECT kind, step, epoch, {', '.join(METRIC_COLUMNS)} FROM metrics WHERE run_id = ? "
            f"ORDER BY kind, step, {conn.order}", (run_id,),
        )


def _file_name(path: str | None) -> str | None:
    # Only the name is stored: the run folder is found from AUGLAB_HOME, which may be mounted
    # at another path on another machine.
    return Path(path).name if path else None


_INSERT_METRICS = (f"INSERT INTO metrics (run_id, kind, step, epoch, {', '.join(METRIC_COLUMNS)}) "
                   f"VALUES ({','.join('?' * (4 + len(METRIC_COLUMNS)))})")


BATCH_SAMPLE_FILE = "batch_sample.npz"


def write_batch_sample(run_id: str, sample: BatchSample) -> Path:
    """The run's latest BatchSample, in its folder (one small file, replaced whole, so a reader
    never sees half of one): uint8 images plus a JSON string with step, epoch, targets, draws."""
    import numpy as np

    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"step": sample.step, "epoch": sample.epoch, "targets": sample.targets, "drawn": sample.drawn},
                      ensure_ascii=False)
    partial = folder / f".{BATCH_SAMPLE_FILE}.{os.getpid()}"
    with partial.open("wb") as out:
        np.savez(out, images=np.asarray(sample.images, dtype=np.uint8), meta=np.array(meta))
    os.replace(partial, folder / BATCH_SAMPLE_FILE)
    return folder / BATCH_SAMPLE_FILE


def read_batch_sample(run_id: str) -> BatchSample | None:
    """The run's latest BatchSample, or None if it has none (yet) or the file cannot be read."""
    import numpy as np

    path = run_dir(run_id) / BATCH_SAMPLE_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            images = data["images"]
    except (OSError, ValueError, KeyError):  # none yet, or not one of ours
        return None
    targets = [[(int(c), float(w)) for c, w in row] for row in meta["targets"]]
    return BatchSample(step=int(meta["step"]), epoch=float(meta["epoch"]), images=images, targets=targets,
                       drawn=[list(lines) for lines in meta["drawn"]])


class StoreSink:
    """Records a run's events as they happen, on one connection held for the whole run.

    A step is committed as soon as committing costs at most `max_overhead` of the training time:
    once at least `commit_s / max_overhead` seconds have passed since the last commit, where
    commit_s is what commits have been taking (measured as the run goes). On SQLite a commit takes
    ~0.04 ms, so every step of any real model is committed as it ends and a trainer killed with
    kill -9 loses only the step it was in; on a PostgreSQL server over loopback (~0.7 ms) every
    step of 70 ms or more is, and faster ones in groups spanning ~70 ms (bench/store_commit.py).
    Whatever the store, at most `flush_every_s` seconds or `flush_every_steps` steps wait, and
    every evaluation and the end are committed at once.
    """

    def __init__(self, run_id: str, flush_every_s: float = 0.5, flush_every_steps: int = 50,
                 max_overhead: float = 0.01) -> None:
        self.run_id = run_id
        self.flush_every_s = flush_every_s
        self.flush_every_steps = flush_every_steps
        self.max_overhead = max_overhead
        self.conn = _open()
        self.pending: list[tuple] = []
        self.last_flush = time.monotonic()
        self.commit_s = 0.0  # a moving average of how long a commit takes on this store

    def commit_interval(self) -> float:
        """Seconds between commits of step rows: as often as costs at most max_overhead."""
        return min(self.flush_every_s, self.commit_s / self.max_overhead)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Started):
            self._started(event)
        elif isinstance(event, Step):
            self.pending.append(
                (self.run_id, "step", event.step, event.epoch, event.loss, event.acc, None, None,
                 event.lr, event.images_per_s, event.wall)
            )
            due = time.monotonic() - self.last_flush >= self.commit_interval()
            if due or len(self.pending) >= self.flush_every_steps:
                self.flush()
        elif isinstance(event, BatchSample):
            try:
                write_batch_sample(self.run_id, event)
            except OSError:
                pass  # a view for the page; the run's record must not fail over it (a full disk fails the next commit)
        elif isinstance(event, Eval):
            self.pending.append(
                (self.run_id, "epoch", event.step, event.epoch, event.train_loss, event.train_acc,
                 event.test_loss, event.test_acc, None, None, event.wall)
            )
            self.flush()
        elif isinstance(event, Finished):
            self.flush()
            self._finish(
                "finished",
                None,
                final=event.metrics,
                classes=list(event.classes),
                confusion=event.confusion,
                per_class_acc=event.per_class_acc,
                misclassified=event.misclassified,
                weights=_file_name(event.weights_path),
            )
        elif isinstance(event, Stopped):
            self.flush()
            self._finish("stopped", event.message, weights=_file_name(event.weights_path))
        elif isinstance(event, Failed):
            self.flush()
            self._finish("failed", event.message, traceback=event.detail or None)

    def _started(self, event: Started) -> None:
        data = {
            "classes": list(event.classes),
            "in_channels": event.in_channels,
            "image_size": event.image_size,
            "mean": list(event.mean),
            "std": list(event.std),
            "train_size": event.train_size,
            "test_size": event.test_size,
        }
        start = time.monotonic()
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE runs SET status = 'running', device = ?, pid = ?, host = ?, "
                "started = COALESCE(started, ?) WHERE id = ?",
                (event.device, os.getpid(), socket.gethostname(), time.time(), self.run_id),
            )
            _merge_summary(
                self.conn,
                self.run_id,
                {"data": data, "n_params": event.n_params, "steps_per_epoch": event.steps_per_epoch,
                 "total_steps": event.total_steps, "versions": dict(event.versions)},
            )
        self.commit_s = time.monotonic() - start  # a first measure of a commit, before any step

    def _finish(self, status: str, message: str | None, **summary: Any) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE runs SET status = ?, message = ?, ended = ? WHERE id = ?",
                (status, message, time.time(), self.run_id),
            )
            _merge_summary(self.conn, self.run_id, summary)

    def flush(self) -> None:
        if self.pending:
            start = time.monotonic()
            try:
                with transaction(self.conn):
                    self.conn.executemany(_INSERT_METRICS, self.pending)
            except StoreError:
                raise
            except Exception as exc:  # sqlite3's or psycopg's: a full disk, a lost server
                raise StoreError(_(
                    "The run store {where} could not be written ({error}); is the disk full? Every step "
                    "recorded before this one is kept."
                ).format(where=where(), error=str(exc).strip() or type(exc).__name__)) from exc
            self.pending.clear()
            took = time.monotonic() - start
            self.commit_s = took if self.commit_s == 0.0 else 0.8 * self.commit_s + 0.2 * took
        self.last_flush = time.monotonic()

    def should_stop(self) -> bool:
        """The run's stop flag; one indexed read on an open connection, cheap enough for every step."""
        row = self.conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (self.run_id,)).fetchone()
        return bool(row and row["stop_requested"])

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.conn.close()
