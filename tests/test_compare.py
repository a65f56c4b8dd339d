"""core.runs.compare on runs written straight into the store with made-up metrics (no training)."""
import io
import math
import re

import pandas as pd
import pytest

from core import figures
from core.runs import compare, runner, store
from core.training.config import ConfigError, TrainConfig
from core.training.events import Eval, Step


def make_run(name: str, overrides: dict | None = None, test_acc=(0.5, 0.7), steps_per_epoch: int = 4,
             status: str = "finished", wall_per_step: float = 0.5) -> str:
    """A run with `test_acc` evaluations recorded through the store's own sink, then marked `status`.

    Step rows get loss 1/step, lr 0.1/step and a wall time of wall_per_step per step; each
    evaluation has train_loss 1/epoch and test_loss 2/epoch.
    """
    overrides = dict(overrides or {})
    cfg = TrainConfig.from_dict({"run": {"epochs": max(1, len(test_acc))}, **overrides})
    run_id = store.create_run(cfg, name, status="running")
    sink = store.StoreSink(run_id)
    step = 0
    for epoch, acc in enumerate(test_acc, 1):
        for k in range(steps_per_epoch):
            step += 1
            sink(Step(step, epoch - 1 + (k + 1) / steps_per_epoch, 1.0 / step, 0.5, 0.1 / step, 100.0,
                      step * wall_per_step))
        sink(Eval(epoch, step, 1.0 / epoch, acc - 0.1, 2.0 / epoch, acc, step * wall_per_step))
    sink.close()
    if status != "running":
        store.set_status(run_id, status)
    return run_id


# ---- smoothing -----------------------------------------------------------------------------------


def test_ema_matches_a_hand_computed_debiased_average():
    # point t = sum(w**age * v) / sum(w**age) with w = 0.5:
    #   t0 = 1;  t1 = (0.5*1 + 2) / 1.5 = 5/3;  t2 = (0.25*1 + 0.5*2 + 4) / 1.75 = 3
    assert compare.ema([1.0, 2.0, 4.0], 0.5) == pytest.approx([1.0, 5 / 3, 3.0])
    # w = 0.9 on a step from 0 to 10: t1 = (0.9*0 + 10) / 1.9
    assert compare.ema([0.0, 10.0], 0.9)[1] == pytest.approx(10 / 1.9)


def test_ema_skips_missing_points_and_zero_smoothing_is_the_identity():
    smoothed = compare.ema([1.0, 2.0, math.nan, 4.0], 0.5)
    assert math.isnan(smoothed[2])
    # the NaN is skipped, so the last point sees 1 and 2 as one and two points back
    assert smoothed[3] == pytest.approx((0.25 * 1 + 0.5 * 2 + 4) / 1.75)
    values = [0.3, 0.1, 0.7]
    assert compare.ema(values, 0.0).tolist() == values
    with pytest.raises(ValueError, match="smoothing"):
        compare.ema(values, 1.0)


# ---- curves --------------------------------------------------------------------------------------


def test_curves_overlay_runs_and_smooth_each_run_on_its_own():
    a = make_run("a", test_acc=(0.2, 0.6, 0.8))
    b = make_run("b", test_acc=(0.9, 0.1))
    queued = store.create_run(TrainConfig(), "not started")
    frame = compare.curves([a, b, queued], "test_acc", x="epoch", smoothing=0.5)
    assert list(frame["run"].unique()) == ["a", "b"]  # a run with no points yet adds no rows
    rows_b = frame[frame["run_id"] == b]
    assert rows_b["x"].tolist() == [1.0, 2.0]
    assert rows_b["value"].tolist() == pytest.approx([0.9, 0.1])
    # b's smoothing starts afresh at its own first point instead of carrying a's average over
    assert rows_b["smoothed"].tolist() == pytest.approx([0.9, (0.5 * 0.9 + 0.1) / 1.5])


def test_curves_read_step_rows_for_step_metrics_and_any_x_axis():
    a = make_run("a", test_acc=(0.5, 0.6), steps_per_epoch=4, wall_per_step=0.25)
    lr = compare.curves([a], "lr", x="step")
    assert lr["x"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert lr["value"].tolist() == pytest.approx([0.1 / s for s in range(1, 9)])
    by_epoch = compare.curves([a], "step_loss", x="epoch")
    assert by_epoch["x"].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    by_wall = compare.curves([a], "test_loss", x="wall")
    assert by_wall["x"].tolist() == pytest.approx([1.0, 2.0]) and by_wall["value"].tolist() == pytest.approx([2.0, 1.0])
    with pytest.raises(ValueError, match="metric"):
        compare.curves([a], "accuracy")


def test_runs_sharing_a_name_get_distinct_labels():
    a, b, c = make_run("same"), make_run("same"), make_run("other")
    labels = compare.run_labels({r: store.get_run(r).name for r in (a, b, c)})
    assert labels[c] == "other"
    assert labels[a] != labels[b] and labels[a].startswith("same (") and a[-6:] in labels[a]


def test_thin_keeps_the_last_point_and_at_most_about_max_points():
    a = make_run("a", test_acc=(0.5,) * 10, steps_per_epoch=50)
    frame = compare.curves([a], "step_loss", x="step")
    thinned = compare.thin(frame, 100)
    assert len(frame) == 500 and 90 <= len(thinned) <= 101
    assert thinned["x"].iloc[-1] == 500 and thinned["x"].iloc[0] == 1


# ---- seed groups ---------------------------------------------------------------------------------


def test_seed_names_round_trip_and_form_groups():
    assert compare.seed_group(compare.seed_run_name("mixup 0.2", 7)) == "mixup 0.2"
    assert compare.seed_group("mixup · seed x") is None and compare.seed_group("baseline") is None
    names = {"1": "m · seed 0", "2": "m · seed 1", "3": "solo · seed 0", "4": "plain"}
    assert compare.seed_groups(names) == {"m": ["1", "2"]}
    assert compare.seed_groups(names, min_size=1) == {"m": ["1", "2"], "solo": ["3"]}


def test_aggregate_gives_the_mean_and_a_min_max_or_std_band_per_epoch():
    ids = [
        make_run(compare.seed_run_name("g", 0), test_acc=(0.2, 0.5, 0.9)),
        make_run(compare.seed_run_name("g", 1), test_acc=(0.4, 0.7, 0.6)),
        make_run(compare.seed_run_name("g", 2), test_acc=(0.6, 0.6)),  # still at epoch 2
    ]
    frame = compare.curves(ids, "test_acc", x="epoch")
    minmax = compare.aggregate(frame, "minmax")
    assert minmax["x"].tolist() == [1.0, 2.0, 3.0]
    assert minmax["n"].tolist() == [3, 3, 2]
    assert minmax["mean"].tolist() == pytest.approx([0.4, 0.6, 0.75])
    assert minmax["lo"].tolist() == pytest.approx([0.2, 0.5, 0.6])
    assert minmax["hi"].tolist() == pytest.approx([0.6, 0.7, 0.9])
    std = compare.aggregate(frame, "std")
    # epoch 1: values 0.2, 0.4, 0.6 -> sample std 0.2; epoch 3: 0.9, 0.6 -> sqrt(0.045)
    assert (std["hi"] - std["mean"]).tolist() == pytest.approx([0.2, 0.1, math.sqrt(0.045)])
    assert (std["mean"] - std["lo"]).tolist() == pytest.approx([0.2, 0.1, math.sqrt(0.045)])
    single = compare.aggregate(frame[frame["run_id"] == ids[0]], "std")
    assert (single["hi"] == single["mean"]).all()  # one run: no spread rather than NaN
    with pytest.raises(ValueError, match="band"):
        compare.aggregate(frame, "iqr")


def test_group_summary_reports_the_spread_of_final_accuracy():
    ids = [make_run(compare.seed_run_name("g", s), test_acc=(0.3, acc)) for s, acc in enumerate((0.7, 0.8, 0.9))]
    summary = compare.group_summary({"g": ids}).iloc[0]
    assert summary["runs"] == 3 and summary["evaluated"] == 3
    assert summary["mean_final_test_acc"] == pytest.approx(0.8)
    assert summary["std_final_test_acc"] == pytest.approx(0.1)
    assert (summary["min_final_test_acc"], summary["max_final_test_acc"]) == pytest.approx((0.7, 0.9))


def _fill_the_only_slot() -> str:
    """A 'running' run owned by this (live) process: with one slot, launched runs stay queued."""
    runner.set_max_concurrent(1)
    return store.create_run(TrainConfig(), "occupies the slot", status="running")


def test_launch_seeds_queues_one_run_per_seed_in_a_named_group():
    _fill_the_only_slot()
    base = TrainConfig.from_dict({"tricks": {"mixup_alpha": 0.2}, "run": {"epochs": 1, "seed": 0}})
    ids = compare.launch_seeds(base, 3, 5, "mixup")
    records = [store.get_run(i) for i in ids]
    assert [r.status for r in records] == ["queued"] * 3
    assert [r.config["run"]["seed"] for r in records] == [5, 6, 7]
    assert [r.name for r in records] == ["mixup · seed 5", "mixup · seed 6", "mixup · seed 7"]
    assert all(r.config["tricks"]["mixup_alpha"] == 0.2 for r in records)
    assert compare.seed_groups({r.id: r.name for r in records}) == {"mixup": ids}


def test_launch_seeds_validates_before_queueing_anything():
    _fill_the_only_slot()
    before = len(store.list_runs())
    with pytest.raises(ConfigError, match="seeds"):
        compare.launch_seeds(TrainConfig(), compare.MAX_SEEDS + 1, 0, "too many")
    with pytest.raises(ConfigError, match="name"):
        compare.launch_seeds(TrainConfig(), 2, 0, "  ")
    assert len(store.list_runs()) == before


def test_the_newest_group_is_a_preset_or_a_seed_group_in_launch_order():
    assert compare.newest_group(store.list_runs()) == compare.Newest([], None)
    make_run("Mixup vs baseline · baseline")
    preset = [make_run("Flip vs none · no augmentation"), make_run("Flip vs none · flip"),
              make_run("Flip vs none · flip · seed 1", status="failed")]
    assert compare.newest_group(store.list_runs()) == compare.Newest(preset, "Flip vs none")
    seeds = [make_run(compare.seed_run_name("cutmix", s)) for s in range(3)]
    assert compare.newest_group(store.list_runs()) == compare.Newest(seeds, "cutmix")


def test_without_a_newest_group_the_latest_finished_or_running_runs():
    _fill_the_only_slot()
    old = [make_run(f"run {i}") for i in range(3)]
    make_run("failed", status="failed")
    live = make_run("training", status="running")
    queued = store.create_run(TrainConfig(), "queued")
    newest = compare.newest_group(store.list_runs())
    assert newest.group is None and newest.run_ids == [*old, live][-compare.LATEST_RUNS:]
    assert queued not in newest.run_ids
    for run_id in store.list_runs()["id"]:
        runner.stop(run_id)


def test_the_newest_group_is_capped():
    ids = [make_run("fastcnn on shapes", test_acc=(0.5,), steps_per_epoch=1)
           for _ in range(compare.MAX_NEWEST_GROUP + 2)]
    assert compare.newest_group(store.list_runs()).run_ids == ids[-compare.MAX_NEWEST_GROUP:]


# ---- the table of differences ----------------------------------------------------------------


def test_compare_table_shows_only_differing_keys_and_deltas_to_the_baseline():
    base = make_run("baseline", test_acc=(0.5, 0.7, 0.6))
    mix = make_run("mixup", {"tricks": {"mixup_alpha": 0.2}}, test_acc=(0.4, 0.8, 0.75))
    lr = make_run("fast", {"optim": {"lr": 0.1}}, test_acc=(0.55, 0.5, 0.55))
    table = compare.compare_table([base, mix, lr], baseline=base)
    assert table.attrs["differing"] == ["optim.lr", "tricks.mixup_alpha"]
    assert [c for c in table.columns if "." in c] == ["optim.lr", "tricks.mixup_alpha"]
    assert table.loc[mix, "tricks.mixup_alpha"] == "0.2" and table.loc[base, "tricks.mixup_alpha"] == "0.0"
    assert table.loc[lr, "optim.lr"] == "0.1"
    assert table["final test acc"].tolist() == pytest.approx([0.6, 0.75, 0.55])
    assert table["best test acc"].tolist() == pytest.approx([0.7, 0.8, 0.55])
    assert table["Δ final vs baseline"].tolist() == pytest.approx([0.0, 0.15, -0.05])
    assert table["Δ best vs baseline"].tolist() == pytest.approx([0.0, 0.1, -0.15])
    assert table["run"].tolist() == ["baseline", "mixup", "fast"]
    with pytest.raises(ValueError, match="baseline"):
        compare.compare_table([mix, lr], baseline=base)


def test_compare_table_of_a_run_without_evaluations_has_nan_accuracies():
    queued = store.create_run(TrainConfig(), "waiting")
    table = compare.compare_table([queued])
    assert table.loc[queued, "status"] == "queued"
    assert math.isnan(table.loc[queued, "final test acc"])
    assert table.attrs["differing"] == [] and [c for c in table.columns if "." in c] == []


def test_format_value_names_the_ops_of_a_pipeline():
    pipeline = [{"op": "hflip", "params": {}, "enabled": True}, {"op": "rotate", "params": {}, "enabled": False}]
    assert compare.format_value(pipeline) == "hflip → rotate (off)"
    assert compare.format_value(None) == "null" and compare.format_value("sgd") == "sgd"
    assert compare.format_value([0.5, 0.75]) == "[0.5, 0.75]"


# ---- run again with one change ----------------------------------------------------------------


def test_with_change_parses_the_value_and_validates_the_config():
    change = compare.with_change(TrainConfig(), "tricks.mixup_alpha", "0.4")
    assert change.config.tricks.mixup_alpha == 0.4 and change.old == 0.0 and change.new == 0.4
    assert change.text == "tricks.mixup_alpha: 0.0 → 0.4"
    assert compare.with_change(TrainConfig(), "optim.name", "adam").config.optim.name == "adam"
    with pytest.raises(ConfigError, match=re.escape("optim.lr must be in (0, 1_000_000]")):
        compare.with_change(TrainConfig(), "optim.lr", "-1")
    with pytest.raises(ConfigError, match="tricks.mixup_alpah"):
        compare.with_change(TrainConfig(), "tricks.mixup_alpah", "0.2")
    with pytest.raises(ConfigError, match="already"):
        compare.with_change(TrainConfig(), "run.epochs", str(TrainConfig().run.epochs))


def test_changing_the_model_drops_the_old_models_options():
    cfg = TrainConfig.from_dict({"model": {"name": "mlp", "options": {"hidden": [32]}}})
    assert compare.with_change(cfg, "model.name", "lenet").config.model.options == {}


def test_run_again_queues_a_copy_with_one_change():
    _fill_the_only_slot()
    source = make_run("baseline", {"run": {"epochs": 2, "seed": 3}}, test_acc=(0.5, 0.6))
    new_id = compare.run_again(source, "tricks.label_smoothing", "0.1")
    new = store.get_run(new_id)
    assert new.status == "queued" and new.name == "baseline · tricks.label_smoothing=0.1"
    assert compare.differing_keys([store.get_run(source).config, new.config]) == ["tricks.label_smoothing"]
    assert compare.run_again(source, "optim.lr", "0.2", name="faster") and store.list_runs()["name"].iloc[0] == "faster"


# ---- the chart and the exports ---------------------------------------------------------------


def test_chart_series_turns_a_seed_group_into_a_mean_with_a_band():
    solo = make_run("solo", test_acc=(0.5, 0.6))
    group = [make_run(compare.seed_run_name("g", s), test_acc=(0.3 + 0.1 * s, 0.6)) for s in range(2)]
    frame = compare.curves([solo, *group], "test_acc", smoothing=0.3)
    series = compare.chart_series(frame, compare.seed_groups({g: store.get_run(g).name for g in group}), "minmax")
    assert [s.name for s in series] == ["solo", "g (mean of 2, min–max)"]
    assert series[0].raw.tolist() == pytest.approx([0.5, 0.6])  # smoothed: the raw values go to the hover
    # the band spans the smoothed curves: seed 0 is (0.3*0.3 + 0.6) / 1.3 at epoch 2, seed 1 (0.3*0.4 + 0.6) / 1.3
    assert series[1].lo.tolist() == pytest.approx([0.3, 0.69 / 1.3]) and series[1].runs == 2
    assert series[1].hi.tolist() == pytest.approx([0.4, 0.72 / 1.3])
    fig = figures.comparison(series)
    assert [t.name for t in fig.data] == ["solo", "g (mean of 2, min–max) band", "g (mean of 2, min–max)"]
    assert fig.data[0].customdata.tolist() == pytest.approx([0.5, 0.6])


def test_chart_series_gives_each_line_the_next_palette_colour_and_the_html_export_holds_them():
    a = make_run("a", test_acc=(0.2, 0.9))
    group = [make_run(compare.seed_run_name("g", s), test_acc=(0.3 + 0.2 * s, 0.5)) for s in range(2)]
    frame = compare.curves([a, *group], "test_acc")
    series = compare.chart_series(frame, {"g": group}, "minmax")
    assert [s.color for s in series] == list(figures.PALETTE[:2])
    page = figures.to_html(figures.comparison(series, title="Test accuracy")).decode()
    assert all(s.color in page for s in series) and "Test accuracy" in page


def test_curves_csv_holds_every_point_with_its_smoothed_value():
    a = make_run("a", test_acc=(0.2, 0.6))
    frame = compare.curves([a], "test_acc", smoothing=0.5)
    table = pd.read_csv(io.BytesIO(compare.curves_csv(frame, "test_acc", "epoch")))
    assert table.columns.tolist() == ["run_id", "run", "epoch", "test_acc", "test_acc_smoothed"]
    assert table["test_acc"].tolist() == pytest.approx([0.2, 0.6])
    assert table["test_acc_smoothed"].tolist() == pytest.approx([0.2, (0.5 * 0.2 + 0.6) / 1.5])
    assert (table["run_id"] == a).all()


def test_load_runs_reports_unknown_ids():
    a = make_run("a")
    found, missing = compare.load_runs([a, "no-such-run", a])
    assert list(found) == [a] and missing == ["no-such-run"]
