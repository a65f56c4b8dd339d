"""The pipeline editor, one for the Lab and the Train page: a card per step, and an "add" row.

Each page keeps its own pipeline under its own prefix ("lab", "tr"): `<prefix>_pipeline`, one
stable id per step in `<prefix>_step_ids`, and `<prefix>_add_op` for the augmentation to add.
Widget keys use the step's id, so a step keeps its widgets when it moves, and a pipeline that
replaces the whole list gets fresh widgets seeded from its values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.augment import GROUPS, REGISTRY, AugmentError, Pipeline, get_op
from core.i18n import _, tr
from pages.ui.messages import show_error
from pages.ui.widgets import param_widget

state = st.session_state


def short(value: Any) -> str:
    """A parameter value in a few characters, for a folded step's summary line."""
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(short(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class PipelineEditor:
    prefix: str  # "lab" or "tr": whose pipeline, and the start of every key
    folded: bool = False  # each step's settings in an expander under a one-line summary

    @property
    def key(self) -> str:
        return f"{self.prefix}_pipeline"

    @property
    def pipeline(self) -> Pipeline:
        return state[self.key]

    # ---- changes (callbacks: they run before the page is drawn) -----------------------------

    def set(self, pipeline: Pipeline) -> None:
        """Replace the whole pipeline; fresh step ids give fresh widgets seeded from its values."""
        first = state.get(f"{self.prefix}_next_step_id", 0)
        state[self.key] = pipeline
        state[f"{self.prefix}_step_ids"] = list(range(first, first + len(pipeline.steps)))
        state[f"{self.prefix}_next_step_id"] = first + len(pipeline.steps)

    def add(self) -> None:
        state[self.key] = self.pipeline.added(state[f"{self.prefix}_add_op"])
        state[f"{self.prefix}_step_ids"] = [*self._ids(), state[f"{self.prefix}_next_step_id"]]
        state[f"{self.prefix}_next_step_id"] += 1

    def remove(self, step_id: int) -> None:
        ids = self._ids()
        i = ids.index(step_id)
        state[self.key] = self.pipeline.removed(i)
        state[f"{self.prefix}_step_ids"] = ids[:i] + ids[i + 1:]

    def move(self, step_id: int, offset: int) -> None:
        ids = list(self._ids())
        i = ids.index(step_id)
        moved = self.pipeline.moved(i, offset)
        if moved is not self.pipeline:
            ids[i], ids[i + offset] = ids[i + offset], ids[i]
            state[self.key], state[f"{self.prefix}_step_ids"] = moved, ids

    def _ids(self) -> list[int]:
        return list(state[f"{self.prefix}_step_ids"])

    # ---- drawing -------------------------------------------------------------------------------

    def draw(self, locked: bool = False) -> Pipeline:
        """Every step's card, then the add row; returns the pipeline as edited in this run.
        locked: every widget shown but disabled, and no add row (a lesson link's lock)."""
        pipeline = self.pipeline
        if len(self._ids()) != len(pipeline.steps):
            self.set(pipeline)
        edited = pipeline
        for i, (step, step_id) in enumerate(zip(pipeline.steps, self._ids())):
            params, enabled = self._step_card(i, len(pipeline.steps), step, step_id, locked)
            if params != step.params or enabled != step.enabled:
                try:
                    edited = edited.updated(i, params=params, enabled=enabled)
                except AugmentError as e:
                    show_error(_("Step {number} keeps its previous settings").format(number=i + 1), e)
        state[self.key] = edited
        if not locked:
            self._add_row()
        return edited

    def _step_card(self, index: int, count: int, step, step_id: int, locked: bool) -> tuple[dict, bool]:
        """On/off switch, move and remove buttons, and a widget per declared parameter."""
        op = get_op(step.op)
        prefix = f"{self.prefix}-step{step_id}-{step.op}"
        with st.container(border=True):
            st.markdown(f"**{index + 1}. {tr(op.label)}**", help=tr(op.help))
            with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
                if f"{prefix}-enabled" not in state:
                    state[f"{prefix}-enabled"] = step.enabled
                enabled = st.toggle(_("on"), key=f"{prefix}-enabled", disabled=locked)
                for name, label, icon, action, args, disabled in (
                    ("up", _("Up"), "arrow_upward", self.move, (step_id, -1), index == 0),
                    ("down", _("Down"), "arrow_downward", self.move, (step_id, 1), index == count - 1),
                    ("remove", _("Remove"), "delete", self.remove, (step_id,), False),
                ):
                    st.button(
                        "", icon=f":material/{icon}:", key=f"{prefix}-{name}", type="tertiary", help=label,
                        on_click=action, args=args, disabled=disabled or locked,
                    )
            if not op.params:
                return {}, enabled
            if self.folded:
                summary = st.empty()  # filled below, once this run's widget values are known
                # A fixed label: an expander whose label changed would be a new one, closed after every edit.
                with st.expander(_("Settings")):
                    params = self._param_widgets(op, step, prefix, enabled and not locked)
                summary.caption(", ".join(f"{k} = {short(v)}" for k, v in params.items()))
            else:
                params = self._param_widgets(op, step, prefix, enabled and not locked)
        return params, enabled

    @staticmethod
    def _param_widgets(op, step, prefix: str, enabled: bool) -> dict:
        return {p.name: param_widget(p, f"{prefix}-{p.name}", step.params[p.name], not enabled) for p in op.params}

    def _add_row(self) -> None:
        ops = sorted(REGISTRY.values(), key=lambda op: (GROUPS.index(op.group), op.label))
        row = st.columns([3, 1], vertical_alignment="bottom") if self.folded else (st.container(), st.container())
        row[0].selectbox(
            _("Augmentation to add"), [op.name for op in ops], key=f"{self.prefix}_add_op",
            format_func=lambda name: f"{tr(get_op(name).group)} · {tr(get_op(name).label)}",
        )
        if not self.folded:
            chosen = get_op(state[f"{self.prefix}_add_op"])
            paper = " " + _("[paper]({url})").format(url=chosen.paper) if chosen.paper else ""
            row[0].caption(tr(chosen.help) + paper)
        row[1].button(_("Add"), icon=":material/add:", key=f"{self.prefix}-add", on_click=self.add, type="primary")
