"""Shared test set-up: the repository root is importable, nothing touches the real data folder, and
the helpers the page tests share (opening a page, rerunning it, cleaning up its runs)."""
import base64
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tests use tiny tensors: one thread avoids threads fighting over the CI machine's two cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def auglab_home(tmp_path, monkeypatch):
    """Every test gets its own AUGLAB_HOME, so runs, caches and uploads never leak between tests."""
    home = tmp_path / "auglab_home"
    monkeypatch.setenv("AUGLAB_HOME", str(home))
    return home


PG_URL_ENV = "AUGLAB_TEST_PG_URL"  # a PostgreSQL server for the store tests (.ci/postgres.sh starts one)
PG_SCHEMA_ENV = "AUGLAB_TEST_PG_SCHEMA"  # the schema both_stores made for this test


@pytest.fixture(params=["sqlite", "postgresql"])
def both_stores(request, monkeypatch):
    """The test once on the embedded SQLite store, once on a PostgreSQL server in a schema of its own.

    Without $AUGLAB_TEST_PG_URL the PostgreSQL half is skipped, except in CI (CI=true), where
    `.ci/run` starts a server and a missing one is a failure."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    url = os.environ.get(PG_URL_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the store tests on PostgreSQL too: ${PG_URL_ENV} is not set (.ci/postgres.sh)")
        pytest.skip(f"no PostgreSQL server: set ${PG_URL_ENV} (export {PG_URL_ENV}=$(bash .ci/postgres.sh))")
    import psycopg

    schema = "test_" + os.urandom(6).hex()
    monkeypatch.setenv("AUGLAB_STORE_URL", _pg_schema_url(url, schema))
    monkeypatch.setenv(PG_SCHEMA_ENV, schema)  # for other_store
    try:
        yield "postgresql"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (schema + "%",)).fetchall():
                conn.execute(f"DROP SCHEMA {name} CASCADE")


def _pg_schema_url(url: str, schema: str) -> str:
    """The server's URL with `schema` (created here) as the search path: a store of its own."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def other_store(tmp_path, monkeypatch):
    """Switch to a second, empty store (another machine): another home and, on PostgreSQL, another
    schema; returns a function that switches to the store called `name` (new the first time)."""
    schema = os.environ.get(PG_SCHEMA_ENV)  # set when the test runs on PostgreSQL (both_stores)

    def use(name: str):
        monkeypatch.setenv("AUGLAB_HOME", str(tmp_path / name))
        if schema:
            monkeypatch.setenv("AUGLAB_STORE_URL", _pg_schema_url(os.environ[PG_URL_ENV], f"{schema}_{name}"))

    return use


def png_header_only(width: int, height: int) -> bytes:
    """A PNG of ~100 bytes that declares `width` x `height` pixels (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    pixels = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def plotly_array(values) -> np.ndarray:
    """A trace's x or y from a chart spec: a list, or numpy data that plotly ships as {"dtype", "bdata"} base64."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


# ---- page tests (streamlit.testing.v1.AppTest) -------------------------------------------------


@pytest.fixture(scope="module")
def one_torch_thread():
    """The pages load datasets in the test's process: one thread, so two spinning torch threads
    do not make generating the shapes many times slower on a shared machine. Page test modules
    use it for the whole module (pytestmark)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_runs_left_behind():
    """Stop whatever a test left training, so no process outlives its temporary AUGLAB_HOME."""
    yield
    from core.runs import runner, store

    runs = store.list_runs()
    for run_id in runs[runs["status"].isin(["queued", "running"])]["id"]:
        runner.stop(run_id)
    for run_id in runs[runs["status"] == "running"]["id"]:
        if store.get_run(run_id).pid != os.getpid():
            runner.wait(run_id, timeout=60)


def run(app):
    """Rerun a page as a person's click would; it must not raise."""
    app.run()
    assert not app.exception, app.exception
    return app


def open_page(page: str, **state):
    """The app opened on `page` (e.g. "pages/train.py") with these session-state values set."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page(page)
    for key, value in state.items():
        app.session_state[key] = value
    return run(app)


def open_train_page():
    """The Train page, with the time estimate off (timing steps is tested once, on its own)."""
    return open_page("pages/train.py", tr_auto_estimate=False)


def progress_text(app) -> str:
    bars = app.get("progress")
    return bars[0].proto.text if bars else ""


def queue_table(app):
    """The "Training and waiting" table (a static st.table, keyed by status) as a DataFrame."""
    return app.table[-1].value.reset_index()


def occupy_the_only_slot() -> str:
    """A "running" run whose process is this one (alive), so launches queue and nothing is spawned."""
    from core.runs import runner, store
    from core.training.config import TrainConfig

    runner.set_max_concurrent(1)
    return store.create_run(TrainConfig(), "occupier", status="running")
