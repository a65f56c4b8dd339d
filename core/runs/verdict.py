"""Is a difference between two configs larger than seed noise? A verdict over seed groups.

A single run of each config shows one draw of the seed noise: two runs of the same config with
different seeds already differ by a point or more. Here the runs of a comparison are grouped by
config (every key but run.seed), each group's final test accuracies are its sample, and the
difference in mean accuracy gets a 95% confidence interval from Welch's t-interval, which does
not assume the two groups are equally noisy:

    from core.runs import verdict
    for kind, text in verdict.sentences(run_ids):       # kind: beyond, within, one_seed, no_spread
        print(text)
    # Horizontal flip: +4.1 points (95% interval +2.8 to +5.4, 3 seeds each): beyond seed noise

    report = verdict.verdicts(run_ids)                  # the groups, the comparisons, what was left out
    verdict.welch([0.91, 0.90, 0.92], [0.95, 0.94, 0.96], "flip")   # the interval alone

Only groups that differ in exactly one setting are compared (a model and its options count as
one setting): with two changes at once nobody can say which one made the difference. Accuracies
are fractions (0.91), as the store keeps them; the sentences speak in percentage points. Every
sentence a person reads is built from the templates in TEXT, so they can be reviewed and
translated in one place.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from core.i18n import N_, _, tr
from core.runs import compare, store
from core.training.config import ConfigError, flatten

METHOD = N_("Welch's t-interval")  # shown through tr(), as Verdict.method holds it
CONFIDENCE = 0.95
SEED_KEY = "run.seed"  # the one key allowed to differ inside a group
SEEDS_FOR_A_VERDICT = 3  # how many seeds "repeat over seeds" brings a group up to
# Below this standard deviation (in accuracy, a fraction) a group counts as having no spread:
# an accuracy is a count over the test set, so real seed noise is at least 1/test_size, far above
# this; what is below it is the rounding of equal accuracies.
NO_SPREAD = 1e-9
KINDS = ("beyond", "within", "one_seed", "no_spread")
ACTIVE = ("queued", "running")  # runs that may still count once they finish

# Everything a person reads, in one place: English, marked for the catalog with N_; whoever shows
# one translates it with core.i18n.tr (text() does both). {label} is the comparison's name, {diff},
# {low} and {high} are signed percentage points, {seeds} is "seeds_each" or "seeds_apart".
TEXT = {
    "beyond": N_("{label}: {diff} points ({level} interval {low} to {high}, {seeds}): beyond seed noise"),
    "within": N_("{label}: {diff} points ({level} interval {low} to {high}, {seeds}): within seed noise"),
    "one_seed_each": N_("{label}: {diff} points with one seed a side: one seed cannot tell a difference from "
                        "seed noise; repeat over seeds."),
    "one_seed_side": N_("{label}: {diff} points ({seeds}): one seed cannot tell a difference from seed noise; "
                        "repeat the one-seed side over seeds."),
    "no_spread": N_("{label}: {diff} points ({seeds}): every seed gave the same accuracy on both sides, so there "
                    "is no seed noise to measure and no interval; check that run.seed changes these runs."),
    "seeds_each": N_("{n} seeds each"),
    "seeds_apart": N_("{n_b} and {n_a} seeds"),  # the compared group's count first, then the baseline's
    "key_label": "{key} = {value}",  # no words: not for the catalog
    "pair_label": N_("{other} vs {base}"),
    # for the page
    "title": N_("Verdict"),
    # METHOD over seeds at CONFIDENCE, written out so that the catalog holds it (checked below)
    "method": N_("Welch's t-interval over seeds, 95%"),
    "method_plain": N_(
        "Runs of one config that differ only in their seed show how much the accuracy moves by chance. "
        "Built from that, the interval holds the real difference in mean final test accuracy 95 times out of "
        "100: when it excludes 0 the difference is beyond seed noise; when it includes 0 chance alone could "
        "explain it."
    ),
    "method_help": N_(
        "Each config's runs with different training seeds (run.seed) are its sample of final test accuracies. "
        "The interval is for the difference in mean accuracy (compared minus baseline), from Welch's t-interval, "
        "which allows the two configs different seed noise (Welch–Satterthwaite degrees of freedom). "
        "Only configs that differ in exactly one setting are compared; finished runs count, once per seed. "
        "With one seed on a side there is nothing to measure the noise by."
    ),
    "baseline": N_("Against “{label}” ({n} finished seed(s)); pick another baseline above."),
    "none": N_("No two selected configs differ in exactly one setting (run.seed aside), so there is nothing to "
               "judge. Use “Run again with one change” to make a pair."),
    "waiting": N_("Waiting for a finished run of: {labels}."),
    "unmatched": N_("Not judged, as they differ from every other selected config in more than one setting: "
                    "{labels}."),
    "pending": N_("Still queued or training, not counted yet: {n} run(s). The verdict updates when they finish."),
    "excluded": N_("Left out: {n} run(s) that failed, were stopped or interrupted, or were never evaluated."),
    "repeats": N_("Runs repeating a seed already in their group are counted once: {n} run(s) left out."),
    "repeat_button": N_("Repeat over seeds"),
    "repeat_plan": N_("Queues {runs}, so that each side has {total} seeds."),
    "repeat_group": N_("“{name}” seeds {first}..{last}"),
    "repeat_training": N_("More seeds of the one-seed configs are already queued or training."),
    "repeat_queued": N_("Queued {n} run(s) for the verdict: {groups}."),
}
assert TEXT["method"] == f"{METHOD} over seeds, {CONFIDENCE:.0%}", "TEXT['method'] must follow METHOD and CONFIDENCE"


def text(key: str) -> str:
    """TEXT[key] in the current language (a template: format it as TEXT describes)."""
    return tr(TEXT[key])


def _signed(points: float, decimals: int) -> str:
    shown = f"{points:+.{decimals}f}"
    return "+" + shown[1:] if float(shown) == 0.0 else shown  # no "-0.0"


def _decimals(*points: float) -> int:
    """One decimal, or more where one would round a non-zero number (an end of the interval) to 0.0.

    The sign of an interval's ends is what the verdict reads, so it must show.
    """
    decimals = 1
    while decimals < 4 and any(p != 0.0 and round(p, decimals) == 0.0 for p in points):
        decimals += 1
    return decimals


# ============================================================================ the interval


@dataclass(frozen=True)
class Verdict:
    """The difference in mean final test accuracy, b minus a (a is the baseline), in accuracy units.

    kind: "beyond" or "within" (seed noise, from the interval), "one_seed" (a side has one seed:
    no interval) or "no_spread" (every seed gave the same accuracy on both sides: low = high = the
    difference, an interval that says nothing about seed noise). beyond_noise is True for "beyond" only.
    """

    label: str
    difference: float
    low: float | None
    high: float | None
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    std_a: float | None  # sample standard deviation (n - 1); None for one seed
    std_b: float | None
    df: float | None  # Welch–Satterthwaite degrees of freedom
    beyond_noise: bool
    kind: str
    sentence: str
    confidence: float = CONFIDENCE
    method: str = METHOD


def _clean(values: Iterable[float | None]) -> np.ndarray:
    array = np.asarray([math.nan if v is None else float(v) for v in values], dtype=float)
    return array[np.isfinite(array)]


def welch(a: Iterable[float], b: Iterable[float], label: str, confidence: float = CONFIDENCE) -> Verdict:
    """Welch's t-interval for mean(b) - mean(a), with the sentence that reads it.

    NaN and None accuracies (runs never evaluated) are dropped. Raises ValueError when a side is empty.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(_("confidence must be in (0, 1), got {confidence!r}").format(confidence=confidence))
    xa, xb = _clean(a), _clean(b)
    if not len(xa) or not len(xb):
        raise ValueError(_("each side needs at least one accuracy"))
    n_a, n_b = len(xa), len(xb)
    mean_a, mean_b = float(xa.mean()), float(xb.mean())
    std_a = float(xa.std(ddof=1)) if n_a > 1 else None
    std_b = float(xb.std(ddof=1)) if n_b > 1 else None
    difference = mean_b - mean_a
    seeds = text("seeds_each").format(n=n_a) if n_a == n_b else text("seeds_apart").format(n_a=n_a, n_b=n_b)
    common = dict(label=label, difference=difference, n_a=n_a, n_b=n_b, mean_a=mean_a, mean_b=mean_b, std_a=std_a,
                  std_b=std_b, confidence=confidence)
    diff = _signed(100 * difference, _decimals(100 * difference))

    if n_a < 2 or n_b < 2:
        key = "one_seed_each" if n_a == n_b == 1 else "one_seed_side"
        return Verdict(**common, low=None, high=None, df=None, beyond_noise=False, kind="one_seed",
                       sentence=text(key).format(label=label, diff=diff, seeds=seeds))
    if std_a <= NO_SPREAD and std_b <= NO_SPREAD:
        return Verdict(**common, low=difference, high=difference, df=None, beyond_noise=False, kind="no_spread",
                       sentence=text("no_spread").format(label=label, diff=diff, seeds=seeds))

    # mean difference ± t(df) * sqrt(s_a²/n_a + s_b²/n_b), df from Welch–Satterthwaite: scipy's
    # ttest_ind(equal_var=False) computes exactly this (tests/test_verdict.py checks it by hand).
    with warnings.catch_warnings():
        # scipy warns about precision when one side's accuracies are all equal; its result is exact there
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ttest_ind(xb, xa, equal_var=False)
        interval = test.confidence_interval(confidence)
    low, high = float(interval.low), float(interval.high)
    beyond = low > 0.0 or high < 0.0
    decimals = _decimals(100 * difference, 100 * low, 100 * high)
    kind = "beyond" if beyond else "within"
    sentence = text(kind).format(
        label=label, diff=_signed(100 * difference, decimals), low=_signed(100 * low, decimals),
        high=_signed(100 * high, decimals), level=f"{confidence:.0%}", seeds=seeds,
    )
    return Verdict(**common, low=low, high=high, df=float(test.df), beyond_noise=beyond, kind=kind, sentence=sentence)


# ============================================================================ groups of seeds


@dataclass(frozen=True)
class Group:
    """Runs whose configs are identical but for run.seed.

    counted: one finished, evaluated run per seed (the first given where a seed repeats), whose
    final test accuracies are in `accuracies`; pending: runs queued or training; excluded: runs
    that failed, were stopped or interrupted, or finished without an evaluation; repeats: finished
    runs of a seed already counted (the same seed is the same draw of the noise).
    """

    name: str | None  # the runs' shared name without its seed suffix; None where they disagree
    run_ids: tuple[str, ...]
    config: dict[str, Any] = field(repr=False)  # flat config without run.seed
    seeds: tuple[int, ...]  # of every run, in run order
    counted: tuple[str, ...]
    accuracies: tuple[float, ...]
    pending: tuple[str, ...]
    excluded: tuple[str, ...]
    repeats: tuple[str, ...]
    first_name: str = ""  # the first run's name without its seed suffix, for a group with no shared name

    @property
    def n(self) -> int:
        return len(self.counted)

    @property
    def title(self) -> str:
        return self.name or self.first_name


def _flat_config(record: store.RunRecord) -> dict[str, Any]:
    # Through TrainConfig, so that a run stored before a key existed reads that key's default
    # instead of differing in it; a config this version cannot read is compared as stored.
    try:
        flat = flatten(record.train_config())
    except ConfigError:
        flat = flatten(record.config)
    flat.pop(SEED_KEY, None)
    # an empty mapping (model.options = {}) sets nothing: it must not differ from options that are unset
    return {k: v for k, v in flat.items() if not (isinstance(v, Mapping) and not v)}


def _base_name(name: str) -> str:
    return compare.seed_group(name) or name


def _sample(ids: Sequence[str], records: Mapping[str, store.RunRecord], accuracy: Mapping[str, float]) -> dict:
    """Sort runs into counted (one per seed, with its accuracy), pending, excluded and repeats."""
    counted, accuracies, pending, excluded, repeats, seen = [], [], [], [], [], set()
    for run_id in ids:
        record, acc = records[run_id], accuracy[run_id]
        seed = record.config.get("run", {}).get("seed")
        if record.status in ACTIVE:
            pending.append(run_id)
        elif record.status != "finished" or not math.isfinite(acc):
            excluded.append(run_id)
        elif seed in seen:
            repeats.append(run_id)
        else:
            seen.add(seed)
            counted.append(run_id)
            accuracies.append(float(acc))
    return dict(counted=tuple(counted), accuracies=tuple(accuracies), pending=tuple(pending),
                excluded=tuple(excluded), repeats=tuple(repeats))


def _load(run_ids: Sequence[str]) -> tuple[dict[str, store.RunRecord], dict[str, float]]:
    records, unused = compare.load_runs(run_ids)
    accuracy = compare.accuracy_summary(list(records))["final_test_acc"].to_dict() if records else {}
    return records, accuracy


def group_runs(run_ids: Sequence[str]) -> list[Group]:
    """The runs (unknown ids skipped) in groups of identical config but for run.seed, in order of first run."""
    records, accuracy = _load(run_ids)
    members: dict[str, list[str]] = {}
    flats: dict[str, dict[str, Any]] = {}
    for run_id, record in records.items():
        flat = _flat_config(record)
        signature = json.dumps(flat, sort_keys=True, default=str)
        members.setdefault(signature, []).append(run_id)
        flats.setdefault(signature, flat)
    groups = []
    for signature, ids in members.items():
        names = {_base_name(records[i].name) for i in ids}
        groups.append(Group(
            name=names.pop() if len(names) == 1 else None, run_ids=tuple(ids), config=flats[signature],
            seeds=tuple(records[i].config.get("run", {}).get("seed") for i in ids),
            first_name=_base_name(records[ids[0]].name), **_sample(ids, records, accuracy),
        ))
    return groups


def _one_experiment(a: Group, b: Group) -> bool:
    """Whether two groups are runs of one experiment: named "<title> · <run>" with the same title."""
    titles = [g.name.split(" · ")[0] if g.name and " · " in g.name else None for g in (a, b)]
    return titles[0] is not None and titles[0] == titles[1]


def _setting_keys(a: Group, b: Group) -> list[str]:
    """The config keys the two groups differ in, a model and its options counted as one."""
    keys = compare.differing_keys([a.config, b.config])
    if "model.name" in keys:
        keys = [k for k in keys if not k.startswith("model.options")]
    return keys


def one_key_difference(a: Group, b: Group) -> str | None:
    """The one config key (run.seed aside) in which the two groups differ, else None.

    A model and its options are one setting: LeNet against VGG differs in model.name and, with it,
    in options that mean nothing to the other model; that comparison is "model.name".
    """
    keys = _setting_keys(a, b)
    return keys[0] if len(keys) == 1 else None


def pick_baseline(groups: Sequence[Group]) -> int:
    """The index of the group that differs in one key from the most others (the first on a tie).

    Where one group differs from every other in one key (a baseline and its variations), that is it.
    """
    if not groups:
        raise ValueError(_("no groups to pick a baseline from"))
    neighbours = [sum(one_key_difference(g, h) is not None for h in groups if h is not g) for g in groups]
    return neighbours.index(max(neighbours))


# ============================================================================ comparisons


@dataclass(frozen=True)
class Comparison:
    label: str
    key: str  # the config key that differs between the two groups
    baseline_value: Any
    value: Any
    baseline: Group
    other: Group
    verdict: Verdict
    against_baseline: bool  # False for a pair of two other groups one key apart (a 2x2 design's other sides)

    @property
    def change(self) -> str:
        keys = self.key.split(", ")
        return "; ".join(
            f"{k}: {compare.format_value(self.baseline.config.get(k))} → {compare.format_value(self.other.config.get(k))}"
            for k in keys
        )


@dataclass(frozen=True)
class Report:
    groups: list[Group]
    baseline: Group | None
    comparisons: list[Comparison]  # every pair one key apart with a finished seed on both sides
    waiting: list[Group]  # one key away from another group, but no finished run yet
    unmatched: list[Group]  # more than one key away from every other group: not judged

    @property
    def pending(self) -> list[str]:
        return [run_id for g in self.groups for run_id in g.pending]

    @property
    def excluded(self) -> list[str]:
        return [run_id for g in self.groups for run_id in g.excluded]

    @property
    def repeats(self) -> list[str]:
        return [run_id for g in self.groups for run_id in g.repeats]

    @property
    def one_seed(self) -> list[Group]:
        """The groups of the one-seed comparisons (both sides), in order: the ones to repeat over seeds."""
        sides = [g for c in self.comparisons if c.verdict.kind == "one_seed" for g in (c.baseline, c.other)]
        return list({id(g): g for g in sides}.values())


def group_label(group: Group, key: str | None = None, baseline: Group | None = None) -> str:
    """A group's name, minus the leading " · " parts it shares with the baseline's name (a preset's title).

    Without a name of its own, or with the same name as the baseline, it is called by the key it
    changes ("tricks.mixup_alpha = 0.2"); the baseline itself by its name or "baseline".
    """
    if group.name is not None and (baseline is None or baseline.name != group.name):
        if baseline is not None and baseline.name is not None:
            mine, theirs = group.name.split(" · "), baseline.name.split(" · ")
            shared = 0
            while shared < min(len(mine), len(theirs)) - 1 and mine[shared] == theirs[shared]:
                shared += 1
            label = " · ".join(mine[shared:])
        else:
            label = group.name
        return label
    if key is not None:
        return TEXT["key_label"].format(key=key, value=compare.format_value(group.config.get(key)))
    return group.name or _("baseline")


def _compare(base: Group, other: Group, key: str, against_baseline: bool, confidence: float) -> Comparison:
    label = group_label(other, key, base)
    if not against_baseline:
        label = text("pair_label").format(other=label, base=group_label(base, key, other))
    if not label.startswith(key):  # a name starts the sentence with a capital; a config key stays as written
        label = label[:1].upper() + label[1:]
    return Comparison(
        label=label, key=key, baseline_value=base.config.get(key.split(", ")[0]), value=other.config.get(key.split(", ")[0]), baseline=base,
        other=other, verdict=welch(base.accuracies, other.accuracies, label, confidence),
        against_baseline=against_baseline,
    )


def verdicts(run_ids: Sequence[str], baseline: str | None = None, confidence: float = CONFIDENCE) -> Report:
    """Every pair of groups one config key apart, with its verdict; the baseline's pairs first.

    baseline: a run id whose group is the baseline; by default the group that differs in one key
    from the most others (pick_baseline). The baseline's comparisons are labelled by the other
    group alone ("Horizontal flip"); a pair of two other groups one key apart (the other sides of
    a 2x2 design: CNN against CNN on permuted pixels) by both ("CNN, permuted pixels vs CNN"),
    against the one that comes first. Only finished runs with a test accuracy count.
    """
    groups = group_runs(run_ids)
    if not groups:
        return Report([], None, [], [], [])
    if baseline is None:
        base = groups[pick_baseline(groups)]
    else:
        base = next((g for g in groups if baseline in g.run_ids), None)
        if base is None:
            raise ValueError(_("the baseline {baseline!r} is not one of the runs compared").format(baseline=baseline))
    pairs = [(base, g) for g in groups if g is not base]
    others = [g for g in groups if g is not base]
    pairs += [(a, b) for i, a in enumerate(others) for b in others[i + 1:]]
    comparisons, paired = [], set()
    for a, b in pairs:
        key = one_key_difference(a, b)
        if key is None:
            continue
        paired |= {id(a), id(b)}
        if a.n and b.n:
            comparisons.append(_compare(a, b, key, a is base, confidence))
    if len(groups) == 2 and not paired and _one_experiment(*groups):
        # The two sides of one preset's comparison are judged however many settings they differ in
        # (warmup + cosine against step decay changes the schedule's name and its warmup): the
        # preset declared them as one thing. The change lists every setting.
        a, b = pairs[0]
        paired |= {id(a), id(b)}
        if a.n and b.n:
            comparisons.append(_compare(a, b, ", ".join(_setting_keys(a, b)), True, confidence))
    waiting = [g for g in groups if id(g) in paired and not g.n]
    unmatched = [g for g in groups if id(g) not in paired]
    return Report(groups, base, comparisons, waiting, unmatched)


def sentences(run_ids: Sequence[str], baseline: str | None = None) -> list[tuple[str, str]]:
    """(kind, sentence) for every comparison of these runs, kind one of KINDS.

    For a panel that shows a finished preset's verdict: `sentences(preset_run_ids)`. Empty when no
    two configs differ in exactly one setting or a side has no finished run.
    """
    return [(c.verdict.kind, c.verdict.sentence) for c in verdicts(run_ids, baseline).comparisons]


def between(baseline_ids: Sequence[str], other_ids: Sequence[str], label: str,
            confidence: float = CONFIDENCE) -> Verdict | None:
    """The verdict on two sets of runs however their configs differ (a contrast declared by hand,
    such as a preset's recipe against another). Finished, evaluated runs count once per seed;
    None where a side has none."""
    records, accuracy = _load([*baseline_ids, *other_ids])
    a = _sample([i for i in dict.fromkeys(baseline_ids) if i in records], records, accuracy)
    b = _sample([i for i in dict.fromkeys(other_ids) if i in records], records, accuracy)
    if not a["counted"] or not b["counted"]:
        return None
    return welch(a["accuracies"], b["accuracies"], label, confidence)


# ============================================================================ repeat over seeds


def more_seeds(group: Group, total: int = SEEDS_FOR_A_VERDICT) -> tuple[int, int]:
    """(how many runs, first seed) that bring the group up to `total` seeds, after its largest seed.

    Runs still queued or training count towards the total; failed ones do not, and their seeds are
    not tried again.
    """
    known = [s for s in group.seeds if isinstance(s, int)]
    return max(0, total - len(group.counted) - len(group.pending)), (max(known) + 1 if known else 0)


@dataclass(frozen=True)
class Repeat:
    group: Group
    n: int
    first_seed: int

    @property
    def text(self) -> str:
        return text("repeat_group").format(name=self.group.title, first=self.first_seed,
                                           last=self.first_seed + self.n - 1)


def repeat_plan(report: Report, total: int = SEEDS_FOR_A_VERDICT) -> list[Repeat]:
    """The seeds to launch so that both sides of every one-seed comparison have `total` seeds."""
    plan = []
    for group in report.one_seed:
        n, first = more_seeds(group, total)
        if n:
            plan.append(Repeat(group, n, first))
    return plan


def repeat_over_seeds(plan: Sequence[Repeat]) -> list[str]:
    """Queue the plan (compare.launch_seeds, named "<group> · seed N"); returns the new run ids.

    Each group is launched from the stored config of its first counted run, with only run.seed
    changed; a config that does not validate queues nothing (ConfigError).
    """
    sources = [store.get_run(repeat.group.counted[0]).config for repeat in plan]
    for config, repeat in zip(sources, plan):  # every config validated before the first launch
        compare.seed_configs(config, repeat.n, repeat.first_seed)
    ids: list[str] = []
    for config, repeat in zip(sources, plan):
        ids += compare.launch_seeds(config, repeat.n, repeat.first_seed, repeat.group.title)
    return ids
