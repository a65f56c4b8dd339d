"""Runs that travel: export a group of runs as one file, import it into another store, and refuse
every bad file with a message while the store stays as it was."""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import pandas as pd
import pytest
import torch
from test_compare import make_run

from core import cli
from core.runs import compare, replay, store, transfer
from core.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("both_stores")  # on SQLite and on PostgreSQL (conftest)


def snapshot() -> tuple:
    runs = store.list_runs()
    return tuple(runs["id"]), {i: store.all_metrics(i).fillna(-1).to_dict("list") for i in runs["id"]}


def rezip(data: bytes, change) -> bytes:
    """The zip with its members passed through change(name, bytes) -> (name, bytes) or None to drop."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            kept = change(info.filename, src.read(info.filename))
            if kept is not None:
                dst.writestr(kept[0], kept[1])
    return out.getvalue()


def test_export_then_import_on_a_fresh_store_gives_the_same_runs_and_metrics(other_store):
    a = make_run("baseline", test_acc=(0.5, 0.7))
    b = make_run("mixup", {"tricks": {"mixup_alpha": 0.2}}, test_acc=(0.4, 0.8))
    before = {i: (store.get_run(i), store.all_metrics(i)) for i in (a, b)}
    data = transfer.export_runs([a, b])
    assert transfer.export_name(["baseline"]) == "baseline" + transfer.SUFFIX

    other_store("laptop")
    assert store.list_runs().empty
    result = transfer.import_runs(data)
    assert result.added == [a, b] and result.skipped == []
    for run_id, (record, rows) in before.items():
        got = store.get_run(run_id)
        assert (got.name, got.config, got.status, got.summary, got.created) == (
            record.name, record.config, record.status, record.summary, record.created)
        pd.testing.assert_frame_equal(store.all_metrics(run_id), rows)
    # in Compare: the curves and the table as on the first machine
    assert compare.curves([a, b], "test_acc")["value"].tolist() == pytest.approx([0.5, 0.7, 0.4, 0.8])
    assert "tricks.mixup_alpha" in compare.compare_table([a, b], baseline=a).attrs["differing"]
    # importing again changes nothing: the runs are there already
    again = transfer.import_runs(data)
    assert again.added == [] and again.skipped == [a, b]


def test_weights_travel_when_asked_and_load_safely(other_store):
    cfg = TrainConfig.from_dict({"model": {"options": {"width": 0.25, "depth": 1}},
                                 "data": {"subset": 0.05}, "run": {"epochs": 1, "batch_size": 64, "threads": 1}})
    run_id = cli.run(cfg, "tiny")
    record = store.get_run(run_id)
    assert record.status == "finished" and record.summary["weights"]
    with_weights, without = transfer.export_runs([run_id], weights=True), transfer.export_runs([run_id])
    assert f"runs/{run_id}/weights.pt" in zipfile.ZipFile(io.BytesIO(with_weights)).namelist()
    assert f"runs/{run_id}/weights.pt" not in zipfile.ZipFile(io.BytesIO(without)).namelist()

    other_store("a")
    transfer.import_runs(with_weights)
    imported = store.get_run(run_id)
    original = torch.load(record.folder / record.summary["weights"], weights_only=True)
    copied = torch.load(imported.folder / imported.summary["weights"], weights_only=True)
    assert original.keys() == copied.keys() and all(torch.equal(original[k], copied[k]) for k in original)
    other_store("b")
    transfer.import_runs(without)
    assert "weights" not in store.get_run(run_id).summary  # nothing claims weights that are not there

    # weights that would run code when unpickled, or that belong to another model, are refused
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    def swap(content: bytes):
        return lambda name, data: (name, content if name.endswith("weights.pt") else data)

    other_store("c")
    evil = rezip(with_weights, swap(pickle.dumps(Evil())))
    with pytest.raises(transfer.TransferError, match="not a plain PyTorch state dict"):
        transfer.import_runs(evil)
    buffer = io.BytesIO()
    torch.save({"layer.weight": torch.zeros(3, 3)}, buffer)
    with pytest.raises(transfer.TransferError, match="do not fit the model"):
        transfer.import_runs(rezip(with_weights, swap(buffer.getvalue())))
    assert store.list_runs().empty and not any((store.home() / "runs").glob("*/*"))


def test_only_ended_runs_export():
    running = make_run("still going", status="running")
    with pytest.raises(transfer.TransferError, match="only ended runs"):
        transfer.export_runs([running])
    with pytest.raises(transfer.TransferError, match="at least one run"):
        transfer.export_runs([])


def with_text(csv: bytes) -> bytes:
    rows = pd.read_csv(io.BytesIO(csv))
    rows["train_loss"] = rows["train_loss"].astype(object)
    rows.loc[0, "train_loss"] = "oops"
    return rows.to_csv(index=False).encode()


def bad_files(good: bytes, run_id: str) -> dict[str, tuple[bytes, str]]:
    """Each way a run file can be wrong -> (the file, what the message says)."""
    def edit_json(member: str, edit):
        def change(name, data):
            if name != member:
                return name, data
            doc = json.loads(data)
            edit(doc)
            return name, json.dumps(doc).encode()
        return rezip(good, change)

    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        dst.writestr(f"runs/{run_id}/log.txt", b"\0" * (5 * 2**20))
    return {
        "not a zip": (b"PK\x03\x04 not really a zip", "not a run file"),
        "a plain zip": (rezip(good, lambda n, d: None if n == "manifest.json" else (n, d)), "no manifest.json"),
        "a path outside": (rezip(good, lambda n, d: ("../../evil.json", d) if n.endswith("run.json") else (n, d)),
                           "unexpected entry"),
        "another format": (edit_json("manifest.json", lambda m: m.update(format="other")), "format"),
        "a newer version": (edit_json("manifest.json", lambda m: m.update(version=99)), "version 99"),
        "a manifest that lies": (edit_json("manifest.json", lambda m: m.update(runs=["someone-else"])),
                                 "does not match"),
        "a bad config": (edit_json(f"runs/{run_id}/run.json", lambda r: r["config"]["optim"].update(lr=-1)),
                         "config of run"),
        "an unknown config key": (edit_json(f"runs/{run_id}/run.json", lambda r: r["config"].update(evil=1)),
                                  "config of run"),
        "a running run": (edit_json(f"runs/{run_id}/run.json", lambda r: r.update(status="running")), "only ended"),
        "a name too long": (edit_json(f"runs/{run_id}/run.json", lambda r: r.update(name="x" * 10_000)),
                            "at most 200"),
        "a bad time": (edit_json(f"runs/{run_id}/run.json", lambda r: r.update(created="yesterday")), "not a number"),
        "bad metric columns": (rezip(good, lambda n, d: (n, b"a,b\n1,2\n") if n.endswith(".csv") else (n, d)),
                               "columns"),
        "text in the metrics": (rezip(good, lambda n, d: (n, with_text(d)) if n.endswith(".csv") else (n, d)),
                                "not numbers"),
        "a zip bomb": (bomb.getvalue(), "zip bomb"),
        "a huge file": (bytes(transfer.MAX_FILE_BYTES + 1), "at most"),
        "not json": (rezip(good, lambda n, d: (n, b"{nope") if n == "manifest.json" else (n, d)), "not valid JSON"),
    }


def test_every_bad_file_is_refused_with_its_message_and_the_store_is_unchanged(other_store):
    run_id = make_run("baseline")
    good = transfer.export_runs([run_id])
    other_store("target")
    kept = make_run("already here")
    before = snapshot()
    for what, (data, message) in bad_files(good, run_id).items():
        with pytest.raises(transfer.TransferError, match=message):
            transfer.import_runs(data)
        assert snapshot() == before, what
        assert not (store.home() / "runs" / run_id).exists(), what
    assert store.get_run(kept).name == "already here"


# ---- the recorded runs shipped in assets/recorded -----------------------------------------------


def test_the_shipped_recorded_runs_open_on_a_fresh_store_and_replay(other_store):
    other_store("fresh")
    recorded = transfer.recorded_runs()
    assert recorded and all(r.runs >= 6 for r in recorded)  # two runs at least, 3 seeds each
    for item in recorded:
        result = transfer.open_recorded(item)
        assert len(result.added) == item.runs and not result.skipped
        records = [store.get_run(i) for i in result.added]
        assert all(r.status == "finished" and r.summary["final"]["test_acc"] > 0.1 for r in records)
        assert all(r.name.startswith(item.title) for r in records)
        # real data, not the embedded shapes, and the seeds the verdict needs
        assert all(not r.train_config().data.dataset.startswith("shapes") for r in records)
        groups = compare.seed_groups({r.id: r.name for r in records})
        assert groups and all(len(ids) == 3 for ids in groups.values())
        played = replay.Replay.of(result.added[0], speed=20, started=0.0)
        recorded_steps = store.all_metrics(result.added[0]).query("kind == 'step'")
        halfway = (recorded_steps["wall"].iloc[0] + played.recorded_s) / 2 / 20  # after loading the data
        assert 0 < len(played.visible(halfway)[0]) < len(recorded_steps)
        assert len(played.visible(played.duration_s)[0]) == len(recorded_steps)
    assert transfer.open_recorded(recorded[0]).skipped  # opened twice: nothing added the second time


def test_an_unreadable_recorded_file_is_left_out(tmp_path):
    (tmp_path / "flip.auglab.zip").write_bytes(b"not a zip")
    good = transfer.export_runs([make_run("lenet")])
    (tmp_path / "lenet_vgg.auglab.zip").write_bytes(good)
    assert [(r.key, r.title, r.runs) for r in transfer.recorded_runs(tmp_path)] == [("lenet_vgg", "LeNet vs VGG", 1)]
