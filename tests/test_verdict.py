"""core.runs.verdict: Welch's t-interval checked by hand and against scipy, and verdicts on stored runs.

The stored runs are written straight into the store with made-up accuracies (no training); the
one test that launches holds the only training slot, so its runs stay queued.
"""
import math

import numpy as np
import pytest
from scipy import stats
from test_compare import make_run

from core.runs import compare, runner, store, verdict
from core.training.config import TrainConfig

FLIP = {"augment": {"train": [{"op": "hflip"}]}}


def seeded(name: str, accuracies, overrides: dict | None = None, first_seed: int = 0) -> list[str]:
    """One finished run per accuracy, seeds first_seed.., named "<name> · seed N"."""
    ids = []
    for seed, acc in enumerate(accuracies, first_seed):
        cfg = {**(overrides or {}), "run": {**(overrides or {}).get("run", {}), "seed": seed}}
        ids.append(make_run(compare.seed_run_name(name, seed), cfg, test_acc=(0.1, acc)))
    return ids


def hand_welch(a, b, confidence=0.95):
    """mean(b) - mean(a) ± t(df) * se, with the Welch–Satterthwaite df, written out."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb)
    d = b.mean() - a.mean()
    return d - half, d + half, df


# ---- the interval --------------------------------------------------------------------------------


def test_three_seeds_each_by_hand_beyond_seed_noise():
    # means 0.80 and 0.85, both std 0.01: se = sqrt(2 * 0.0001 / 3) = 0.0081650, df = 4,
    # t(0.975, 4) = 2.7764 (any t table), half width 0.022669: 0.05 ± 0.0227
    v = verdict.welch([0.80, 0.81, 0.79], [0.85, 0.84, 0.86], "Horizontal flip")
    assert v.difference == pytest.approx(0.05)
    assert v.df == pytest.approx(4.0)
    assert v.low == pytest.approx(0.05 - 2.7764 * 0.0081650, abs=1e-5)
    assert v.high == pytest.approx(0.05 + 2.7764 * 0.0081650, abs=1e-5)
    assert v.std_a == pytest.approx(0.01) and v.std_b == pytest.approx(0.01)
    assert v.kind == "beyond" and v.beyond_noise
    assert v.sentence == "Horizontal flip: +5.0 points (95% interval +2.7 to +7.3, 3 seeds each): beyond seed noise"


def test_unequal_groups_and_spreads_match_the_formula_and_scipy():
    a, b = [0.70, 0.72], [0.70, 0.74, 0.72, 0.76]
    v = verdict.welch(a, b, "Mixup")
    low, high, df = hand_welch(a, b)
    assert df == pytest.approx(3.6923, abs=1e-4)  # not n_a + n_b - 2 = 4: the variances differ
    assert (v.low, v.high, v.df) == pytest.approx((low, high, df))
    reference = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (v.low, v.high) == pytest.approx((reference.low, reference.high))
    assert v.kind == "within" and not v.beyond_noise  # +2 points, interval -3.4 to +7.4
    assert v.n_a == 2 and v.n_b == 4
    assert v.sentence == (f"Mixup: +2.0 points (95% interval {100 * low:+.1f} to {100 * high:+.1f}, "
                          "4 and 2 seeds): within seed noise")


def test_a_small_difference_is_within_seed_noise_and_a_negative_one_reads_negative():
    within = verdict.welch([0.80, 0.82, 0.78], [0.81, 0.79, 0.83], "Cutout")
    assert within.kind == "within" and within.low < 0 < within.high
    assert within.sentence.startswith("Cutout: +1.0 points (95% interval ")
    assert within.sentence.endswith(", 3 seeds each): within seed noise")
    worse = verdict.welch([0.85, 0.84, 0.86], [0.80, 0.81, 0.79], "Mixup")
    assert worse.kind == "beyond" and worse.high < 0
    assert worse.sentence == "Mixup: -5.0 points (95% interval -7.3 to -2.7, 3 seeds each): beyond seed noise"


def test_a_higher_confidence_widens_the_interval():
    a, b = [0.80, 0.81, 0.79], [0.83, 0.82, 0.84]
    v95, v99 = verdict.welch(a, b, "x"), verdict.welch(a, b, "x", confidence=0.99)
    assert v99.low < v95.low and v99.high > v95.high
    assert (v99.low, v99.high) == pytest.approx(hand_welch(a, b, 0.99)[:2])
    assert "(99% interval" in v99.sentence
    with pytest.raises(ValueError, match="confidence"):
        verdict.welch(a, b, "x", confidence=1.0)


def test_one_seed_cannot_tell():
    each = verdict.welch([0.80], [0.85], "Horizontal flip")
    assert each.kind == "one_seed" and not each.beyond_noise
    assert each.low is each.high is None and each.df is None
    assert each.sentence == ("Horizontal flip: +5.0 points with one seed a side: one seed cannot tell a "
                             "difference from seed noise; repeat over seeds.")
    side = verdict.welch([0.80, 0.82, 0.81], [0.85], "Horizontal flip")
    assert side.kind == "one_seed" and side.std_a == pytest.approx(0.01) and side.std_b is None
    assert side.sentence.startswith("Horizontal flip: +4.0 points (1 and 3 seeds): one seed cannot tell")


def test_zero_spread_on_both_sides_gives_no_interval():
    v = verdict.welch([0.8, 0.8, 0.8], [0.9, 0.9], "Flip")
    assert v.kind == "no_spread" and not v.beyond_noise
    assert v.low == v.high == pytest.approx(0.1) and v.df is None
    assert "every seed gave the same accuracy" in v.sentence and "2 and 3 seeds" in v.sentence


def test_zero_spread_on_one_side_uses_the_other_sides_noise():
    # se = 0.02 / sqrt(3), df = 3 - 1 = 2, t(0.975, 2) = 4.3027: 0.04 ± 0.0497
    v = verdict.welch([0.8, 0.8, 0.8], [0.82, 0.84, 0.86], "Flip")
    assert v.df == pytest.approx(2.0)
    assert (v.low, v.high) == pytest.approx((0.04 - 4.3027 * 0.02 / math.sqrt(3), 0.04 + 4.3027 * 0.02 / math.sqrt(3)),
                                            abs=1e-5)
    assert v.kind == "within"


def test_missing_accuracies_are_dropped_and_an_empty_side_is_an_error():
    v = verdict.welch([0.80, math.nan, 0.81, 0.79, None], [0.85, 0.84, 0.86], "Flip")
    assert v.n_a == 3 and v.low == pytest.approx(verdict.welch([0.80, 0.81, 0.79], [0.85, 0.84, 0.86], "Flip").low)
    with pytest.raises(ValueError, match="at least one"):
        verdict.welch([math.nan], [0.8], "Flip")


def test_an_end_near_zero_keeps_its_sign():
    assert verdict._decimals(5.0, 0.04, 9.9) == 2  # +0.04 must not read +0.0 (or "-0.0")
    assert verdict._decimals(5.0, 2.7, 7.3) == 1
    assert verdict._signed(-0.04, 1) == "+0.0" and verdict._signed(-0.04, 2) == "-0.04"


# ---- groups of seeds from stored runs ------------------------------------------------------------


def test_runs_group_by_config_but_for_the_seed():
    plain = seeded("Flip · no augmentation", [0.80, 0.81, 0.79])
    flip = seeded("Flip · horizontal flip", [0.85, 0.84], FLIP)
    groups = verdict.group_runs([*plain, *flip])
    assert [g.name for g in groups] == ["Flip · no augmentation", "Flip · horizontal flip"]
    assert [g.run_ids for g in groups] == [tuple(plain), tuple(flip)]
    assert groups[0].seeds == (0, 1, 2) and groups[0].accuracies == pytest.approx((0.80, 0.81, 0.79))
    assert "run.seed" not in groups[0].config and "run.epochs" in groups[0].config
    assert [step["op"] for step in groups[1].config["augment.train"]] == ["hflip"]


def test_unfinished_failed_unevaluated_and_repeated_runs_are_not_counted():
    hold_the_only_slot()
    counted = seeded("plain", [0.80, 0.82])
    failed = make_run(compare.seed_run_name("plain", 2), {"run": {"seed": 2}}, test_acc=(0.1, 0.3), status="failed")
    never = make_run(compare.seed_run_name("plain", 3), {"run": {"seed": 3}}, test_acc=())  # no evaluation
    queued = store.create_run(TrainConfig.from_dict({"run": {"seed": 4}}), compare.seed_run_name("plain", 4))
    again = make_run("plain again", {"run": {"seed": 0}}, test_acc=(0.1, 0.5))  # seed 0 a second time
    (group,) = verdict.group_runs([*counted, failed, never, queued, again])
    assert group.counted == tuple(counted) and group.accuracies == pytest.approx((0.80, 0.82))
    assert group.excluded == (failed, never) and group.pending == (queued,) and group.repeats == (again,)
    assert group.name is None and group.title == "plain"  # the names disagree; the first one stands in
    # failed seeds are not tried again, queued ones count towards the three
    assert verdict.more_seeds(group) == (0, 5)
    assert verdict.more_seeds(group, total=5) == (2, 5)


def test_a_one_key_difference_is_found_and_a_model_counts_as_one_key():
    base = verdict.group_runs(seeded("base", [0.8]))[0]
    flip = verdict.group_runs(seeded("flip", [0.8], FLIP))[0]
    vgg = verdict.group_runs(seeded("vgg", [0.8], {"model": {"name": "vgg11", "options": {"width": 16}}}))[0]
    lr = verdict.group_runs(seeded("lr", [0.8], {**FLIP, "optim": {"lr": 0.1}}))[0]
    assert verdict.one_key_difference(base, flip) == "augment.train"
    assert verdict.one_key_difference(base, vgg) == "model.name"  # its options come with the model
    assert verdict.one_key_difference(base, lr) is None  # augment.train and optim.lr
    assert verdict.one_key_difference(flip, lr) == "optim.lr"
    narrow = verdict.group_runs(seeded("narrow", [0.8], {"model": {"name": "vgg11", "options": {"width": 8}}}))[0]
    assert verdict.one_key_difference(vgg, narrow) == "model.options.width"


# ---- verdicts on stored runs ---------------------------------------------------------------------


def test_the_verdict_on_three_seeds_each():
    plain = seeded("Flip augmentation vs none · no augmentation", [0.80, 0.81, 0.79])
    flip = seeded("Flip augmentation vs none · horizontal flip", [0.85, 0.84, 0.86], FLIP)
    report = verdict.verdicts([*plain, *flip])
    assert report.baseline.run_ids == tuple(plain)  # a tie: the first group
    (c,) = report.comparisons
    assert c.key == "augment.train" and c.against_baseline and c.other.run_ids == tuple(flip)
    assert c.verdict.sentence == ("Horizontal flip: +5.0 points (95% interval +2.7 to +7.3, 3 seeds each): "
                                  "beyond seed noise")
    assert verdict.sentences([*plain, *flip]) == [("beyond", c.verdict.sentence)]
    # the other way round, from a chosen baseline
    (back,) = verdict.verdicts([*plain, *flip], baseline=flip[1]).comparisons
    assert back.label == "No augmentation" and back.verdict.difference == pytest.approx(-0.05)
    with pytest.raises(ValueError, match="not one of the runs"):
        verdict.verdicts(plain, baseline=flip[0])


def test_configs_two_keys_apart_get_no_verdict():
    plain = seeded("plain", [0.80, 0.81, 0.79])
    both = seeded("flip and lr", [0.85, 0.84, 0.86], {**FLIP, "optim": {"lr": 0.1}})
    report = verdict.verdicts([*plain, *both])
    assert report.comparisons == [] and verdict.sentences([*plain, *both]) == []
    assert [g.run_ids for g in report.unmatched] == [tuple(plain), tuple(both)]


def test_a_baseline_and_its_variations_and_the_pairs_of_a_2x2_design():
    mlp = seeded("MNIST · MLP", [0.90, 0.91], {"model": {"name": "mlp"}})
    cnn = seeded("MNIST · CNN", [0.97, 0.98], {"model": {"name": "lenet"}})
    permuted = {"data": {"permute_pixels": True}}
    mlp_p = seeded("MNIST · MLP, permuted", [0.90, 0.905], {"model": {"name": "mlp"}, **permuted})
    cnn_p = seeded("MNIST · CNN, permuted", [0.80, 0.82], {"model": {"name": "lenet"}, **permuted})
    report = verdict.verdicts([*mlp, *cnn, *mlp_p, *cnn_p])
    assert report.baseline.name == "MNIST · MLP"  # two neighbours each: the first
    labels = [(c.label, c.key, c.against_baseline) for c in report.comparisons]
    assert labels == [
        ("CNN", "model.name", True),
        ("MLP, permuted", "data.permute_pixels", True),
        ("CNN, permuted vs CNN", "data.permute_pixels", False),
        ("CNN, permuted vs MLP, permuted", "model.name", False),
    ]
    assert report.unmatched == [] and report.waiting == []
    # a hub: one baseline and two variations of it, which are two keys from each other
    flip = seeded("trick · flip", [0.85, 0.86], FLIP)
    lr = seeded("trick · lr", [0.82, 0.83], {"optim": {"lr": 0.1}})
    base = seeded("trick · baseline", [0.80, 0.81])
    hub = verdict.verdicts([*flip, *lr, *base])
    assert hub.baseline.run_ids == tuple(base)
    assert [c.label for c in hub.comparisons] == ["Flip", "Lr"]


def test_a_group_without_a_finished_run_waits_and_one_seed_offers_a_repeat():
    hold_the_only_slot()
    plain = seeded("plain", [0.80])
    flip = seeded("flip", [0.85, 0.86], FLIP)
    queued = store.create_run(TrainConfig.from_dict({"tricks": {"mixup_alpha": 0.2}}), "mixup")
    report = verdict.verdicts([*plain, *flip, queued])
    (c,) = report.comparisons
    assert c.verdict.kind == "one_seed"
    assert [g.run_ids for g in report.waiting] == [(queued,)] and report.pending == [queued]
    assert report.one_seed == [c.baseline, c.other]
    plan = verdict.repeat_plan(report)
    assert [(r.group.name, r.n, r.first_seed) for r in plan] == [("plain", 2, 1), ("flip", 1, 2)]
    assert [r.text for r in plan] == ["“plain” seeds 1..2", "“flip” seeds 2..2"]

    new = verdict.repeat_over_seeds(plan)
    records = [store.get_run(i) for i in new]
    assert [(r.name, r.status) for r in records] == [
        ("plain · seed 1", "queued"), ("plain · seed 2", "queued"), ("flip · seed 2", "queued")]
    # only the seed changed: the new runs join their groups
    groups = verdict.group_runs([*plain, *flip, *new])
    assert [g.run_ids for g in groups] == [(*plain, *new[:2]), (*flip, new[2])]
    # while they train, there is nothing more to launch
    assert verdict.repeat_plan(verdict.verdicts([*plain, *flip, *new])) == []
    for run_id in new:
        runner.stop(run_id)


def test_between_judges_runs_however_their_configs_differ():
    step = seeded("Schedules · step decay", [0.80, 0.81, 0.79], {"schedule": {"name": "step"}})
    warm = seeded("Schedules · warmup + cosine", [0.85, 0.84, 0.86], {"schedule": {"name": "cosine", "warmup": 1.0}})
    # the two sides of one experiment (a preset: "<title> · <run>") are judged however many
    # settings apart, and the change names each; runs of no one experiment are not (below)
    (only,) = verdict.verdicts([*step, *warm]).comparisons
    assert only.key == "schedule.name, schedule.warmup" and only.verdict.kind == "beyond"
    assert only.change == "schedule.name: step → cosine; schedule.warmup: 0.0 → 1.0"
    assert only.verdict.sentence.startswith("Warmup + cosine: +5.0 points")
    # a third config two settings from both is not judged against either
    third = seeded("Schedules · third", [0.7, 0.71, 0.72], {"schedule": {"name": "sgdr", "warmup": 0.5}})
    assert verdict.verdicts([*step, *warm, *third]).comparisons == []
    v = verdict.between(step, warm, "Warmup + cosine vs step decay")
    assert v.kind == "beyond" and v.difference == pytest.approx(0.05)
    queued = store.create_run(TrainConfig(), "not yet")
    assert verdict.between(step, [queued], "x") is None


def hold_the_only_slot() -> str:
    runner.set_max_concurrent(1)
    return store.create_run(TrainConfig(), "holds the slot", status="running")
