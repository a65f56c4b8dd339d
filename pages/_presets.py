"""The Train page's presets panel: the course's experiments in one click.

The page only draws what core.presets plans (which dataset it took, how it was scaled, the runs
and how they differ) and launches it; the plan itself is core's.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core import trainer
from core.config import diff
from core.data import available_datasets
from core.presets import PRESETS, launch_plan, plan_preset

state = st.session_state


def _setting(value: Any) -> str:
    """A config value for a table cell; a pipeline reads as its ops ("hflip, pad_crop, cutout")."""
    if isinstance(value, list) and all(isinstance(v, dict) and "op" in v for v in value):
        return ", ".join(v["op"] for v in value) or "no augmentation"
    return str(value)


def presets_panel() -> None:
    device = trainer.pick_device("auto").type
    name = st.selectbox("Experiment", list(PRESETS), format_func=lambda n: PRESETS[n].title, key="tr_preset",
                        persist_state="session")
    plan = plan_preset(name, device, available_datasets())
    st.markdown(PRESETS[name].description)
    for note in plan.notes:
        st.info(note, icon=":material/info:")
    first = plan.runs[0][1]
    rows = []
    if plan.pretrain is not None:
        run_name, cfg = plan.pretrain
        rows.append({
            "run": run_name.split(" · ", 1)[-1],
            "model": cfg.model.name,
            "epochs": cfg.run.epochs,
            "differs from the first run in": "trained first, on its own data; not in the comparison",
        })
    for run_name, cfg in plan.runs:
        changes = diff(first, cfg)
        rows.append({
            "run": run_name.split(" · ", 1)[-1],
            "model": cfg.model.name,
            "epochs": cfg.run.epochs,
            "differs from the first run in": "; ".join(f"{k} = {_setting(v[1])}" for k, v in changes.items()) or "—",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    total = len(plan.runs) + (plan.pretrain is not None)
    if plan.pretrain is not None:
        st.caption("The runs that start from the pretraining run wait in the queue until it has finished; "
                   "the comparison opens at once and fills in as they train.")
    if st.button(f"Launch these {total} runs and compare them", key="tr-launch-preset", icon=":material/play_arrow:"):
        ids = launch_plan(plan)
        state["compare_runs"] = ids
        st.switch_page("pages/compare.py", query_params={"runs": ",".join(ids)})
