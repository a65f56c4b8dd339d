"""The run store's database: SQLite by default, PostgreSQL when a URL says so.

    AUGLAB_STORE_URL=postgresql://user@db.lab.local/auglab   # a lab: every machine, one server
    (unset)                                                   # home()/runs.sqlite, embedded

The store (core/runs/store.py) writes its SQL once, in the subset both engines speak, with `?`
placeholders; this module is what differs between them: connecting, the schema's types, a write
transaction that serialises writers (SQLite's BEGIN IMMEDIATE, PostgreSQL's transaction-scoped
advisory lock), the tie-breaking column of the metrics, and reading rows into a DataFrame.
PostgreSQL is reached with psycopg 3 (requirements-lab.txt), imported only when a URL asks for it.
SQLite on a network filesystem is not safe to share between machines (SQLite's own advice), which
is why a lab points every machine at one PostgreSQL server instead.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from core.i18n import _
from core.paths import home

URL_ENV = "AUGLAB_STORE_URL"
_WRITE_LOCK = 0x61756C61  # the advisory lock id every PostgreSQL writer takes ("aula")


class StoreError(RuntimeError):
    """The store cannot be reached or read; the message says which and how to fix it."""


def store_url() -> str:
    """Where the runs are: $AUGLAB_STORE_URL, else the SQLite file in home()."""
    url = os.environ.get(URL_ENV, "").strip()
    return url or f"sqlite:///{home() / 'runs.sqlite'}"


def describe(url: str | None = None) -> str:
    """The store for a message: the SQLite file's path, or the server without its password."""
    url = url or store_url()
    if url.startswith("sqlite:"):
        return url.removeprefix("sqlite:///")
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class Row(tuple):
    """A result row read by position or by column name, from either engine."""

    names: tuple[str, ...] = ()

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self.names.index(key))
            except ValueError:
                raise KeyError(key) from None
        return tuple.__getitem__(self, key)

    def keys(self) -> tuple[str, ...]:
        return self.names


@dataclass
class Connection:
    """One connection to the store, the same few calls on either engine."""

    raw: Any
    dialect: str  # "sqlite" or "postgresql"

    def _sql(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("%", "%%").replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.dialect == "sqlite":
            return self.raw.execute(sql, tuple(params))
        cursor = self.raw.cursor()
        cursor.execute(self._sql(sql), tuple(params))
        return cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self.raw.executemany(sql, rows)
        elif rows:
            with self.raw.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The rows of a query as a DataFrame (numbers as floats where a column has gaps)."""
        cursor = self.execute(sql, params)
        columns = [c[0] for c in cursor.description]
        rows = [tuple(r) for r in cursor.fetchall()]
        frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        for column in frame.columns:  # a column of numbers and gaps reads as floats and NaN, as pandas' read_sql does
            if frame[column].dtype == object and frame[column].map(lambda v: v is None or isinstance(v, (int, float))).all() \
                    and frame[column].notna().any():
                frame[column] = pd.to_numeric(frame[column])
        return frame

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction that no other writer interleaves with: read-then-write cannot race."""
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
        else:
            self.raw.execute("BEGIN")
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
        try:
            yield self
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    @property
    def order(self) -> str:
        """The metrics' insertion order, to break ties between rows of one step."""
        return "rowid" if self.dialect == "sqlite" else "seq"

    def json_number(self, column: str, key: str) -> str:
        """SQL for the number at `key` of a JSON text column."""
        if self.dialect == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        return f"(({column})::json ->> '{key}')::double precision"

    def close(self) -> None:
        self.raw.close()


def schema(dialect: str, statuses: Sequence[str], metric_columns: Sequence[str]) -> str:
    real, big = ("REAL", "INTEGER") if dialect == "sqlite" else ("DOUBLE PRECISION", "BIGINT")
    seq = "" if dialect == "sqlite" else "seq BIGSERIAL,\n    "
    return f"""
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,                -- TrainConfig JSON
    status TEXT NOT NULL CHECK (status IN {tuple(statuses)}),
    message TEXT,                        -- why it failed or stopped
    device TEXT,                         -- the device actually used
    created {real} NOT NULL,             -- unix seconds
    started {real},
    ended {real},
    pid {big},                           -- the training process, to detect interrupted runs
    host TEXT,                           -- where that pid lives
    stop_requested INTEGER NOT NULL DEFAULT 0,
    summary TEXT NOT NULL DEFAULT '{{}}', -- JSON: data description, final metrics, confusion, ...
    owner TEXT,                          -- who launched it (a browser session, a user, the CLI)
    backend TEXT                         -- where it trains: NULL for a local process, 'ray'
);
CREATE TABLE IF NOT EXISTS metrics (
    {seq}run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('step', 'epoch')),
    step {big} NOT NULL,
    epoch {real} NOT NULL,
    {", ".join(f"{c} {real}" for c in metric_columns)}
);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics (run_id, kind, step);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# Columns added to `runs` after stores already existed: a store made before them gains them on
# its first connection (NULL in every older run).
ADDED_COLUMNS = (("owner", "TEXT"), ("backend", "TEXT"))


def _upgrade_sqlite(raw: sqlite3.Connection) -> None:
    have = {row[1] for row in raw.execute("PRAGMA table_info(runs)").fetchall()}
    for name, kind in ADDED_COLUMNS:
        if name not in have:
            raw.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")


def _upgrade_postgresql(raw: Any) -> None:
    for name, kind in ADDED_COLUMNS:
        raw.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {name} {kind}")


_initialised: set[str] = set()
_init_lock = threading.Lock()


def connect(schema_sql: dict[str, str]) -> Connection:
    """A new connection to the store, in autocommit mode (each statement commits unless inside
    `transaction`); the schema is created on a process's first connection to a store.
    schema_sql: the schema per dialect."""
    url = store_url()
    if url.startswith("sqlite:"):
        conn = _connect_sqlite(Path(url.removeprefix("sqlite:///")), schema_sql["sqlite"], url)
    elif url.startswith(("postgresql:", "postgres:")):
        conn = _connect_postgresql(url, schema_sql["postgresql"])
    else:
        raise StoreError(_("{env} must be a postgresql:// URL (or unset, for the SQLite file in the home folder), "
                           "not {url!r}").format(env=URL_ENV, url=url[:80]))
    return conn


def _connect_sqlite(path: Path, schema_sql: str, url: str) -> Connection:
    try:
        # a long timeout because a trainer and a page may write at the same instant
        raw = sqlite3.connect(path, timeout=30, isolation_level=None)
        raw.row_factory = _sqlite_row
        raw.execute("PRAGMA foreign_keys = ON")
        raw.execute("PRAGMA synchronous = NORMAL")  # safe in WAL mode and much faster than FULL
        if url not in _initialised:
            raw.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
            raw.executescript(schema_sql)
            _upgrade_sqlite(raw)
            _initialised.add(url)
    except sqlite3.DatabaseError as exc:
        raise StoreError(_(
            "The run store {path} cannot be read ({error}). Move it aside (the runs' folders stay) "
            "and a new, empty store is made; or point {env} at another store."
        ).format(path=path, error=exc, env=URL_ENV)) from exc
    return Connection(raw, "sqlite")


def _sqlite_row(cursor: sqlite3.Cursor, values: tuple) -> Row:
    row = Row(values)
    row.names = tuple(c[0] for c in cursor.description)
    return row


def _connect_postgresql(url: str, schema_sql: str) -> Connection:
    try:
        import psycopg
    except ImportError:
        raise StoreError(_("{env} points at PostgreSQL, but psycopg is not installed: "
                           "pip install -r requirements-lab.txt").format(env=URL_ENV)) from None
    try:
        raw = psycopg.connect(url, autocommit=True, connect_timeout=10, row_factory=_postgresql_rows)
    except psycopg.Error as exc:
        raise StoreError(_("The run store at {where} cannot be reached: {error}").format(
            where=describe(url), error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)) from exc
    with _init_lock:
        if url not in _initialised:
            with raw.transaction():  # one process creates the tables; the others wait, then find them
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                raw.execute(schema_sql)
                _upgrade_postgresql(raw)
            _initialised.add(url)
    return Connection(raw, "postgresql")


def _postgresql_rows(cursor: Any):
    names = tuple(c.name for c in cursor.description or ())

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row.names = names
        return row

    return make
