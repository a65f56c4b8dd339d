"""The Compare page through AppTest, on runs written straight into the store (no training).

Launches from the page (run again, seed repeats) are checked with the only training slot held by
a "running" run of this test process, so the new runs stay queued and no trainer is started.
"""
import io
import json

import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from test_compare import make_run
from test_verdict import FLIP, seeded

from conftest import ROOT, plotly_array, run
from core.runs import compare, runner, store, verdict
from core.training.config import TrainConfig


def open_page(runs: list[str] | None = None, link: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.switch_page("pages/compare.py")
    if runs is not None:
        at.session_state["compare_runs"] = runs
    if link is not None:
        at.query_params["runs"] = link
    return run(at)


def chart(at: AppTest) -> dict:
    (element,) = at.get("plotly_chart")
    return json.loads(element.proto.spec)


def array(value) -> list:
    return plotly_array(value).tolist()


def trace_names(at: AppTest) -> list[str]:
    return [trace["name"] for trace in chart(at)["data"]]


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def hold_the_only_slot() -> str:
    runner.set_max_concurrent(1)
    return store.create_run(TrainConfig(), "holds the slot", status="running")


@pytest.fixture
def two_runs():
    baseline = make_run("baseline", test_acc=(0.5, 0.7, 0.8))
    mixup = make_run("mixup", {"tricks": {"mixup_alpha": 0.2}}, test_acc=(0.4, 0.75, 0.85))
    return baseline, mixup


# ---- guards --------------------------------------------------------------------------------------


def test_an_empty_store_says_where_runs_come_from():
    at = open_page()
    assert "No runs yet" in texts(at.info)
    assert not at.get("plotly_chart")


def test_an_emptied_selection_shows_a_guard_and_no_chart(two_runs):
    at = open_page()  # opens on the latest runs
    at.multiselect(key="compare_pick").set_value([])
    run(at)
    assert "Pick one or more runs" in texts(at.info)
    assert not at.get("plotly_chart") and not at.dataframe
    make_run("newer", test_acc=(0.5, 0.6))
    assert "Pick one or more runs" in texts(run(at).info)  # emptied by the user: it stays empty


def test_a_deleted_run_in_the_link_is_named_and_ignored(two_runs):
    baseline, mixup = two_runs
    at = open_page(link=f"{baseline},20200101-000000-dead00,{mixup}")
    assert "20200101-000000-dead00" in texts(at.warning)
    assert at.multiselect(key="compare_pick").value == [baseline, mixup]
    assert trace_names(at) == ["baseline", "mixup"]
    assert at.query_params["runs"] == f"{baseline},{mixup}"  # the address bar drops it too
    assert "20200101-000000-dead00" not in texts(run(at).warning)  # warned once, not on every rerun


# ---- overlay and table ---------------------------------------------------------------------------


def test_two_runs_are_overlaid_with_a_table_of_what_differs(two_runs):
    baseline, mixup = two_runs
    at = open_page(runs=[baseline, mixup])
    spec = chart(at)
    assert [t["name"] for t in spec["data"]] == ["baseline", "mixup"]
    assert array(spec["data"][1]["y"]) == pytest.approx([0.4, 0.75, 0.85])
    assert "%{y" in spec["data"][0]["hovertemplate"]  # hovering shows the exact value
    table = at.dataframe[0].value
    assert [c for c in table.columns if "." in c] == ["tricks.mixup_alpha"]
    assert table["tricks.mixup_alpha"].tolist() == ["0.0", "0.2"]
    assert table["best test acc"].tolist() == pytest.approx([0.8, 0.85])
    # the baseline defaults to the first run; deltas are shown in percentage points
    assert table["Δ final vs baseline"].tolist() == pytest.approx([0.0, 5.0])
    assert "`tricks.mixup_alpha`" in texts(at.markdown)
    # a run with no evaluation yet shows a dash where its accuracies would be, not "None"
    assert at.dataframe[0].proto.placeholder == "—"


def test_baseline_metric_axis_and_smoothing_change_what_is_drawn(two_runs):
    baseline, mixup = two_runs
    at = open_page(runs=[baseline, mixup])
    at.selectbox(key="compare_baseline").set_value(mixup)
    at.selectbox(key="compare_metric").set_value("lr")
    at.radio(key="compare_x").set_value("step")
    run(at)
    spec = chart(at)
    assert array(spec["data"][0]["x"]) == list(range(1, 13))  # 3 epochs of 4 steps
    assert array(spec["data"][0]["y"]) == pytest.approx([0.1 / s for s in range(1, 13)])
    assert at.dataframe[0].value["Δ final vs baseline"].tolist() == pytest.approx([-5.0, 0.0])
    at.slider(key="compare_smoothing").set_value(0.5)
    at.selectbox(key="compare_metric").set_value("test_acc")
    at.radio(key="compare_x").set_value("epoch")
    run(at)
    first = chart(at)["data"][0]
    assert array(first["y"]) == pytest.approx(compare.ema([0.5, 0.7, 0.8], 0.5).tolist())
    assert array(first["customdata"]) == pytest.approx([0.5, 0.7, 0.8])  # the raw values, for the hover


def test_a_seed_group_is_drawn_as_a_mean_with_a_band():
    ids = [make_run(compare.seed_run_name("cutmix", s), test_acc=(0.4 + 0.1 * s, 0.8)) for s in range(3)]
    other = make_run("baseline", test_acc=(0.5, 0.7))
    at = open_page(runs=[*ids, other])
    assert trace_names(at) == ["cutmix (mean of 3, min–max) band", "cutmix (mean of 3, min–max)", "baseline"]
    assert array(chart(at)["data"][1]["y"]) == pytest.approx([0.5, 0.8])
    groups = at.dataframe[1].value
    assert groups["runs"].tolist() == [3] and groups["mean"].tolist() == pytest.approx([0.8])
    at.toggle(key="compare_grouped").set_value(False)
    run(at)
    assert trace_names(at) == [compare.seed_run_name("cutmix", s) for s in range(3)] + ["baseline"]


# ---- opening on the newest runs ------------------------------------------------------------------


def test_with_nothing_picked_the_page_opens_on_the_newest_group():
    make_run("an older run", test_acc=(0.5, 0.6))
    preset = [make_run("Flip augmentation vs none · no augmentation", test_acc=(0.5, 0.80)),
              make_run("Flip augmentation vs none · horizontal flip", FLIP, test_acc=(0.5, 0.85))]
    at = open_page()
    assert at.multiselect(key="compare_pick").value == preset  # in launch order: the baseline first
    assert "Opened on the newest runs, “Flip augmentation vs none” (2 runs)" in texts(at.info)
    assert trace_names(at) == [store.get_run(i).name for i in preset]
    assert at.query_params["runs"] == ",".join(preset)
    # while the user has not picked, it follows the newest group: here, the same preset over seeds
    again = seeded("Flip augmentation vs none · horizontal flip", [0.84, 0.86], FLIP, first_seed=1)
    run(at)
    assert at.multiselect(key="compare_pick").value == [*preset, *again]


def test_without_a_group_the_page_opens_on_the_latest_finished_or_running_runs():
    ids = [make_run(f"run {i}", test_acc=(0.5, 0.6)) for i in range(5)]
    failed = make_run("broken", test_acc=(0.5,), status="failed")
    at = open_page()
    assert at.multiselect(key="compare_pick").value == ids[1:]  # the 4 latest that finished
    assert failed not in at.multiselect(key="compare_pick").value
    assert "Opened on the latest runs (4)" in texts(at.info)
    at.multiselect(key="compare_pick").set_value(ids[:2])  # a pick of the user's own: no longer followed
    run(at)
    assert not [i for i in at.info if "Opened on" in i.value]
    make_run("run 5", test_acc=(0.5, 0.6))
    assert run(at).multiselect(key="compare_pick").value == ids[:2]


# ---- the verdict ---------------------------------------------------------------------------------


def test_the_verdict_on_three_seeds_each_names_its_method():
    plain = seeded("Flip augmentation vs none · no augmentation", [0.80, 0.81, 0.79])
    flip = seeded("Flip augmentation vs none · horizontal flip", [0.85, 0.84, 0.86], FLIP)
    lr = seeded("Flip augmentation vs none · lr 0.1", [0.80, 0.82, 0.78], {"optim": {"lr": 0.1}})
    at = open_page(runs=[*plain, *flip, *lr])
    assert "Verdict" in [h.value for h in at.subheader]
    beyond = "Horizontal flip: +5.0 points (95% interval +2.7 to +7.3, 3 seeds each): beyond seed noise"
    assert beyond in texts(at.success)
    assert "Lr 0.1: +0.0 points (95% interval " in texts(at.info) and "within seed noise" in texts(at.info)
    captions = texts(at.caption)
    assert "Welch's t-interval over seeds, 95%" in captions and "seed noise" in captions
    assert "Against “Flip augmentation vs none · no augmentation” (3 finished seed(s))" in captions
    assert not [b for b in at.button if b.key == "compare_verdict_repeat"]  # nothing to repeat


def test_configs_two_settings_apart_get_no_verdict():
    plain = seeded("plain", [0.80, 0.81])
    both = seeded("flip and lr", [0.85, 0.84], {**FLIP, "optim": {"lr": 0.1}})
    at = open_page(runs=[*plain, *both])
    assert "No two selected configs differ in exactly one setting" in texts(at.info)
    assert not at.success and not at.warning


def test_one_seed_says_it_cannot_tell_and_repeats_over_seeds(two_runs):
    baseline, mixup = two_runs
    hold_the_only_slot()
    at = open_page(runs=[baseline, mixup])
    assert ("Mixup: +5.0 points with one seed a side: one seed cannot tell a difference from seed noise; "
            "repeat over seeds.") in texts(at.warning)
    plan = "Queues “baseline” seeds 1..2; “mixup” seeds 1..2, so that each side has 3 seeds."
    assert plan in texts(at.caption)
    button = at.button(key="compare_verdict_repeat")
    assert button.label == verdict.TEXT["repeat_button"] and not button.disabled
    button.click()
    run(at)
    runs = store.list_runs().set_index("id")
    new = [i for i in at.multiselect(key="compare_pick").value if i not in (baseline, mixup)]
    assert sorted(runs.loc[new, "name"]) == [f"{name} · seed {s}" for name in ("baseline", "mixup") for s in (1, 2)]
    assert set(runs.loc[new, "status"]) == {"queued"}
    assert store.get_run(new[-1]).config["tricks"]["mixup_alpha"] == 0.2  # each side keeps its own config
    assert "Queued 4 run(s) for the verdict" in texts(at.success)
    # they count once they finish; until then nothing more to launch
    assert at.button(key="compare_verdict_repeat").disabled
    assert "already queued or training" in texts(at.caption)
    for run_id in new:
        runner.stop(run_id)


# ---- rename, delete ------------------------------------------------------------------------------


def test_rename_a_run(two_runs):
    baseline, mixup = two_runs
    at = open_page(runs=[baseline, mixup])
    at.selectbox(key="compare_target").set_value(mixup)
    run(at)
    at.text_input(key=f"compare_name_{mixup}").set_value("mixup 0.2")
    at.button(key="compare_rename").click()
    run(at)
    assert store.get_run(mixup).name == "mixup 0.2"
    assert "Renamed" in texts(at.success)
    assert trace_names(at) == ["baseline", "mixup 0.2"]


def test_delete_needs_a_confirmation(two_runs):
    baseline, mixup = two_runs
    at = open_page(runs=[baseline, mixup])
    at.selectbox(key="compare_target").set_value(mixup)
    run(at)
    assert at.button(key="compare_delete").disabled  # until the box is ticked
    at.checkbox(key=f"compare_confirm_{mixup}").check()
    run(at)
    at.button(key="compare_delete").click()
    run(at)
    with pytest.raises(store.UnknownRunError):
        store.get_run(mixup)
    assert "Deleted" in texts(at.success)
    assert at.multiselect(key="compare_pick").value == [baseline]
    assert trace_names(at) == ["baseline"]


def test_a_running_run_offers_stop_instead_of_delete(two_runs):
    baseline, _ = two_runs
    live = hold_the_only_slot()
    at = open_page(runs=[baseline, live])
    at.selectbox(key="compare_target").set_value(live)
    run(at)
    assert not [b for b in at.button if b.key == "compare_delete"]
    at.button(key="compare_stop").click()
    run(at)
    assert store.get_run(live).stop_requested


# ---- launching from the page ---------------------------------------------------------------------


def test_run_again_with_one_change_queues_a_run_with_that_override(two_runs):
    baseline, mixup = two_runs
    hold_the_only_slot()
    at = open_page(runs=[baseline, mixup])
    at.selectbox(key="compare_target").set_value(mixup)
    at.selectbox(key="compare_change_key").set_value("tricks.mixup_alpha")
    run(at)
    value = at.text_input(key=f"compare_change_value_{mixup}_tricks.mixup_alpha")
    assert value.value == "0.2" and at.button(key="compare_launch_change").disabled  # no change yet
    value.set_value("-1")
    run(at)
    assert "tricks.mixup_alpha must be in [0, 10]" in texts(at.error)
    assert at.button(key="compare_launch_change").disabled
    at.text_input(key=f"compare_change_value_{mixup}_tricks.mixup_alpha").set_value("0.4")
    run(at)
    assert not at.error
    at.button(key="compare_launch_change").click()
    run(at)
    new_id = next(i for i in at.multiselect(key="compare_pick").value if i not in (baseline, mixup))
    new = store.get_run(new_id)
    assert new.status in ("queued", "running") and new.name == "mixup · tricks.mixup_alpha=0.4"
    assert compare.differing_keys([store.get_run(mixup).config, new.config]) == ["tricks.mixup_alpha"]
    assert new.config["tricks"]["mixup_alpha"] == 0.4
    assert "Launched" in texts(at.success)
    runner.stop(new_id)
    assert store.get_run(new_id).status == "stopped"


def test_repeat_over_seeds_queues_a_group_of_runs(two_runs):
    baseline, _ = two_runs
    hold_the_only_slot()
    at = open_page(runs=[baseline])
    at.number_input(key=f"compare_seed_n_{baseline}").set_value(4)
    at.number_input(key=f"compare_seed_first_{baseline}").set_value(10)
    at.text_input(key=f"compare_seed_prefix_{baseline}").set_value("plain")
    run(at)
    at.button(key="compare_launch_seeds").click()
    run(at)
    runs = store.list_runs()
    group = runs[runs["name"].str.startswith("plain · seed")]
    assert len(group) == 4 and set(group["status"]) == {"queued"}
    assert sorted(store.get_run(i).config["run"]["seed"] for i in group["id"]) == [10, 11, 12, 13]
    assert set(group["id"]) <= set(at.multiselect(key="compare_pick").value)
    assert "Queued 4 runs" in texts(at.success)
    for run_id in group["id"]:
        runner.stop(run_id)
    assert set(store.list_runs().set_index("id").loc[list(group["id"]), "status"]) == {"stopped"}


# ---- exports -------------------------------------------------------------------------------------


def test_the_csv_export_holds_the_plotted_curves(two_runs, monkeypatch):
    baseline, mixup = two_runs
    saved: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        saved[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    at = open_page(runs=[baseline, mixup])
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Curves as CSV", "Chart as HTML", "Runs as a file"]
    # the chart's own camera button saves the PNG, under the same name as the exports
    (element,) = at.get("plotly_chart")
    assert json.loads(element.proto.config)["toImageButtonOptions"]["filename"] == "auglab_test_acc_by_epoch"
    table = pd.read_csv(io.BytesIO(saved["auglab_test_acc_by_epoch.csv"]))
    assert table.columns.tolist() == ["run_id", "run", "epoch", "test_acc", "test_acc_smoothed"]
    assert table.groupby("run")["test_acc"].apply(list).to_dict() == {
        "baseline": pytest.approx([0.5, 0.7, 0.8]),
        "mixup": pytest.approx([0.4, 0.75, 0.85]),
    }


def test_the_robustness_probe_draws_accuracy_against_corruption_strength_per_run():
    from core import cli
    from core.runs import robustness

    tiny = {"data": {"subset": 0.05, "image_size": 16}, "model": {"options": {"width": 0.25}},
            "run": {"epochs": 1, "batch_size": 32, "threads": 1, "amp": "off"}}
    ids = [cli.run(tiny, "plain"), cli.run({**tiny, "augment": {"train": [{"op": "color_jitter", "params": {}}]}},
                                           "jitter")]
    at = open_page(ids)
    assert "Press Probe to measure the 2 run(s) with a model." in texts(at.caption)
    at.selectbox(key="compare_probe_kind").set_value("brightness")
    run(at)
    at.button(key="compare_probe").click()
    run(at)
    (probe,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Brightness: test accuracy" in c.proto.spec]
    strengths = list(robustness.CORRUPTIONS["brightness"].strengths)
    assert [t["name"] for t in probe["data"]] == ["plain", "jitter"]
    expected = robustness.probe(ids, "brightness")
    for trace, run_id in zip(probe["data"], ids):
        assert array(trace["x"]) == strengths
        assert array(trace["y"]) == pytest.approx(list(expected[expected["run_id"] == run_id]["accuracy"]))
    table = at.dataframe[-1].value
    assert list(table.columns) == ["jitter", "plain"] and len(table) == len(strengths)


def test_runs_without_a_model_cannot_be_probed(two_runs):
    at = open_page(list(two_runs))
    assert "Runs with a trained model (finished, or stopped with their weights) can be probed." in texts(at.caption)
    assert "compare_probe" not in [b.key for b in at.button]


def test_runs_that_make_a_sweep_are_plotted_against_the_setting_with_the_best_marked():
    ids = []
    for eps, accs in ((0.0, (0.60, 0.61, 0.62)), (0.1, (0.70, 0.71, 0.69)), (0.2, (0.66, 0.67, 0.65))):
        ids += seeded(f"sweep ε {eps}", accs, {"tricks": {"label_smoothing": eps}})
    at = open_page(ids)
    assert "Sweep: Label smoothing ε" in [h.value for h in at.subheader]
    (spec,) = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if '"final test accuracy"' in c.proto.spec]
    band, mean, best = spec["data"]
    assert array(mean["x"]) == [0.0, 0.1, 0.2] and array(mean["y"]) == pytest.approx([0.61, 0.70, 0.66])
    assert array(best["x"]) == [0.1] and best["marker"]["symbol"] == "star"
    assert "Best: **Label smoothing ε = 0.1**, 70.0% mean final test accuracy over 3 seed(s)." in texts(at.markdown)
    assert any("beyond seed noise" in s.value for s in at.success)


def test_a_sweep_of_one_pipeline_parameter_is_launched_from_a_run():
    hold_the_only_slot()
    base = make_run("base", {"augment": {"train": [{"op": "hflip", "params": {}}, {"op": "cutout", "params": {"size": 0.5}}]}})
    at = open_page([base])
    setting = "augment.train[1].size"
    at.selectbox(key=f"compare_sweep_setting_{base}").set_value(setting)
    run(at)
    at.text_input(key=f"compare_sweep_values_{base}_{setting}").set_value("0.25, 0.375, 0.5")
    at.number_input(key=f"compare_sweep_seeds_{base}").set_value(2)
    run(at)
    at.button(key="compare_launch_sweep").click()
    run(at)
    assert "Queued a sweep of 6 runs: 3 values × 2 seeds." in texts(at.success)
    queued = store.list_runs()
    queued = queued[queued["status"] == "queued"]
    sizes = sorted(store.get_run(i).config["augment"]["train"][1]["params"]["size"] for i in queued["id"])
    assert sizes == [0.25, 0.25, 0.375, 0.375, 0.5, 0.5]
    assert set(queued["id"]) <= set(at.session_state["compare_pick"])  # picked to watch them
