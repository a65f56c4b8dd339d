"""The Train page's presets panel: the course's experiments in one click.

The page only draws what core.runs.presets plans (which dataset it took and from where, which budget,
the runs and how they differ, what the budget showed when it was measured) and launches it; the
plan itself is core's. A preset whose data is missing says what it needs and how to get it, and
cannot be launched.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.data import available_datasets
from core.data.uploads import list_uploads
from core.i18n import N_, _, tr
from core.lessons import Lesson
from core.runs import store
from core.runs.presets import MAX_SEEDS, PRESETS, budgets, launch_plan, plan_preset
from core.training.config import diff
from core.training.device import pick_device
from pages.ui import dataset_picker

state = st.session_state

# the dataset choice that lets the preset find its own: the option's value, shown through tr()
FOUND = N_("the data it is written for")
BUDGET_LABELS = {  # shown through tr()
    "course": N_("the course's recipe (GPU)"),
    "classroom": N_("classroom budget (measured on a 2-core laptop)"),
    "longer": N_("longer budget (shows the effect)"),
}


def _setting(value: Any) -> str:
    """A config value for a table cell; a pipeline reads as its ops ("hflip, pad_crop, cutout")."""
    if isinstance(value, list) and all(isinstance(v, dict) and "op" in v for v in value):
        return ", ".join(v["op"] for v in value) or _("no augmentation")
    return str(value)


def lesson_from_panel() -> Lesson:
    """The preset as the panel shows it now, for a lesson link."""
    name = state.get("tr_preset") or next(iter(PRESETS))
    dataset = state.get("tr_preset_dataset", FOUND)
    return Lesson(page="train", preset=name, budget=state.get(f"tr_preset_budget_{name}"),
                  seeds=int(state.get("tr_preset_seeds", 1)), data=None if dataset == FOUND else dataset)


def use_lesson(lesson: Lesson) -> None:
    """Set the panel to a lesson link's preset, budget, seeds and data (before it is drawn)."""
    if lesson.preset is None:
        return
    state["tr_preset"] = lesson.preset
    if lesson.budget is not None:
        state[f"tr_preset_budget_{lesson.preset}"] = lesson.budget
    if lesson.seeds is not None:
        state["tr_preset_seeds"] = lesson.seeds
    state["tr_preset_dataset"] = lesson.data or FOUND


def presets_panel(lesson: Lesson | None = None) -> None:
    lesson = lesson or Lesson(page="train")
    locked = not lesson.is_open("preset")
    device = pick_device("auto").type
    name = st.selectbox(_("Experiment"), list(PRESETS), format_func=lambda n: tr(PRESETS[n].title), key="tr_preset",
                        persist_state="session", disabled=locked)
    preset = PRESETS[name]
    st.markdown(tr(preset.description))
    cols = st.columns(3)
    offered = budgets(name, device)
    if state.get(f"tr_preset_budget_{name}", offered[0]) not in offered:  # a lesson's budget for another device
        state[f"tr_preset_budget_{name}"] = offered[0]
    budget = cols[0].selectbox(_("Budget"), offered, format_func=lambda b: tr(BUDGET_LABELS.get(b, b)), key=f"tr_preset_budget_{name}",
                               help=_(
                                   "On a CUDA GPU the course's own recipe, unchanged; without one a budget found by "
                                   "measurement on the real data, and a longer one where the short one does not "
                                   "show the effect."
                               ), disabled=locked)
    seeds = cols[1].number_input(_("Seeds per run"), min_value=1, max_value=MAX_SEEDS, value=1, key="tr_preset_seeds",
                                 help=_(
                                     "Each run trained this many times with run.seed 0, 1, ...: with 3 or more, the "
                                     "comparison says whether the difference is larger than seed noise."
                                 ), disabled=locked)
    uploads = {u.dataset: u for u in list_uploads()}
    choices = [FOUND, *dict.fromkeys([*dataset_picker.dataset_options(available_datasets()), *uploads])]
    if state.get("tr_preset_dataset", FOUND) not in choices:
        st.warning(_("The dataset {name} is not on this machine: the preset finds the data it is written for.").format(
            name=str(state["tr_preset_dataset"])[:80]), icon=":material/database:")
        state["tr_preset_dataset"] = FOUND
    dataset = cols[2].selectbox(_("Data"), choices, key="tr_preset_dataset",
                                format_func=lambda d: tr(FOUND) if d == FOUND else dataset_picker.label(d, uploads.get(d)),
                                help=_(
                                    "By default the preset finds the kind of data it is written for (torchvision's "
                                    "files, then a dataset you uploaded as that kind, then an embedded one). Pick "
                                    "any dataset to run it on yours instead."
                                ), disabled=locked)
    plan = plan_preset(name, device, budget=budget, seeds=int(seeds), dataset=None if dataset == FOUND else dataset)
    if not plan.runnable:
        st.warning(plan.blocked, icon=":material/database:")
        st.caption(_(
            "The section 'Real datasets for the presets' above downloads it or takes your "
            "upload."
        ))
    for note in plan.notes:
        st.info(note, icon=":material/info:")
    if plan.runnable:
        _runs_table(plan)
    total = plan.total_runs
    if plan.pretrain is not None:
        st.caption(_(
            "The runs that start from the pretraining run wait in the queue until it has "
            "finished; the comparison opens at once and fills in as they train."
        ))
    if lesson.shown("preset_launch") and st.button(
            _("Launch these {total} runs and compare them").format(total=total), key="tr-launch-preset",
            icon=":material/play_arrow:", disabled=not plan.runnable):
        try:
            ids = launch_plan(plan)
        except store.QueueFullError as exc:  # nothing was queued
            st.error(str(exc), icon=":material/hourglass_disabled:")
            return
        state["compare_runs"] = ids
        st.switch_page("pages/compare.py", query_params={"runs": ",".join(ids)})


def _runs_table(plan) -> None:
    first = plan.runs[0][1]
    rows = []
    if plan.pretrain is not None:
        run_name, cfg = plan.pretrain
        rows.append({
            _("run"): run_name.split(" · ", 1)[-1],
            _("model"): cfg.model.name,
            _("epochs"): cfg.run.epochs,
            _("seeds"): 1,
            _("differs from the first run in"): _("trained first, on its own data; not in the comparison"),
        })
    for run_name, cfg in plan.runs:
        changes = diff(first, cfg)
        rows.append({
            _("run"): run_name.split(" · ", 1)[-1],
            _("model"): cfg.model.name,
            _("epochs"): cfg.run.epochs,
            _("seeds"): plan.seeds,
            _("differs from the first run in"): "; ".join(f"{k} = {_setting(v[1])}" for k, v in changes.items()) or "—",
        })
    # the column names are the labels a person reads (the table is only shown)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
