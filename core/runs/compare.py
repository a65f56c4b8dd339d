"""Comparing runs: curves from the store, smoothing, seed groups, config differences, exports.

The compare page draws what this module computes; nothing here knows about Streamlit, so the
notebook user gets the same numbers:

    from core.runs import compare
    frame = compare.curves([a, b], "test_acc", x="epoch")            # one row per point
    table = compare.compare_table([a, b], baseline=a)                # what differs, and by how much
    groups = compare.seed_groups(store.list_runs().set_index("id")["name"])
    band = compare.aggregate(compare.curves(groups["mixup"], "test_acc"), band="std")

A chart is described here as a list of `core.figures.Series` (lines and seed bands, `chart_series`)
and drawn by `core.figures.comparison`; exports (PNG from the chart's camera button, standalone
HTML) are plotly's own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.figures import PALETTE, Series
from core.i18n import N_, _, tr
from core.runs import runner, store
from core.training.config import ConfigError, TrainConfig, apply_overrides, flatten, parse_value

# ============================================================================ what can be plotted


@dataclass(frozen=True)
class Metric:
    label: str  # marked with N_: shown through tr() (metric_label)
    kind: str  # which metric rows hold it: "epoch" (one per evaluation) or "step" (one per step)
    column: str  # the store's column (step rows keep the batch loss and accuracy in train_*)


# The labels below are English, marked for the catalog: show them through metric_label, x_label and
# band_label (or core.i18n.tr), which translate them.
METRICS: dict[str, Metric] = {
    "test_acc": Metric(N_("Test accuracy"), "epoch", "test_acc"),
    "test_loss": Metric(N_("Test loss"), "epoch", "test_loss"),
    "train_acc": Metric(N_("Train accuracy (per epoch)"), "epoch", "train_acc"),
    "train_loss": Metric(N_("Train loss (per epoch)"), "epoch", "train_loss"),
    "step_loss": Metric(N_("Train loss (per step)"), "step", "train_loss"),
    "step_acc": Metric(N_("Train accuracy (per step)"), "step", "train_acc"),
    "lr": Metric(N_("Learning rate"), "step", "lr"),
    "images_per_s": Metric(N_("Throughput (images/s)"), "step", "images_per_s"),
}
X_AXES: dict[str, str] = {"epoch": N_("Epoch"), "step": N_("Step"), "wall": N_("Wall time (s)")}
BANDS: dict[str, str] = {"minmax": N_("min–max"), "std": N_("±1 std")}


def metric_label(metric: str) -> str:
    """The metric's label in the current language, e.g. "Test accuracy"."""
    return tr(METRICS[metric].label)


def x_label(x: str) -> str:
    """The x axis' label in the current language, e.g. "Wall time (s)"."""
    return tr(X_AXES[x])


def band_label(band: str) -> str:
    """The seed band's label in the current language, e.g. "±1 std"."""
    return tr(BANDS[band])


def _check_choice(value: str, choices: Mapping[str, Any], what: str) -> None:
    if value not in choices:
        raise ValueError(_("{what} must be one of {choices}, not {value!r}").format(what=what, choices=", ".join(choices), value=value))


# ============================================================================ runs and their curves


def load_runs(run_ids: Iterable[str]) -> tuple[dict[str, store.RunRecord], list[str]]:
    """The runs that exist, in the order asked (duplicates dropped), and the ids that do not."""
    found: dict[str, store.RunRecord] = {}
    missing: list[str] = []
    for run_id in run_ids:
        if run_id in found or run_id in missing:
            continue
        try:
            found[run_id] = store.get_run(run_id)
        except store.UnknownRunError:
            missing.append(run_id)
    return found, missing


def run_labels(names: Mapping[str, str]) -> dict[str, str]:
    """Legend labels by run id: the run's name, with its id's tail where two runs share a name."""
    counts = pd.Series(list(names.values()), dtype=object).value_counts()
    return {run_id: f"{name} ({run_id[-6:]})" if counts[name] > 1 else name for run_id, name in names.items()}


def ema(values: Sequence[float], smoothing: float) -> np.ndarray:
    """Exponential moving average without the start-up bias (the TensorBoard slider's smoothing).

    Point t is the mean of the points so far weighted by smoothing**age, so the first point is
    itself rather than being pulled towards zero; missing points (NaN) stay missing and are skipped.
    0 returns the values unchanged.
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(_("smoothing must be in [0, 1), got {smoothing!r}").format(smoothing=smoothing))
    series = pd.Series(np.asarray(values, dtype=float))
    if smoothing == 0.0 or series.empty:
        return series.to_numpy()
    smoothed = series.ewm(alpha=1.0 - smoothing, adjust=True, ignore_na=True).mean()
    return smoothed.where(series.notna()).to_numpy()


def curves(
    run_ids: Sequence[str],
    metric: str,
    x: str = "epoch",
    smoothing: float = 0.0,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per recorded point: run_id, run (legend label), x, value and the smoothed value.

    Runs without points for the metric yet (queued, or before the first evaluation) contribute
    no rows. Smoothing is per run, along the run's own step order.
    """
    _check_choice(metric, METRICS, "metric")
    _check_choice(x, X_AXES, "x")
    spec = METRICS[metric]
    if labels is None:
        records, unused = load_runs(run_ids)
        labels = run_labels({run_id: record.name for run_id, record in records.items()})
    parts = []
    for run_id in run_ids:
        rows = store.metrics(run_id, spec.kind)
        rows = rows[rows[spec.column].notna()]
        if rows.empty:
            continue
        parts.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "run": labels.get(run_id, run_id),
                    "x": rows[x].to_numpy(dtype=float),
                    "value": rows[spec.column].to_numpy(dtype=float),
                    "smoothed": ema(rows[spec.column].to_numpy(dtype=float), smoothing),
                }
            )
        )
    if not parts:
        return pd.DataFrame({"run_id": [], "run": [], "x": [], "value": [], "smoothed": []})
    return pd.concat(parts, ignore_index=True)


def thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """At most about `max_points` rows per run, evenly spaced and always keeping the last one.

    For the screen only: a long run has tens of thousands of steps, which would make every live
    refresh slow to send and to draw; exports keep every point.
    """
    if max_points < 2:
        raise ValueError(_("max_points must be at least 2, got {max_points}").format(max_points=max_points))
    kept = []
    for unused, rows in frame.groupby("run_id", sort=False):
        if len(rows) > max_points:
            every = math.ceil(len(rows) / max_points)
            index = sorted(set(range(0, len(rows), every)) | {len(rows) - 1})
            rows = rows.iloc[index]
        kept.append(rows)
    return pd.concat(kept) if kept else frame


# ============================================================================ seed groups
# A seed repeat is one config trained with seeds s..s+N-1; its runs are named "<prefix> · seed <s>",
# so the group survives in the store (and across restarts) with no extra table, and a user can
# also form a group by naming runs that way.

SEED_SEPARATOR = " · seed "
_SEED_NAME = re.compile(r"^(?P<prefix>.+)" + re.escape(SEED_SEPARATOR) + r"(?P<seed>\d+)$")
MAX_SEEDS = 20


def seed_run_name(prefix: str, seed: int) -> str:
    return f"{prefix.strip()}{SEED_SEPARATOR}{seed}"


def seed_group(name: str) -> str | None:
    """The group prefix of a run named by `seed_run_name`, else None."""
    match = _SEED_NAME.match(name)
    return match["prefix"] if match else None


def seed_groups(names: Mapping[str, str], min_size: int = 2) -> dict[str, list[str]]:
    """Group prefix -> run ids (in the order given), for groups of at least `min_size` runs."""
    groups: dict[str, list[str]] = {}
    for run_id, name in names.items():
        prefix = seed_group(name)
        if prefix is not None:
            groups.setdefault(prefix, []).append(run_id)
    return {prefix: ids for prefix, ids in groups.items() if len(ids) >= min_size}


LATEST_RUNS = 4  # opened on when the newest runs form no group
MAX_NEWEST_GROUP = 40  # a preset of 4 runs over 10 seeds fits; a long series of same-named runs is cut


@dataclass(frozen=True)
class Newest:
    run_ids: list[str]  # in launch order (oldest first), as a preset passes them
    group: str | None  # the name part the group's runs share; None for "the latest runs"


def newest_group(runs: pd.DataFrame) -> Newest:
    """What to compare when nothing is picked: the newest group of runs, else the latest runs.

    runs: store.list_runs() (newest first). The newest group is the unbroken stretch of newest
    runs whose names share the newest run's first " · " part: the runs of a preset ("<preset> ·
    <run>", with " · seed N" when repeated over seeds) or of one seed group ("<prefix> · seed N"),
    at most MAX_NEWEST_GROUP. When fewer than two runs form it: the LATEST_RUNS latest runs that
    are finished or running (else the newest run alone).
    """
    if runs.empty:
        return Newest([], None)
    ids, names = runs["id"].tolist(), runs["name"].tolist()
    head = names[0].split(" · ")[0]
    stretch = 0
    while stretch < min(len(ids), MAX_NEWEST_GROUP) and names[stretch].split(" · ")[0] == head:
        stretch += 1
    if stretch >= 2:
        return Newest(ids[:stretch][::-1], head)
    latest = runs[runs["status"].isin(["finished", "running"])]["id"].tolist()[:LATEST_RUNS]
    return Newest((latest or ids[:1])[::-1], None)


def seed_configs(config: TrainConfig | Mapping[str, Any], n: int, first_seed: int) -> list[TrainConfig]:
    """The config with run.seed = first_seed, first_seed + 1, ... (n of them), all validated."""
    if not 1 <= n <= MAX_SEEDS:
        raise ConfigError(_("the number of seeds must be 1..{max_seeds}, got {n}").format(max_seeds=MAX_SEEDS, n=n))
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    return [apply_overrides(cfg, {"run.seed": seed}) for seed in range(first_seed, first_seed + n)]


def launch_seeds(config: TrainConfig | Mapping[str, Any], n: int, first_seed: int, prefix: str) -> list[str]:
    """Queue the config once per seed as the group `prefix`; returns the new run ids.

    Every config is validated before the first launch, so a bad value queues nothing.
    """
    if not prefix.strip():
        raise ConfigError(_("a seed group needs a name"))
    configs = seed_configs(config, n, first_seed)
    runner.ensure_room(len(configs))
    return [runner.launch(cfg, seed_run_name(prefix, cfg.run.seed)) for cfg in configs]


def aggregate(frame: pd.DataFrame, band: str = "minmax", column: str = "smoothed") -> pd.DataFrame:
    """Mean over runs at each x, with a band: columns x, mean, lo, hi, n (runs with a point there).

    Meant for one seed group on the epoch or step axis, where the runs share their x values.
    The std band uses the sample standard deviation (n - 1), which is 0 where only one run has
    reached that x.
    """
    _check_choice(band, BANDS, "band")
    grouped = frame.groupby("x", sort=True)[column]
    mean = grouped.mean()
    if band == "minmax":
        lo, hi = grouped.min(), grouped.max()
    else:
        std = grouped.std(ddof=1).fillna(0.0)
        lo, hi = mean - std, mean + std
    return pd.DataFrame(
        {"x": mean.index.to_numpy(dtype=float), "mean": mean.to_numpy(), "lo": lo.to_numpy(), "hi": hi.to_numpy(),
         "n": grouped.count().to_numpy()}
    )


def accuracy_summary(run_ids: Iterable[str]) -> pd.DataFrame:
    """Final and best test accuracy of each run (NaN before its first evaluation); indexed by run id."""
    rows = {}
    for run_id in run_ids:
        acc = store.metrics(run_id, "epoch")["test_acc"].dropna()
        rows[run_id] = {
            "final_test_acc": float(acc.iloc[-1]) if len(acc) else math.nan,
            "best_test_acc": float(acc.max()) if len(acc) else math.nan,
            "epochs_evaluated": len(acc),
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["final_test_acc", "best_test_acc", "epochs_evaluated"])


def group_summary(groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Per seed group: runs, mean, std (n - 1), min and max of the final test accuracy.

    Two configs differ by more than seed noise when their means are several stds apart.
    """
    rows = []
    for prefix, run_ids in groups.items():
        final = accuracy_summary(run_ids)["final_test_acc"].dropna()
        rows.append(
            {
                "group": prefix,
                "runs": len(run_ids),
                "evaluated": len(final),
                "mean_final_test_acc": final.mean() if len(final) else math.nan,
                "std_final_test_acc": final.std(ddof=1) if len(final) > 1 else math.nan,
                "min_final_test_acc": final.min() if len(final) else math.nan,
                "max_final_test_acc": final.max() if len(final) else math.nan,
            }
        )
    columns = ["group", "runs", "evaluated", "mean_final_test_acc", "std_final_test_acc", "min_final_test_acc",
               "max_final_test_acc"]
    return pd.DataFrame(rows, columns=columns)


# ============================================================================ what differs


def format_value(value: Any) -> str:
    """A config value as one short line: JSON, with an augmentation pipeline as its op names."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) and "op" in v for v in value):
        return " → ".join(v["op"] if v.get("enabled", True) else _("{op} (off)").format(op=v["op"]) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dotted config keys whose values are not the same in every config, in config order."""
    flats = [flatten(c) for c in configs]
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    return [k for k in keys if any(flat.get(k) != flats[0].get(k) for flat in flats[1:])]


def compare_table(run_ids: Sequence[str], baseline: str | None = None) -> pd.DataFrame:
    """One row per run: name, status, each differing config key, final and best test accuracy.

    With a baseline (one of the runs), two more columns give each run's accuracy minus the
    baseline's (positive means better than the baseline). Config values are shown as text, so
    that a column mixing numbers and None stays one type. `table.attrs["differing"]` lists the
    config columns.
    """
    records, missing = load_runs(run_ids)
    if missing:
        raise store.UnknownRunError(_("no run with id {run_id!r}").format(run_id=missing[0]))
    if baseline is not None and baseline not in records:
        raise ValueError(_("the baseline {baseline!r} is not one of the runs compared").format(baseline=baseline))
    ids = list(records)
    keys = differing_keys([records[i].config for i in ids])
    flats = {i: flatten(records[i].config) for i in ids}
    labels = run_labels({i: records[i].name for i in ids})
    table = pd.DataFrame(
        {"run": [labels[i] for i in ids], "status": [records[i].status for i in ids]}, index=pd.Index(ids, name="id")
    )
    for key in keys:
        table[key] = [format_value(flats[i].get(key)) if key in flats[i] else "—" for i in ids]
    table.attrs["differing"] = keys
    accuracy = accuracy_summary(ids)
    table["final test acc"] = accuracy["final_test_acc"]
    table["best test acc"] = accuracy["best_test_acc"]
    if baseline is not None:
        table["Δ final vs baseline"] = table["final test acc"] - table.at[baseline, "final test acc"]
        table["Δ best vs baseline"] = table["best test acc"] - table.at[baseline, "best test acc"]
    return table


# ============================================================================ run again with one change


@dataclass(frozen=True)
class Change:
    key: str
    old: Any  # the value in the source run (None where the key was not set)
    new: Any
    config: TrainConfig  # the source config with the change applied, validated

    @property
    def text(self) -> str:
        return f"{self.key}: {format_value(self.old)} → {format_value(self.new)}"


def with_change(config: TrainConfig | Mapping[str, Any], key: str, value: str) -> Change:
    """The config with one dotted key set from text (JSON where it parses, else a plain string).

    Raises ConfigError naming the key when the value is invalid or changes nothing. Changing the
    model drops the old model's options, as the CLI's --model does: they mean nothing to another model.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    key = key.strip()
    if not key:
        raise ConfigError(_("pick the config key to change"))
    new = parse_value(value.strip())
    old = flatten(cfg).get(key)
    if new == old:
        raise ConfigError(_("{key} is already {value}: enter a different value").format(
            key=key,
            value=format_value(old),
        ))
    overrides: dict[str, Any] = {key: new}
    if key == "model.name":
        overrides["model.options"] = {}
    return Change(key, old, new, apply_overrides(cfg, overrides))


def change_name(source_name: str, change: Change) -> str:
    return f"{source_name} · {change.key}={format_value(change.new)}"


def run_again(run_id: str, key: str, value: str, name: str | None = None) -> str:
    """Queue a copy of a stored run with one config key changed; returns the new run's id."""
    record = store.get_run(run_id)
    change = with_change(record.config, key, value)
    return runner.launch(change.config, name or change_name(record.name, change))


# ============================================================================ one chart, two renderers


def chart_series(
    frame: pd.DataFrame,
    groups: Mapping[str, Sequence[str]] | None = None,
    band: str = "minmax",
) -> list[Series]:
    """The lines to draw: one per run, except that each seed group becomes its mean with a band."""
    grouped = {run_id: prefix for prefix, ids in (groups or {}).items() for run_id in ids}
    series: list[Series] = []
    drawn_groups: set[str] = set()
    for run_id, rows in frame.groupby("run_id", sort=False):
        color = PALETTE[len(series) % len(PALETTE)]
        prefix = grouped.get(run_id)
        if prefix is None:
            raw = rows["value"].to_numpy()
            smoothed = rows["smoothed"].to_numpy()
            same = np.allclose(raw, smoothed, equal_nan=True)
            series.append(Series(rows["run"].iloc[0], color, rows["x"].to_numpy(), smoothed, None if same else raw))
        elif prefix not in drawn_groups:
            drawn_groups.add(prefix)
            members = frame[frame["run_id"].isin(groups[prefix])]
            agg = aggregate(members, band)
            n = members["run_id"].nunique()
            series.append(
                Series(_("{group} (mean of {n}, {band})").format(group=prefix, n=n, band=band_label(band)), color,
                       agg["x"].to_numpy(), agg["mean"].to_numpy(), lo=agg["lo"].to_numpy(), hi=agg["hi"].to_numpy(),
                       runs=n)
            )
    return series


def curves_csv(frame: pd.DataFrame, metric: str, x: str) -> bytes:
    """The plotted points as CSV: run_id, run, the x axis, the metric and its smoothed value."""
    _check_choice(metric, METRICS, "metric")
    _check_choice(x, X_AXES, "x")
    out = frame[["run_id", "run", "x", "value", "smoothed"]].rename(
        columns={"x": x, "value": metric, "smoothed": f"{metric}_smoothed"}
    )
    return out.to_csv(index=False).encode()
