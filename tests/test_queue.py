"""Fair sharing of one app's queue: runs belong to owners, owners take turns, each has a limit."""
import sqlite3

import pandas as pd
import pytest

from conftest import occupy_the_only_slot

from core.runs import compare, database, runner, store
from core.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("both_stores")  # on SQLite and on PostgreSQL (conftest)


def queue(owner: str, name: str) -> str:
    return store.create_run(TrainConfig(), name, owner=owner)


def names(order) -> list[str]:
    return [store.get_run(run_id).name for run_id, unused in order]


def test_owners_take_turns_so_a_long_list_does_not_starve_a_single_run():
    for i in range(3):
        queue("ana", f"ana {i}")
    queue("bo", "bo 0")
    # Nobody has started anything: the first to queue goes first, then turns alternate.
    assert names(store.queue_order()) == ["ana 0", "bo 0", "ana 1", "ana 2"]
    assert [owner for unused, owner in store.queue_order()] == ["ana", "bo", "ana", "ana"]

    claimed = [store.claim_next_queued(max_concurrent=10) for unused in range(4)]
    assert [store.get_run(run_id).name for run_id in claimed] == ["ana 0", "bo 0", "ana 1", "ana 2"]
    assert store.claim_next_queued(max_concurrent=10) is None


def test_whoever_started_a_run_least_recently_goes_next():
    first = queue("ana", "ana 0")
    store.claim_next_queued(max_concurrent=10)
    assert store.get_run(first).status == "running"
    queue("ana", "ana 1")
    queue("bo", "bo 0")  # queued after ana's second run, but ana has just had a turn
    assert names(store.queue_order()) == ["bo 0", "ana 1"]


def test_each_owner_may_queue_a_limited_number_and_the_message_says_so(monkeypatch):
    runner.set_max_concurrent(1)
    store.create_run(TrainConfig(), "occupier", status="running")  # this process: alive, the only slot
    runner.set_max_queued(2)
    runner.launch(TrainConfig(), "a", who="ana")
    runner.launch(TrainConfig(), "b", who="ana")
    with pytest.raises(store.QueueFullError, match="ana already has 2 runs waiting"):
        runner.launch(TrainConfig(), "c", who="ana")
    runner.launch(TrainConfig(), "other", who="bo")  # another owner's share is untouched
    assert [owner for unused, owner in store.queue_order()] == ["ana", "bo", "ana"]

    # A group of runs (seeds, a preset) is queued whole or not at all.
    monkeypatch.setenv(runner.OWNER_ENV, "bo")
    with pytest.raises(store.QueueFullError, match="these 2 would not fit"):
        compare.launch_seeds(TrainConfig(), 2, 0, "group")
    assert len(store.queue_order()) == 3
    assert compare.launch_seeds(TrainConfig(), 1, 0, "group")
    assert store.get_run(store.queue_order()[-1][0]).owner == "bo"


def test_the_owner_comes_from_the_session_then_the_environment(monkeypatch):
    monkeypatch.setenv(runner.OWNER_ENV, "cli user")
    assert runner.owner() == "cli user"
    monkeypatch.setattr(runner, "_owner_source", lambda: "a browser")
    assert runner.owner() == "a browser"
    runner.set_max_concurrent(1)
    store.create_run(TrainConfig(), "occupier", status="running")
    run_id = runner.launch(TrainConfig())
    assert store.get_run(run_id).owner == "a browser"
    owners = store.list_runs()["owner"]  # newest first; the occupier has no owner
    assert owners.iloc[0] == "a browser" and pd.isna(owners.iloc[1])


def test_a_store_made_before_owners_gains_the_columns_and_keeps_its_runs(both_stores):
    old_schema = database.schema(both_stores, store.STATUSES, store.METRIC_COLUMNS)
    old_schema = "\n".join(line for line in old_schema.splitlines() if not line.lstrip().startswith(("owner", "backend")))
    old_schema = old_schema.replace("'{}', --", "'{}'  --")  # the last column of the old table
    insert = "INSERT INTO runs (id, name, config, status, created) VALUES ('old', 'an old run', ?, 'finished', 1)"
    url = database.store_url()
    if both_stores == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executescript(old_schema)
            conn.execute(insert, (TrainConfig().to_json(),))
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(old_schema)
            conn.execute(insert.replace("?", "%s"), (TrainConfig().to_json(),))
    database._initialised.discard(url)  # as a new process would: this one has not seen the store yet
    columns = store.list_runs().columns
    assert {"owner", "backend"} <= set(columns)
    record = store.get_run("old")
    assert record.name == "an old run" and record.owner is None and record.backend is None
    assert store.get_run(queue("ana", "new")).owner == "ana"


def test_the_limit_is_a_store_setting_over_the_environment(monkeypatch):
    assert runner.max_queued() == runner.DEFAULT_MAX_QUEUED
    monkeypatch.setenv(runner.MAX_QUEUED_ENV, "5")
    assert runner.max_queued() == 5
    runner.set_max_queued(3)  # every process that reads this store agrees
    assert runner.max_queued() == 3
    with pytest.raises(ValueError):
        runner.set_max_queued(0)


def test_live_tabs_of_one_server_share_one_read_of_the_queue_while_page_runs_read_afresh(monkeypatch):
    from pages.ui import run_monitor

    reads = []
    real = store.list_runs
    monkeypatch.setattr(store, "list_runs", lambda: reads.append(1) or real())
    occupy_the_only_slot()  # the reads move the queue along: nothing may start
    queue("ana", "ana 0")
    blocked = queue("bo", "bo 0")
    store.create_run(TrainConfig.from_dict({"model": {"init_from_run": blocked}}), "needs bo", owner="cy")

    monkeypatch.setattr(run_monitor, "_timed_refresh", lambda: False)  # whole page runs
    first, second = run_monitor.queue_view(), run_monitor.queue_view()
    assert len(reads) == 2 and first is not second
    assert set(first.runs["name"]) == {"occupier", "ana 0", "bo 0", "needs bo"}
    assert list(first.runs.dropna(subset="position").sort_values("position")["name"]) == ["ana 0", "bo 0", "needs bo"]
    assert [store.get_run(r).name for r in first.waiting] == ["needs bo"]

    monkeypatch.setattr(run_monitor, "_timed_refresh", lambda: True)  # live tabs' timers
    views = {id(run_monitor.queue_view()) for unused in range(5)}
    assert len(reads) == 2 and views == {id(second)}  # within SHARED_READ_S of the last read: shared
    monkeypatch.setattr(run_monitor, "SHARED_READ_S", 0.0)
    queue("di", "di 0")
    fresh = run_monitor.queue_view()
    assert len(reads) == 3 and "di 0" in set(fresh.runs["name"])
