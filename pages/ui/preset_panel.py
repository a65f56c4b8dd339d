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
from core.runs.presets import MAX_SEEDS, PRESETS, budgets, launch_plan, plan_preset
from core.training.config import diff
from core.training.device import pick_device
from pages.ui import dataset_picker

state = st.session_state

FOUND = "the data it is written for"  # the dataset choice that lets the preset find its own
BUDGET_LABELS = {
    "course": "the course's recipe (GPU)",
    "classroom": "classroom budget (measured on a 2-core laptop)",
    "longer": "longer budget (shows the effect)",
}


def _setting(value: Any) -> str:
    """A config value for a table cell; a pipeline reads as its ops ("hflip, pad_crop, cutout")."""
    if isinstance(value, list) and all(isinstance(v, dict) and "op" in v for v in value):
        return ", ".join(v["op"] for v in value) or "no augmentation"
    return str(value)


def presets_panel() -> None:
    device = pick_device("auto").type
    name = st.selectbox("Experiment", list(PRESETS), format_func=lambda n: PRESETS[n].title, key="tr_preset",
                        persist_state="session")
    preset = PRESETS[name]
    st.markdown(preset.description)
    cols = st.columns(3)
    offered = budgets(name, device)
    budget = cols[0].selectbox("Budget", offered, format_func=BUDGET_LABELS.get, key=f"tr_preset_budget_{name}",
                               help="On a CUDA GPU the course's own recipe, unchanged; without one a budget found by "
                               "measurement on the real data, and a longer one where the short one does not show the effect.")
    seeds = cols[1].number_input("Seeds per run", min_value=1, max_value=MAX_SEEDS, value=1, key="tr_preset_seeds",
                                 help="Each run trained this many times with run.seed 0, 1, ...: with 3 or more, the "
                                 "comparison says whether the difference is larger than seed noise.")
    uploads = {u.dataset: u for u in list_uploads()}
    choices = [FOUND, *dict.fromkeys([*dataset_picker.dataset_options(available_datasets()), *uploads])]
    dataset = cols[2].selectbox("Data", choices, key="tr_preset_dataset",
                                format_func=lambda d: d if d == FOUND else dataset_picker.label(d, uploads.get(d)),
                                help="By default the preset finds the kind of data it is written for (torchvision's "
                                "files, then a dataset you uploaded as that kind, then an embedded one). Pick any "
                                "dataset to run it on yours instead.")
    plan = plan_preset(name, device, budget=budget, seeds=int(seeds), dataset=None if dataset == FOUND else dataset)
    if not plan.runnable:
        st.warning(plan.blocked, icon=":material/database:")
        st.caption("The section 'Real datasets for the presets' above downloads it or takes your upload.")
    for note in plan.notes:
        st.info(note, icon=":material/info:")
    if plan.runnable:
        _runs_table(plan)
    total = plan.total_runs
    if plan.pretrain is not None:
        st.caption("The runs that start from the pretraining run wait in the queue until it has finished; "
                   "the comparison opens at once and fills in as they train.")
    if st.button(f"Launch these {total} runs and compare them", key="tr-launch-preset", icon=":material/play_arrow:",
                 disabled=not plan.runnable):
        ids = launch_plan(plan)
        state["compare_runs"] = ids
        st.switch_page("pages/compare.py", query_params={"runs": ",".join(ids)})


def _runs_table(plan) -> None:
    first = plan.runs[0][1]
    rows = []
    if plan.pretrain is not None:
        run_name, cfg = plan.pretrain
        rows.append({
            "run": run_name.split(" · ", 1)[-1],
            "model": cfg.model.name,
            "epochs": cfg.run.epochs,
            "seeds": 1,
            "differs from the first run in": "trained first, on its own data; not in the comparison",
        })
    for run_name, cfg in plan.runs:
        changes = diff(first, cfg)
        rows.append({
            "run": run_name.split(" · ", 1)[-1],
            "model": cfg.model.name,
            "epochs": cfg.run.epochs,
            "seeds": plan.seeds,
            "differs from the first run in": "; ".join(f"{k} = {_setting(v[1])}" for k, v in changes.items()) or "—",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True)
