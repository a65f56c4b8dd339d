"""The Train page's config editor: a widget per config field, and the bridge between the widgets and a TrainConfig.

Every field is drawn from its declaration in core.training.config (label, help, range, step,
widget hint); this module only decides which tab shows it and when (`fields`, `WHEN`). The config
is built from the widgets by core.training.config.apply_overrides, so the page validates exactly
as the CLI does. The widgets are seeded by `load_into_editor` and keep their values across pages
with persist_state="session".
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from core.augment import Pipeline
from core.data import DATASETS
from core.i18n import _, tr
from core.lessons import MAX_SEED
from core.params import Param
from core.runs import store
from core.training.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_params,
)
from core.training.models import MODELS
from pages.ui import run_view
from pages.ui.pipeline_editor import PipelineEditor
from pages.ui.widgets import choice_text

state = st.session_state
PIPELINE = PipelineEditor("tr", folded=True)  # the augmentation the next run trains with


# Widget kinds: "float" | "int" | "slider" | "bool" | "choice" | "floats" (a comma list) | "size"
# (0 = None) | "fraction" (1 = None); "dataset", "model" and "run" (a finished run, "" = None) are
# drawn by functions of their own. A field's kind is its declaration's widget hint, else its kind's.
_WIDGET_OF_KIND = {"float": "float", "int": "int", "bool": "bool", "choice": "choice", "float_list": "floats"}


@dataclass(frozen=True)
class Field:
    """One config value in the editor: its declaration (core.training.config) and when it is shown."""

    key: str  # dotted config key
    param: Param
    when: Callable[[Mapping[str, Any]], bool] | None = None  # shown only if true for the current values

    @property
    def label(self) -> str:
        return tr(self.param.title) + (_(" · 0 = automatic") if self.kind == "size" else "")

    @property
    def help(self) -> str:
        p = self.param
        return tr(p.help) + (_(" Not set: {none_means}.").format(none_means=tr(p.none_means))
                             if p.optional and p.none_means else "")

    @property
    def kind(self) -> str:
        hint = self.param.widget
        if hint == "variant":
            return "choice"
        return hint or _WIDGET_OF_KIND[self.param.kind]

    @property
    def choices(self) -> tuple:
        if self.param.widget == "variant":
            return ("", *DATASETS["shapes"].variants)
        return self.param.choices

    @property
    def low(self) -> float | None:
        p = self.param
        if self.kind == "size":
            return 0
        return p.closed_range()[0] if self.kind in ("slider", "fraction") else p.low

    @property
    def high(self) -> float | None:
        p = self.param
        if p.high is not None and p.integer and p.high > MAX_SEED:
            return MAX_SEED  # number inputs travel through JavaScript
        return p.closed_range()[1] if self.kind in ("slider", "fraction") else p.high

    @property
    def step(self) -> float | None:
        return self.param.step

    @property
    def widget_key(self) -> str:
        return f"tr_{self.key}"

    def to_widget(self, value: Any) -> Any:
        if self.kind == "floats":
            return ", ".join(f"{v:g}" for v in value)
        if self.kind == "size":
            return 0 if value is None else value
        if self.kind == "fraction":
            return 1.0 if value is None else value
        if self.kind in ("choice", "run") and value is None:
            return ""
        return value

    def from_widget(self, value: Any) -> Any:
        if self.kind == "floats":
            try:
                return [float(v) for v in str(value).replace(";", ",").split(",") if v.strip()]
            except ValueError:
                raise ConfigError(_("{key} must be numbers separated by commas, got {value!r}").format(key=self.key, value=value)) from None
        if self.kind == "size":
            return None if not value else int(value)
        if self.kind == "fraction":
            return None if value >= 1.0 else round(float(value), 4)
        if self.kind in ("choice", "run") and value == "":
            return None
        if self.kind == "float":
            return float(value)
        if self.kind == "slider":
            return round(float(value), 6)
        return value


def _is(key: str, *values: Any) -> Callable[[Mapping[str, Any]], bool]:
    return lambda v: v.get(key) in values


_ADAM = ("adam", "adamw", "adabound")
# When a field is shown: the page's own layout decision; everything else comes from the declaration.
WHEN: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "data.variant": _is("data.dataset", "shapes"),
    "data.val_ratio": lambda v: str(v.get("data.dataset", "")).startswith(("zip:", "folder:")),
    "data.allow_download": lambda v: v.get("data.dataset") in DATASETS and DATASETS[v["data.dataset"]].needs_files,
    "tricks.distill_temperature": lambda v: bool(v.get("tricks.teacher_run_id")),
    "tricks.distill_alpha": lambda v: bool(v.get("tricks.teacher_run_id")),
    "optim.momentum": _is("optim.name", "sgd"),
    "optim.nesterov": _is("optim.name", "sgd"),
    "optim.muon_lr": _is("optim.name", "sgd"),  # Muon pairs with SGD only
    "optim.muon_steps": _is("optim.name", "sgd"),
    "optim.beta1": _is("optim.name", *_ADAM),
    "optim.beta2": _is("optim.name", *_ADAM),
    "optim.eps": _is("optim.name", *_ADAM),
    "optim.final_lr": _is("optim.name", "adabound"),
    "optim.adabound_gamma": _is("optim.name", "adabound"),
    "schedule.milestones": _is("schedule.name", "step"),
    "schedule.gamma": _is("schedule.name", "step"),
    "schedule.min_lr": _is("schedule.name", "cosine", "sgdr"),
    "schedule.t0": _is("schedule.name", "sgdr"),
    "schedule.t0_unit": _is("schedule.name", "sgdr"),
    "schedule.t_mult": _is("schedule.name", "sgdr"),
    "schedule.pct_start": _is("schedule.name", "onecycle"),
    "schedule.div_factor": _is("schedule.name", "onecycle"),
    "schedule.final_div_factor": _is("schedule.name", "onecycle"),
    "schedule.anneal": _is("schedule.name", "onecycle"),
}


def fields(*keys: str) -> tuple[Field, ...]:
    params = config_params()
    return tuple(Field(key, params[key], WHEN.get(key)) for key in keys)


# The editor's tabs: which fields, in which order. model.options and augment.train have editors of their own.
DATA_FIELDS = fields("data.dataset", "data.variant", "data.subset", "data.image_size", "data.val_ratio", "data.seed",
                     "data.permute_pixels", "data.allow_download")
MODEL_FIELDS = fields("model.name", "model.init_from_run", "model.init")
MIX_FIELDS = fields("tricks.label_smoothing", "tricks.mixup_alpha", "tricks.cutmix_alpha", "tricks.ricap_beta",
                    "tricks.mix_prob")
DISTILL_FIELDS = fields("tricks.teacher_run_id", "tricks.distill_temperature", "tricks.distill_alpha")
FINETUNE_FIELDS = fields("optim.head_lr_mult", "optim.train_head_only", "optim.freeze_body_epochs", "optim.freeze_bn_stats")
OPTIM_FIELDS = fields("optim.name", "optim.lr", "optim.weight_decay", "optim.momentum", "optim.nesterov", "optim.beta1",
                      "optim.beta2", "optim.eps", "optim.final_lr", "optim.adabound_gamma", "optim.bias_lr_mult",
                      "optim.muon_lr", "optim.muon_steps")
SCHEDULE_FIELDS = fields(*(key for key in config_params() if key.startswith("schedule.")))
RUN_FIELDS = fields(*(key for key in config_params() if key.startswith("run.")))
ALL_FIELDS = (
    DATA_FIELDS + MODEL_FIELDS + MIX_FIELDS + DISTILL_FIELDS + FINETUNE_FIELDS + OPTIM_FIELDS + SCHEDULE_FIELDS + RUN_FIELDS
)
EDITED_ELSEWHERE = ("model.options", "augment.train")  # the model's option widgets; the pipeline editor


def _option_key(model: str, option: str) -> str:
    return f"tr_opt.{model}.{option}"


def _option_to_widget(kind: str, value: Any) -> Any:
    return ", ".join(str(v) for v in value) if kind == "int_list" else value


def _option_from_widget(kind: str, value: Any, where: str) -> Any:
    if kind == "int_list":
        try:
            return [int(v) for v in str(value).replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise ConfigError(_("{where} must be whole numbers separated by commas, got {value!r}").format(where=where, value=value)) from None
    return float(value) if kind == "float" else value



def load_into_editor(cfg: TrainConfig) -> None:
    """Put a whole config into the editor's widgets (before they are drawn: a callback or page start)."""
    for f in ALL_FIELDS:
        state[f.widget_key] = f.to_widget(_nested(cfg, f.key))
    info = MODELS[cfg.model.name]
    options = info.validate(cfg.model.name, cfg.model.options)
    for option in info.options:
        state[_option_key(cfg.model.name, option.name)] = _option_to_widget(option.kind, options[option.name])
    PIPELINE.set(Pipeline.from_list(list(cfg.augment.train)))
    state["tr_seeded"] = True


def _nested(cfg: TrainConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _seed(key: str, value: Any) -> None:
    """Give a widget its starting value once; afterwards the widget owns it."""
    if key not in state:
        state[key] = value


def current_values() -> dict[str, Any]:
    """The editor's values as dotted config keys (raises ConfigError for text that does not parse)."""
    values = {f.key: f.from_widget(state[f.widget_key]) for f in ALL_FIELDS}
    name = values["model.name"]
    info = MODELS[name]
    options = {}
    for option in info.options:
        key = _option_key(name, option.name)
        _seed(key, _option_to_widget(option.kind, option.default))
        options[option.name] = _option_from_widget(option.kind, state[key], _("model option {name}").format(name=option.name))
    # Store only the options that differ from the defaults: a run's config then says what was chosen.
    values["model.options"] = {k: v for k, v in options.items() if v != info.defaults()[k]}
    values["augment.train"] = state["tr_pipeline"].to_list()
    return values


def current_config() -> TrainConfig:
    """The config the editor describes; raises ConfigError with the engine's message."""
    return apply_overrides(TrainConfig(), current_values())



def draw_field(f: Field, values: Mapping[str, Any]) -> None:
    if f.when is not None and not f.when(values):
        return
    common = {"key": f.widget_key, "help": f.help, "persist_state": "session"}
    if f.kind == "bool":
        st.checkbox(f.label, **common)
    elif f.kind == "choice":
        st.selectbox(f.label, list(f.choices), format_func=lambda c: choice_text(c) if c else _("standard"), **common)
    elif f.kind == "floats":
        st.text_input(f.label, **common)
    elif f.kind in ("slider", "fraction"):
        st.slider(f.label, float(f.low), float(f.high), step=float(f.step), **common)
    elif f.kind in ("int", "size"):
        st.number_input(f.label, min_value=None if f.low is None else int(f.low),
                        max_value=None if f.high is None else int(f.high), step=1, **common)
    elif f.kind == "float":
        st.number_input(f.label, min_value=f.low, max_value=f.high, step=f.step, format="%g", **common)
    else:
        raise AssertionError(f"{f.key}: kind {f.kind!r} is drawn by its own function")


def draw_fields(fields: tuple[Field, ...], values: Mapping[str, Any], columns: int = 2) -> None:
    shown = [f for f in fields if f.when is None or f.when(values)]
    cols = st.columns(columns)
    for i, f in enumerate(shown):
        with cols[i % columns]:
            draw_field(f, values)


def field(key: str) -> Field:
    return next(f for f in ALL_FIELDS if f.key == key)



def draw_model_options(name: str) -> None:
    """A widget per option model `name` declares (width, depth, pretrained, ...), in two columns."""
    cols = st.columns(2)
    for i, option in enumerate(MODELS[name].options):
        wkey = _option_key(name, option.name)
        _seed(wkey, _option_to_widget(option.kind, option.default))
        with cols[i % 2]:
            common = {"key": wkey, "help": tr(option.help), "persist_state": "session"}
            if option.kind == "bool":
                st.checkbox(option.name, **common)
            elif option.kind == "choice":
                st.selectbox(option.name, list(option.choices), format_func=choice_text, **common)
            elif option.kind == "int_list":
                st.text_input(_("{name} (comma-separated)").format(name=option.name), **common)
            else:
                number = int if option.kind == "int" else float
                low, high = (None if v is None else number(v) for v in (option.low, option.high))
                st.number_input(option.name, min_value=low, max_value=high, step=number(1 if number is int else 0.05),
                                format=None if number is int else "%g", **common)


def run_picker(key: str, none_label: str) -> str | None:
    """A selectbox of the finished runs for a "run" field; returns the chosen id (None for none)."""
    runs = store.list_runs()
    finished = runs[runs["status"] == "finished"]
    choices = {"": none_label, **{
        r.id: _("{name} ({model} on {dataset}, test acc {test_acc:.1%})").format(
            name=r.name, model=r.model, dataset=run_view.dataset_name(r.dataset), test_acc=r.test_acc)
        for r in finished.itertuples() if pd.notna(r.test_acc)
    }}
    f = field(key)
    if state[f.widget_key] not in choices:
        choices[state[f.widget_key]] = _("{run_id} (not a finished run here)").format(run_id=state[f.widget_key])
    st.selectbox(f.label, list(choices), format_func=choices.get, key=f.widget_key, help=f.help, persist_state="session")
    return state[f.widget_key] or None
