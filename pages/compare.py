"""Compare: overlay the curves of any runs and see what differs between them.

Pick runs (the Train page's presets pass theirs in `compare_runs`, a link passes `?runs=id1,id2`;
with nothing picked the page opens on the newest group of runs), choose a metric, an x axis and a
smoothing, and read the table of config differences with the final and best test accuracy
against a baseline, then the verdict: whether each one-setting difference is larger than seed
noise. From here a run can be run again with one change, or repeated over several seeds.
Running runs refresh live. All the numbers come from core.runs.compare and core.runs.verdict; this page
only draws them.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import streamlit as st

from core import figures
from core.i18n import _, tr
from core.augment import get_op
from core.runs import compare, robustness, runner, store, sweep, transfer, verdict
from core.training.config import ConfigError, flatten, parse_value
from pages.ui.messages import flash, show_flashes, stop_unless_the_store_works
from pages.ui.state import init_state, language_switch, owner_field

state = st.session_state
REFRESH_S = 2.0  # live refresh of running runs: fast enough to watch, cheap for the server
SCREEN_POINTS = 1500  # per run on screen (exports keep every point): keeps each refresh light
ACTIVE = ("queued", "running")

# This page's session state is declared with every page's in pages/ui/state.py (STATE).
init_state()
language_switch()
owner_field()
stop_unless_the_store_works()


# ---- the selection ------------------------------------------------------------------------------


def _requested_from_link() -> list[str] | None:
    """The ids in ?runs=a,b (or repeated ?runs=a&runs=b) the first time this link is seen."""
    values = st.query_params.get_all("runs")
    text = ",".join(values)
    if not values or text == state["compare_link"]:
        return None
    state["compare_link"] = text
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _sync_selection(runs: Any) -> None:
    """Bring the picker in line with what was asked for, dropping (and naming) runs that do not exist.

    With nothing asked for, the newest group of runs (core.runs.compare.newest_group), followed as new
    runs appear until the user picks runs themselves.
    """
    known = set(runs["id"])
    requested = _requested_from_link()
    if requested is not None:
        state["compare_runs"] = requested
    following = state["compare_auto"] is not None and state["compare_runs"] == state["compare_auto"].run_ids
    if requested is None and (following or not (state["compare_runs"] or state["compare_emptied"])):
        state["compare_auto"] = compare.newest_group(runs)
        state["compare_runs"] = list(state["compare_auto"].run_ids)
    wanted = list(dict.fromkeys(state["compare_runs"]))
    missing = [run_id for run_id in wanted if run_id not in known]
    if missing:
        st.warning(
            _(
                "Ignored {n_missing} run id(s) that are not in the store (deleted, or from "
                "another machine): {run_ids}"
            ).format(
                n_missing=len(missing),
                run_ids=", ".join(missing),
            ),
            icon=":material/warning:",
        )
        wanted = [run_id for run_id in wanted if run_id in known]
        state["compare_runs"] = wanted
    if state.get("compare_pick") != wanted:
        state["compare_pick"] = wanted


def _picked() -> None:
    state["compare_runs"] = list(state["compare_pick"])
    state["compare_emptied"] = not state["compare_runs"]


def _select(run_ids: list[str]) -> None:
    """Add runs to the selection (from a callback, before the picker is drawn)."""
    state["compare_runs"] = list(dict.fromkeys([*state["compare_runs"], *run_ids]))
    state["compare_pick"] = state["compare_runs"]


def _unselect(run_id: str) -> None:
    state["compare_runs"] = [r for r in state["compare_runs"] if r != run_id]
    state["compare_pick"] = state["compare_runs"]
    state["compare_emptied"] = not state["compare_runs"]


def _write_link(selection: list[str]) -> None:
    """Keep ?runs= in the address bar equal to the selection, so the page can be shared or bookmarked."""
    text = ",".join(selection)
    if st.query_params.get("runs", "") != text:
        if text:
            st.query_params["runs"] = text
        else:
            del st.query_params["runs"]
    state["compare_link"] = text or None


# ---- actions (widget callbacks: they run before the page is drawn) ------------------------------


def _rename(run_id: str, key: str) -> None:
    try:
        store.rename(run_id, state[key])
    except (ValueError, store.UnknownRunError) as e:
        flash("error", _("Could not rename the run: {error}").format(error=e))
        return
    flash("success", _("Renamed to “{name}”.").format(name=state[key].strip()))


def _delete(run_id: str, name: str) -> None:
    try:
        store.delete(run_id)
    except (ValueError, store.UnknownRunError) as e:
        flash("error", _("Could not delete “{name}”: {error}").format(name=name, error=e))
        return
    _unselect(run_id)
    flash("success", _("Deleted “{name}” with its metrics and files.").format(name=name))


def _stop(run_id: str) -> None:
    runner.stop(run_id)
    flash("info", _("Stop requested: a running run ends at its next step, a queued one never starts."))


def _run_again(run_id: str, key: str, value: str, name: str) -> None:
    try:
        new_id = compare.run_again(run_id, key, value, name.strip() or None)
    except (ConfigError, store.UnknownRunError, store.QueueFullError) as e:
        flash("error", _("Not launched: {error}").format(error=e))
        return
    _select([new_id])
    flash("success", _("Launched “{name}” ({status}).").format(
        name=store.get_run(new_id).name,
        status=store.get_run(new_id).status,
    ))


def _repeat_seeds(run_id: str, n: int, first_seed: int, prefix: str) -> None:
    try:
        ids = compare.launch_seeds(store.get_run(run_id).config, n, first_seed, prefix)
    except (ConfigError, store.UnknownRunError, store.QueueFullError) as e:
        flash("error", _("Not launched: {error}").format(error=e))
        return
    _select(ids)
    state["compare_grouped"] = True
    flash(
        "success",
        _(
            "Queued {n_ids} runs “{group}” with seeds {first_seed}..{last_seed}; "
            "{max_concurrent} train(s) at a time, the others wait in the queue."
        ).format(
            n_ids=len(ids),
            group=prefix.strip(),
            first_seed=first_seed,
            last_seed=first_seed + n - 1,
            max_concurrent=runner.max_concurrent(),
        ),
    )


def _repeat_for_verdict(selection: list[str], baseline: str | None) -> None:
    """Launch the seeds the one-seed comparisons miss (planned afresh: runs may have ended meanwhile)."""
    try:
        plan = verdict.repeat_plan(verdict.verdicts(selection, baseline))
        ids = verdict.repeat_over_seeds(plan)
    except (ConfigError, store.UnknownRunError, ValueError) as e:
        flash("error", _("Not launched: {error}").format(error=e))
        return
    _select(ids)
    state["compare_grouped"] = True
    flash("success", verdict.text("repeat_queued").format(n=len(ids), groups="; ".join(r.text for r in plan)))


# ---- drawing ------------------------------------------------------------------------------------


def _value_text(value: Any) -> str:
    """A config value as the text that parses back to it (strings plain, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def _draw_live(selection: list[str], metric: str, x: str, smoothing: float, grouped: bool, band: str,
               baseline: str | None, refreshing: bool) -> None:
    """Chart, table and exports: everything that changes while runs train."""
    records, unused = compare.load_runs(selection)
    ids = list(records)
    if not ids:
        st.info(_("The selected runs were deleted meanwhile."), icon=":material/info:")
        return
    if any(records[i].status == "queued" for i in ids):
        runner.tick()  # a queue whose trainer died would otherwise wait for the next launch
    labels = compare.run_labels({i: records[i].name for i in ids})
    metric_label, x_label = compare.metric_label(metric), compare.x_label(x)
    frame = compare.curves(ids, metric, x, smoothing, labels)
    groups = compare.seed_groups({i: records[i].name for i in ids}) if grouped and x != "wall" else {}
    series = compare.chart_series(compare.thin(frame, SCREEN_POINTS), groups, band)
    title = _("{metric} by {x_axis}").format(metric=metric_label, x_axis=x_label.lower())

    if frame.empty:
        st.info(_("No {metric} recorded yet for the selected runs.").format(metric=metric_label.lower()),
                icon=":material/hourglass_empty:")
    else:
        # the chart's camera button downloads it as a PNG (plotly's own export, in the browser)
        st.plotly_chart(
            figures.comparison(series, x_label=x_label, y_label=metric_label),
            config=figures.export_config(f"auglab_{metric}_by_{x}"), key="compare_chart",
        )
    if grouped and x == "wall":
        st.caption(_(
            "Seed groups are drawn run by run on the wall-time axis: their runs share epochs "
            "and steps, not times."
        ))
    waiting = [labels[i] for i in ids if not (frame["run_id"] == i).any()]
    if waiting and not frame.empty:
        st.caption(_("Nothing to draw yet for: {runs}.").format(runs=", ".join(waiting)))

    try:
        table = compare.compare_table(ids, baseline)
    except store.UnknownRunError:  # deleted from another tab since the line above read it
        st.info(_("A selected run was just deleted; the page updates at its next refresh."), icon=":material/info:")
        return
    # the table's columns are core's data keys: a person reads the labels given here
    column_config = {
        "run": st.column_config.TextColumn(_("run")),
        "status": st.column_config.TextColumn(_("status")),
        "id": st.column_config.TextColumn(_("id")),
        "final test acc": st.column_config.NumberColumn(
            _("final test acc"), format="percent", help=_("Test accuracy at the latest evaluation")
        ),
        "best test acc": st.column_config.NumberColumn(
            _("best test acc"), format="percent", help=_("Best test accuracy over the evaluations")
        ),
    }
    for column, label in (("Δ final vs baseline", _("Δ final vs baseline")), ("Δ best vs baseline", _("Δ best vs baseline"))):
        if column in table:
            table[column] = table[column] * 100
            column_config[column] = st.column_config.NumberColumn(
                label, format="%+.2f pp", help=_("Percentage points above (+) or below (−) the baseline run")
            )
    differing = table.attrs["differing"]
    if differing:
        st.markdown(_("**What differs:** {keys}").format(keys=", ".join(f"`{c}`" for c in differing)))
    elif len(ids) > 1:
        st.markdown(_("**What differs:** nothing; the configs are identical."))
    else:
        st.markdown(_("**One run selected:** add another to see what differs."))
    # the id last: needed for the CLI (e.g. a teacher run), but the name is what a reader scans
    table = table.reset_index()
    table = table[[c for c in table.columns if c != "id"] + ["id"]]
    # "—" where a run has no value yet (no evaluation so far), rather than Streamlit's "None"
    st.dataframe(table, column_config=column_config, hide_index=True, key="compare_table", placeholder="—")
    if groups:
        summary = compare.group_summary(groups).rename(
            columns={"mean_final_test_acc": "mean", "std_final_test_acc": "std", "min_final_test_acc": "min",
                     "max_final_test_acc": "max"}
        )
        st.markdown(_(
            "**Seed groups** (final test accuracy): the verdict below says whether two "
            "configs differ by more than seed noise."
        ))
        st.dataframe(
            summary,
            hide_index=True,
            placeholder="—",
            column_config={
                "group": st.column_config.TextColumn(_("group")),
                "runs": st.column_config.NumberColumn(_("runs")),
                "evaluated": st.column_config.NumberColumn(_("evaluated")),
                "mean": st.column_config.NumberColumn(_("mean"), format="percent"),
                "std": st.column_config.NumberColumn(_("std"), format="percent"),
                "min": st.column_config.NumberColumn(_("min"), format="percent"),
                "max": st.column_config.NumberColumn(_("max"), format="percent"),
            },
            key="compare_groups_table",
        )

    if refreshing:
        st.caption(_(
            ":material/autorenew: Live: redrawn every {refresh_s:g} s while a selected run "
            "is queued or training."
        ).format(
            refresh_s=REFRESH_S,
        ))
    exports = st.container(horizontal=True)
    exports.download_button(
        _("Curves as CSV"), compare.curves_csv(frame, metric, x), file_name=f"auglab_{metric}_by_{x}.csv",
        mime="text/csv", icon=":material/download:", on_click="ignore", disabled=frame.empty,
    )
    exports.download_button(
        _("Chart as HTML"),
        # written only when clicked: a live refresh every few seconds should not redraw a page nobody asked for
        lambda: figures.to_html(figures.comparison(series, title=title, x_label=x_label, y_label=metric_label),
                                config=figures.export_config(f"auglab_{metric}_by_{x}")),
        file_name=f"auglab_{metric}_by_{x}.html", mime="text/html", icon=":material/image:", on_click="ignore",
        disabled=frame.empty, help=_("An interactive copy of the chart that opens offline in any browser; "
                                     "the chart's camera button saves it as a PNG."),
    )
    export_button(exports, records)
    if refreshing and not any(records[i].status in ACTIVE for i in ids):
        st.rerun()  # the last run ended: redraw the whole page once, which turns the refresh off


def _verdict(selection: list[str], baseline: str | None) -> None:
    """One sentence per pair of configs one setting apart: beyond or within seed noise, or one seed."""
    text = verdict.text
    try:
        report = verdict.verdicts(selection, baseline)
    except ValueError:  # the baseline run was deleted from another tab since the picker was drawn
        report = verdict.verdicts(selection)
    st.subheader(text("title"))
    st.caption(f"**{text('method')}.** {text('method_plain')}", help=text("method_help"))
    show = {"beyond": st.success, "within": st.info, "one_seed": st.warning, "no_spread": st.warning}
    icons = {"beyond": ":material/check_circle:", "within": ":material/info:", "one_seed": ":material/casino:",
             "no_spread": ":material/warning:"}
    if any(c.against_baseline for c in report.comparisons):
        st.caption(text("baseline").format(label=report.baseline.title, n=report.baseline.n))
    for c in report.comparisons:
        show[c.verdict.kind](c.verdict.sentence, icon=icons[c.verdict.kind])
    if not report.comparisons and not report.waiting:
        st.info(text("none"), icon=":material/info:")
    notes = []
    if report.waiting:
        notes.append(text("waiting").format(labels=", ".join(f"“{g.title}”" for g in report.waiting)))
    if report.unmatched and (report.comparisons or report.waiting):
        notes.append(text("unmatched").format(labels=", ".join(f"“{g.title}”" for g in report.unmatched)))
    if report.pending:
        notes.append(text("pending").format(n=len(report.pending)))
    if report.excluded:
        notes.append(text("excluded").format(n=len(report.excluded)))
    if report.repeats:
        notes.append(text("repeats").format(n=len(report.repeats)))
    for note in notes:
        st.caption(note)
    if report.one_seed:
        plan = verdict.repeat_plan(report)
        st.caption(text("repeat_plan").format(runs="; ".join(r.text for r in plan), total=verdict.SEEDS_FOR_A_VERDICT)
                   if plan else text("repeat_training"))
        st.button(text("repeat_button"), key="compare_verdict_repeat", icon=":material/stacks:", disabled=not plan,
                  on_click=_repeat_for_verdict, args=(selection, baseline))


def _sweep(selection: list[str]) -> None:
    """Final test accuracy against the one setting the picked runs differ in, when they make a sweep."""
    try:
        found = sweep.sweep_of(selection)
    except (ValueError, KeyError, TypeError):  # a config this version cannot read (an imported run): no sweep view
        return
    if found is None:
        return
    st.subheader(_("Sweep: {label}").format(label=found.label))
    points = found.points
    st.plotly_chart(figures.sweep([p.value for p in points], [p.mean for p in points], [p.low for p in points],
                                  [p.high for p in points], found.best.value, label=found.label),
                    key="compare-sweep-chart")
    best = found.best
    st.markdown(_("Best: **{label} = {value}**, {mean:.1%} mean final test accuracy over {n} seed(s).").format(
        label=found.label, value=sweep.value_name(best.value), mean=best.mean, n=best.n))
    if found.verdict is not None:
        show = {"beyond": st.success, "within": st.info}.get(found.verdict.kind, st.warning)
        show(found.verdict.sentence)
    if found.pending:
        st.caption(_("{n} run(s) of the sweep are still queued or training.").format(n=found.pending))


def _launch_sweep(run_id: str, setting: str, values_text: str, seeds: int) -> None:
    try:
        values = [float(v) for v in values_text.replace(";", ",").split(",") if v.strip()]
        ids = sweep.launch_sweep(store.get_run(run_id).config, setting, values, seeds)
    except (ValueError, ConfigError, store.UnknownRunError, store.QueueFullError) as e:
        flash("error", _("Not launched: {error}").format(error=e))
        return
    _select(ids)
    state["compare_grouped"] = True
    flash("success", _("Queued a sweep of {n_ids} runs: {n_values} values × {seeds} seeds.").format(
        n_ids=len(ids), n_values=len(ids) // seeds, seeds=seeds))


def _sweep_settings(config: dict) -> dict[str, str]:
    """What a sweep may vary in this config, setting -> its name in words: the mixing and
    smoothing tricks, and every number of every step of its training pipeline."""
    settings = {key: sweep.setting_label(config, key) for key in sweep.TRICK_SETTINGS}
    for index, step in enumerate(config["augment"]["train"]):
        op = get_op(step["op"])
        for param in op.params:
            if param.kind in ("int", "float"):
                key = f"augment.train[{index}].{param.name}"
                settings[key] = sweep.setting_label(config, key)
            elif param.kind == "float_range":
                for end in (0, 1):
                    key = f"augment.train[{index}].{param.name}[{end}]"
                    settings[key] = sweep.setting_label(config, key)
    return settings


@st.cache_data(max_entries=16, show_spinner=False)
def _probe(run_ids: tuple[str, ...], corruption: str, ended: tuple) -> Any:
    """The probe's table, computed once per set of runs and corruption (ended: the runs' end times,
    so a run trained again under its id is probed again)."""
    return robustness.probe(list(run_ids), corruption)


def _robustness(records: dict[str, store.RunRecord], labels: dict[str, str]) -> None:
    """Test accuracy against the strength of a test-time corruption, one curve per run."""
    st.subheader(_("Robustness: accuracy on corrupted test images"))
    ready = [run_id for run_id, record in records.items() if robustness.probeable(record)]
    if not ready:
        st.caption(_("Runs with a trained model (finished, or stopped with their weights) can be probed."))
        return
    cols = st.columns([2, 4, 1], vertical_alignment="bottom")
    kind = cols[0].selectbox(_("Corruption"), list(robustness.CORRUPTIONS), key="compare_probe_kind",
                             format_func=lambda name: tr(robustness.CORRUPTIONS[name].label))
    corruption = robustness.CORRUPTIONS[kind]
    cols[1].caption(_("Strengths {strengths} ({unit}), on at most {n:,} test images of each run; every run sees the "
                      "same corrupted images. The corruptions are the augmentation ops with their strength fixed.").format(
        strengths=", ".join(f"{s:g}" for s in corruption.strengths), unit=tr(corruption.unit), n=robustness.MAX_IMAGES))
    wanted = (tuple(ready), kind)
    if cols[2].button(_("Probe"), key="compare_probe", icon=":material/science:"):
        state["compare_probe_shown"] = wanted
    if state["compare_probe_shown"] != wanted:
        st.caption(_("Press Probe to measure the {n} run(s) with a model.").format(n=len(ready)))
        return
    try:
        with st.spinner(_("Probing {n} run(s)…").format(n=len(ready))):
            table = _probe(tuple(ready), kind, tuple(str(records[r].ended) for r in ready))
    except Exception as exc:  # a dataset that no longer loads, a model that cannot be rebuilt
        st.error(_("The probe could not run: {error_type}: {error}").format(error_type=type(exc).__name__, error=exc))
        return
    series = [
        figures.Series(name=labels[run_id], color=figures.PALETTE[i % len(figures.PALETTE)],
                       x=rows["strength"].to_numpy(), y=rows["accuracy"].to_numpy())
        for i, (run_id, rows) in enumerate((r, table[table["run_id"] == r]) for r in ready)
    ]
    fig = figures.comparison(series, title=_("{corruption}: test accuracy").format(corruption=tr(corruption.label)),
                             x_label=tr(corruption.unit), y_label=_("test accuracy"))
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    st.plotly_chart(fig, key="compare-probe-chart")
    st.dataframe(table.assign(run=table["run_id"].map(labels)).pivot(index="strength", columns="run", values="accuracy"),
                 column_config={labels[r]: st.column_config.NumberColumn(format="percent") for r in ready})


def _manage(records: dict[str, store.RunRecord], labels: dict[str, str]) -> None:
    """Rename, delete, run again with one change, repeat over seeds: on one run of the selection."""
    st.subheader(_("Work with a run"))
    target = st.selectbox(_("Run"), list(records), format_func=labels.get, key="compare_target")
    record = records[target]
    rename_tab, again_tab, seeds_tab, sweep_tab = st.tabs(
        [_("Rename or delete"), _("Run again with one change"), _("Repeat over seeds"), _("Sweep one setting")])

    with rename_tab:
        name_key = f"compare_name_{target}"
        cols = st.columns([3, 1], vertical_alignment="bottom")
        cols[0].text_input(_("Name"), value=record.name, key=name_key)
        cols[1].button(_("Rename"), key="compare_rename", on_click=_rename, args=(target, name_key))
        if record.status in ACTIVE:
            st.caption(_("This run is {status}: stop it before deleting it.").format(status=record.status))
            st.button(_("Stop run"), key="compare_stop", icon=":material/stop:", on_click=_stop, args=(target,))
        else:
            confirmed = st.checkbox(
                _("Yes, delete “{name}” with its metrics and files").format(name=record.name), key=f"compare_confirm_{target}"
            )
            st.button(
                _("Delete run"), key="compare_delete", type="primary", icon=":material/delete:", disabled=not confirmed,
                on_click=_delete, args=(target, record.name),
            )

    with again_tab:
        flat = flatten(record.config)
        keys = list(flat)
        cols = st.columns([2, 2, 2], vertical_alignment="bottom")
        key = cols[0].selectbox(
            _("Config key"), keys, index=keys.index("optim.lr") if "optim.lr" in keys else 0, key="compare_change_key",
            help=_("Every setting of the run, by its dotted name (as in the CLI's --set)."),
        )
        value = cols[1].text_input(
            _("New value"), value=_value_text(flat[key]), key=f"compare_change_value_{target}_{key}",
            help=_(
                "JSON where it parses (0.1, true, null, [0.5, 0.75]); any other text is taken as "
                "a string."
            ),
        )
        name = cols[2].text_input(_("Name (optional)"), key=f"compare_change_name_{target}", placeholder=_("automatic"))
        change = None
        if parse_value(value.strip()) == flat[key]:
            st.caption(_("Enter a new value for `{key}` (it is {value_text} in “{name}”).").format(
                key=key,
                value_text=_value_text(flat[key]),
                name=record.name,
            ))
        else:
            try:
                change = compare.with_change(record.config, key, value)
            except ConfigError as e:
                st.error(str(e), icon=":material/error:")
        if change is not None:
            st.caption(_("Change: `{text}`; everything else as in “{name}”.").format(text=change.text, name=record.name))
        st.button(
            _("Launch with this change"), key="compare_launch_change", icon=":material/play_arrow:",
            disabled=change is None, on_click=_run_again, args=(target, key, value, name),
        )

    with seeds_tab:
        seed = record.config["run"]["seed"]
        cols = st.columns([1, 1, 2], vertical_alignment="bottom")
        n = cols[0].number_input(_("Seeds"), 2, compare.MAX_SEEDS, 3, key=f"compare_seed_n_{target}")
        first = cols[1].number_input(_("First seed"), 0, 2**53 - 1, seed, key=f"compare_seed_first_{target}")
        prefix = cols[2].text_input(
            _("Group name"), value=compare.seed_group(record.name) or record.name, key=f"compare_seed_prefix_{target}",
            help=_("The runs are named “<group>{seed_separator}<seed>”; runs named so form a group.").format(
                seed_separator=compare.SEED_SEPARATOR,
            ),
        )
        st.caption(
            _(
                "Trains this config {n} times with run.seed = {first}..{last} (data.seed stays "
                "{seed}, so every run is tested on the same images). The chart then shows their "
                "mean with a band."
            ).format(
                n=n,
                first=first,
                last=first + n - 1,
                seed=record.config["data"]["seed"],
            )
        )
        st.button(
            _("Launch {n} runs").format(n=n), key="compare_launch_seeds", icon=":material/stacks:",
            disabled=not prefix.strip(), on_click=_repeat_seeds, args=(target, int(n), int(first), prefix),
        )


    with sweep_tab:
        settings = _sweep_settings(record.config)
        cols = st.columns([3, 3, 1], vertical_alignment="bottom")
        setting = cols[0].selectbox(_("Setting"), list(settings), format_func=settings.get, key=f"compare_sweep_setting_{target}")
        current = sweep.setting_value(record.config, setting)
        values = cols[1].text_input(_("Values"), key=f"compare_sweep_values_{target}_{setting}",
                                    placeholder=_("e.g. 0, 0.05, 0.1, 0.2"),
                                    help=_("At least {n}, separated by commas; this run has {value}.").format(
                                        n=sweep.MIN_VALUES, value=_value_text(current)))
        seeds = cols[2].number_input(_("Seeds"), 1, compare.MAX_SEEDS, 3, key=f"compare_sweep_seeds_{target}")
        st.caption(_("Trains this config at each value, {seeds} seed(s) each, everything else unchanged; with the runs "
                     "finished, the page plots final test accuracy against {label} with a band and says whether the best "
                     "value is beyond seed noise.").format(seeds=seeds, label=settings[setting]))
        st.button(_("Launch the sweep"), key="compare_launch_sweep", icon=":material/tune:", disabled=not values.strip(),
                  on_click=_launch_sweep, args=(target, setting, values, int(seeds)))


# ---- runs that travel ---------------------------------------------------------------------------


def _import_file() -> None:
    """The uploaded run file into the store (all its runs or, refused, none), then selected."""
    file = state["compare_import"]
    if file is None:
        return
    _imported(file.name, lambda: transfer.import_runs(file.getvalue()))


def _open_recorded(recorded: transfer.Recorded) -> None:
    _imported(recorded.path.name, lambda: transfer.open_recorded(recorded))


def _imported(file: str, do_import: Callable[[], transfer.ImportResult]) -> None:
    """Import (all of a file's runs or, refused, none), say what happened and select its runs."""
    try:
        result = do_import()
    except (transfer.TransferError, OSError) as exc:
        flash("error", _("{file} was not imported, and nothing changed: {reason}").format(file=file, reason=exc))
        return
    if result.added:
        flash("success", _("Imported {n} runs from {file}.").format(n=len(result.added), file=file))
    if result.skipped:
        flash("info", _("{n} runs of {file} were here already and were left as they are.").format(
            n=len(result.skipped), file=file))
    state["compare_runs"] = [*result.added, *result.skipped]
    state["compare_auto"] = None
    state["compare_emptied"] = False


def recorded_panel(empty: bool) -> None:
    """The course's experiments recorded with this project on real data: open them without training."""
    recorded = transfer.recorded_runs()
    if not recorded:
        return
    with st.expander(_("Recorded runs of the course's experiments"), icon=":material/history_edu:", expanded=empty):
        st.caption(_(
            "Trained with this project on real data (CIFAR-10 at the presets' classroom budget, 3 seeds a run) "
            "and shipped with it: they open here with their curves and verdict, and replay on the Train page, "
            "with no training and no network."
        ))
        for item in recorded:
            cols = st.columns([4, 1], vertical_alignment="center")
            cols[0].markdown(_("**{title}** · {n} runs").format(title=tr(item.title), n=item.runs))
            cols[1].button(_("Open"), key=f"compare_recorded_{item.key}", on_click=_open_recorded, args=(item,),
                           icon=":material/folder_open:")


def import_panel() -> None:
    with st.expander(_("Import runs from a file"), icon=":material/upload_file:"):
        st.file_uploader(
            _("A run file exported from the Compare page ({suffix})").format(suffix=transfer.SUFFIX),
            type=["zip"], key="compare_import", on_change=_import_file,
            help=_("Its runs appear here with their curves, configs and verdicts, as on the machine that trained "
                   "them. Every part of the file is checked first; a bad file is refused and changes nothing."),
        )


def export_button(container, records: dict[str, store.RunRecord]) -> None:
    """The selected ended runs as one file, for another machine; weights included when asked."""
    ended = [i for i, r in records.items() if r.is_final]
    weights = state.get("compare_export_weights", False)
    container.download_button(
        _("Runs as a file"),
        # packed only when clicked: a live refresh should not zip runs nobody asked for
        lambda: transfer.export_runs(ended, weights=weights), file_name=transfer.export_name(
            [records[i].name for i in ended] or ["runs"]),
        mime="application/zip", icon=":material/archive:", on_click="ignore", disabled=not ended,
        help=_("The selected ended runs (config, metrics, log{weights}) as one file that another machine imports "
               "above: {n} of {total} selected.").format(
            weights=_(", weights") if weights else "", n=len(ended), total=len(records)),
    )
    container.toggle(_("with weights"), key="compare_export_weights",
                     help=_("Include each run's trained weights, so the other machine can predict with it or "
                            "fine-tune from it (larger file)."))


# ---- the page -----------------------------------------------------------------------------------

st.title(_("Compare runs"))
show_flashes()
runner.tick()
runs = store.list_runs()
recorded_panel(runs.empty)
import_panel()
if runs.empty:
    st.info(_("No runs yet. Start one on the Train page, then come back to compare."), icon=":material/info:")
    st.page_link("pages/train.py", label=_("Go to Train"), icon=":material/model_training:")
    st.stop()

names = dict(zip(runs["id"], runs["name"]))
statuses = dict(zip(runs["id"], runs["status"]))
_sync_selection(runs)
st.multiselect(
    _("Runs"),
    list(names),
    format_func=lambda run_id: f"{names[run_id]} · {statuses[run_id]} · {run_id[-6:]}",
    key="compare_pick",
    on_change=_picked,
    placeholder=_("Pick runs to compare"),
)
all_groups = compare.seed_groups(names)
if all_groups:
    cols = st.columns([3, 1], vertical_alignment="bottom")
    group = cols[0].selectbox(_("Seed group"), list(all_groups), key="compare_group_pick",
                              format_func=lambda g: _("{group} ({n} runs)").format(group=g, n=len(all_groups[g])))
    cols[1].button(_("Add its runs"), key="compare_add_group", on_click=_select, args=(all_groups[group],))
selection = list(state["compare_pick"])
_write_link(selection)
auto = state["compare_auto"]
if selection and auto is not None and selection == auto.run_ids:
    st.info(
        _("Opened on the newest runs, “{group}” ({n_selection} runs). Pick others above.").format(
            group=auto.group,
            n_selection=len(selection),
        ) if auto.group else _("Opened on the latest runs ({n_selection}). Pick others above.").format(n_selection=len(selection)),
        icon=":material/history:",
    )
if not selection:
    st.info(_("Pick one or more runs above to compare their curves and configs."), icon=":material/info:")
    st.stop()

records, unused = compare.load_runs(selection)
labels = compare.run_labels({i: r.name for i, r in records.items()})
controls = st.columns([2, 3, 2], vertical_alignment="bottom")
metric = controls[0].selectbox(
    _("Metric"), list(compare.METRICS), format_func=compare.metric_label, key="compare_metric"
)
x_axis = controls[1].radio(
    _("X axis"), list(compare.X_AXES), format_func=compare.x_label, horizontal=True, key="compare_x"
)
smoothing = controls[2].slider(
    _("Smoothing"), 0.0, 0.99, 0.0, 0.01, key="compare_smoothing",
    help=_(
        "Exponential moving average as in TensorBoard: 0 shows the recorded values; "
        "hover shows both."
    ),
)
controls = st.columns([2, 3, 2], vertical_alignment="bottom")
baseline = controls[0].selectbox(_("Baseline"), list(records), format_func=labels.get, key="compare_baseline",
                                 help=_(
                                     "The table gives every run's accuracy minus this run's; the verdict compares the "
                                     "other configs with this run's config."
                                 ))
grouped = controls[1].toggle(_("Seed groups as mean and band"), key="compare_grouped",
                             help=_("Runs named “<group>{seed_separator}<seed>” are drawn as one line.").format(
                                 seed_separator=compare.SEED_SEPARATOR,
                             ))
band = controls[2].radio(_("Band"), list(compare.BANDS), format_func=compare.band_label, horizontal=True,
                         key="compare_band", disabled=not grouped)

refreshing = any(r.status in ACTIVE for r in records.values())


@st.fragment(run_every=REFRESH_S if refreshing else None)
def live() -> None:
    _draw_live(selection, metric, x_axis, smoothing, grouped, band, baseline, refreshing)


live()
if len(records) > 1:
    _verdict(selection, baseline)
_sweep(selection)
_robustness(records, labels)
_manage(records, labels)
