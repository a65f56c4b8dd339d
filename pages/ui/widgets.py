"""Widgets drawn from the parameter vocabulary (core.params.Param): one per declared parameter."""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.i18n import tr
from core.params import Param


def choice_text(choice: Any) -> str:
    """A choice as shown: translated where the catalog has it ("auto", "epochs"), else as declared."""
    return tr(choice) if isinstance(choice, str) else str(choice)


def param_widget(param: Param, key: str, value: Any, disabled: bool) -> Any:
    """The widget an augmentation parameter's schema declares (checkbox, select box, slider, or a
    number box when it has no bounds), started at `value` the first time; returns the schema value.

    The Lab and the Train page's pipeline editor both draw their steps with it."""
    if key not in st.session_state:
        st.session_state[key] = tuple(value) if param.kind.endswith("_range") else value
    common = {"key": key, "help": tr(param.help) or None, "disabled": disabled}
    if param.kind == "bool":
        return st.checkbox(param.name, **common)
    if param.kind == "choice":
        return st.selectbox(param.name, list(param.choices), format_func=choice_text, **common)
    number = int if param.kind.startswith("int") else float
    step = number(param.step or (1 if number is int else 0.01))
    if param.low is None or param.high is None:
        raw = st.number_input(param.name, step=step, **common)
    else:
        raw = st.slider(param.name, number(param.low), number(param.high), step=step, **common)
    # Float sliders return binary noise like 0.35000000000000003: keep the values a person chose.
    if param.kind == "float_range":
        return tuple(round(float(v), 10) for v in raw)
    if param.kind == "float":
        return round(float(raw), 10)
    return tuple(int(v) for v in raw) if param.kind == "int_range" else int(raw)
