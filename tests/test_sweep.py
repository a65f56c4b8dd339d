"""Strength sweeps (core.runs.sweep): settings, launching, and reading a sweep from its runs."""
import math

import pytest
from conftest import occupy_the_only_slot
from scipy import stats
from test_verdict import seeded

from core.runs import store, sweep
from core.training.config import TrainConfig

pytestmark = pytest.mark.usefixtures("auglab_home")

PIPELINE = [{"op": "hflip", "params": {"p": 0.5}}, {"op": "random_resized_crop", "params": {"scale": [0.3, 1.0]}},
            {"op": "randaugment", "params": {"magnitude": 9}}]


def test_a_setting_is_a_config_key_or_one_parameter_of_one_pipeline_step():
    cfg = TrainConfig.from_dict({"augment": {"train": PIPELINE}})
    assert sweep.with_setting(cfg, "tricks.label_smoothing", 0.2).tricks.label_smoothing == 0.2
    magnitude = sweep.with_setting(cfg, "augment.train[2].magnitude", 15)
    assert magnitude.augment.train[2]["params"]["magnitude"] == 15
    assert sweep.setting_value(magnitude, "augment.train[2].magnitude") == 15
    lower = sweep.with_setting(cfg, "augment.train[1].scale[0]", 0.08)
    assert list(lower.augment.train[1]["params"]["scale"]) == [0.08, 1.0]
    assert sweep.setting_value(lower, "augment.train[1].scale[0]") == 0.08
    assert sweep.setting_label(cfg, "augment.train[2].magnitude") == "RandAugment magnitude"
    assert sweep.setting_label(cfg, "augment.train[1].scale[0]") == "RandomResizedCrop scale (lower bound)"
    assert sweep.setting_label(cfg, "tricks.label_smoothing") == "Label smoothing ε"
    with pytest.raises(ValueError, match="no parameter"):
        sweep.with_setting(cfg, "augment.train[0].magnitude", 3)
    with pytest.raises(ValueError):
        sweep.with_setting(cfg, "augment.train[2].magnitude", 99)  # beyond the op's declared range


def test_launch_queues_every_value_at_every_seed_as_seed_groups():
    occupy_the_only_slot()  # nothing trains: the runs stay queued
    cfg = TrainConfig.from_dict({"augment": {"train": PIPELINE}})
    ids = sweep.launch_sweep(cfg, "augment.train[2].magnitude", [0, 5, 10, 5], seeds=2, prefix="magnitude")
    records = [store.get_run(i) for i in ids]
    assert [r.name for r in records] == [f"magnitude · RandAugment magnitude = {v} · seed {s}"
                                         for v in (0, 5, 10) for s in (0, 1)]
    assert [r.config["augment"]["train"][2]["params"]["magnitude"] for r in records] == [0, 0, 5, 5, 10, 10]
    assert [r.config["run"]["seed"] for r in records] == [0, 1] * 3 and {r.status for r in records} == {"queued"}
    with pytest.raises(ValueError, match="at least 3"):
        sweep.launch_sweep(cfg, "tricks.label_smoothing", [0, 0.1])


def t_interval(values):
    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def test_a_sweep_is_read_from_its_runs_with_intervals_and_a_verdict_on_the_best():
    accuracies = {0.0: (0.60, 0.61, 0.62), 0.1: (0.70, 0.71, 0.69), 0.2: (0.66, 0.67, 0.65)}
    ids = []
    for eps, accs in accuracies.items():
        ids += seeded(f"ε {eps}", accs, {"tricks": {"label_smoothing": eps}})
    found = sweep.sweep_of(ids)
    assert found.setting == "tricks.label_smoothing" and found.label == "Label smoothing ε"
    assert [p.value for p in found.points] == [0.0, 0.1, 0.2] and [p.n for p in found.points] == [3, 3, 3]
    for point, accs in zip(found.points, accuracies.values()):
        assert point.mean == pytest.approx(sum(accs) / 3)
        assert (point.low, point.high) == pytest.approx(t_interval(accs))
    assert found.best.value == 0.1
    assert found.verdict.kind == "beyond" and found.verdict.difference == pytest.approx(0.70 - 0.66)
    assert found.pending == 0

    close = seeded("ε 0.3", (0.69, 0.72, 0.70), {"tricks": {"label_smoothing": 0.3}})
    found = sweep.sweep_of(ids + close)
    assert found.best.value in (0.1, 0.3) and found.verdict.kind == "within"


def test_runs_that_are_not_a_sweep_give_none():
    two = seeded("a", (0.5, 0.6), {"tricks": {"label_smoothing": 0.0}}) + seeded(
        "b", (0.5, 0.6), {"tricks": {"label_smoothing": 0.1}})
    assert sweep.sweep_of(two) is None  # two values: no curve
    mixed = two + seeded("c", (0.5, 0.6), {"tricks": {"label_smoothing": 0.2, "mixup_alpha": 0.2}})
    assert sweep.sweep_of(mixed) is None  # two settings differ


def test_a_pipeline_parameter_sweep_is_found_in_the_pipeline():
    ids = []
    for magnitude, accs in ((3, (0.5, 0.52)), (9, (0.6, 0.61)), (15, (0.55, 0.56))):
        pipeline = [dict(step) for step in PIPELINE]
        pipeline[2] = {"op": "randaugment", "params": {"magnitude": magnitude}}
        ids += seeded(f"m {magnitude}", accs, {"augment": {"train": pipeline}})
    found = sweep.sweep_of(ids)
    assert found.setting == "augment.train[2].magnitude" and found.label == "RandAugment magnitude"
    assert [p.value for p in found.points] == [3, 9, 15] and found.best.value == 9
