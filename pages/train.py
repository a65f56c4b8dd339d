"""Train: configure a run, launch it, watch it learn, and read its report when it ends.

Top: the course's experiments as one-click presets. Middle: the config editor (tabs for data,
model, augmentation, tricks, optimiser and schedule, run) next to what the run will cost: its
learning-rate schedule, parameter count, device and an estimated duration measured on this
machine. Bottom: the selected run (?run=<id> in the URL; by default the newest running one),
drawn live by a fragment that polls the run store every second and moves the queue along.

Every field of the editor is drawn from its declaration in core.training.config (label, help, range, step,
widget); the page only lays them out (`fields`, `WHEN`). The config is built from the widgets by
`core.training.config.apply_overrides`, so the page validates exactly as the CLI does. Training happens
in separate processes started by core.runs.runner; this page only reads the store.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import versions
from core.augment import (
    GROUPS,
    REGISTRY,
    AugmentError,
    Pipeline,
    get_op,
)
from core.data import DATASETS, DatasetError, available_datasets
from core.data.uploads import MAX_UPLOAD_BYTES, find_upload, list_uploads, save_upload
from core.params import Param
from core.runs import runner, store
from core.training import estimate, weights
from core.training.batches import image_size_for
from core.training.config import ConfigError, TrainConfig, apply_overrides, config_params
from core.training.device import autocast_dtype, available_cores, describe_device, pick_device
from core.training.lr_finder import lr_find
from core.training.models import MODELS, build_model, count_parameters
from core.training.schedules import schedule_curve
from pages import _common, _datasets, _presets, _runs
from pages._common import MAX_SEED, flash, param_widget, pipeline_from_param, read_pipeline_upload, show_flashes

state = st.session_state
REFRESH_S = 1.0  # live view refresh: curves grow at least once a second
# Shown alone (the selected run has ended), the queue table and the queue's progress (runner.tick)
# need no such pace: a queued run waits for a whole run to end, and a training process starts the
# next one itself when it ends. With a live run selected, they ride along with its refresh.
QUEUE_REFRESH_S = 3.0
# The LR finder runs in the page's own process while the person waits, so it is short: 60 steps
# of the default config took 15 s on one thread of a busy 2-core machine; 10 steps per decade of lr.
LR_FINDER_STEPS = 60
LR_FINDER_RANGE = (1e-5, 10.0)
# lr_find's default 0.98 averages over ~50 steps, too long for a 60-step test: the smoothed curve
# would lag behind the lr and the suggestion land too high.
LR_FINDER_SMOOTHING = 0.9
RUN_CHOICES = 200  # newest runs offered in the run picker

# This page's session state is declared with every page's in pages/_common.py (STATE); the editor's
# field widgets are seeded by load_into_editor and keep their values across pages with
# persist_state="session".


def init_state() -> None:
    _common.init_state()
    if not state["tr_seeded"]:
        load_into_editor(TrainConfig())


# ============================================================================ the editor's fields


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
        return self.param.title + (" · 0 = automatic" if self.kind == "size" else "")

    @property
    def help(self) -> str:
        p = self.param
        return p.help + (f" Not set: {p.none_means}." if p.optional and p.none_means else "")

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
                raise ConfigError(f"{self.key} must be numbers separated by commas, got {value!r}") from None
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
                      "optim.beta2", "optim.eps", "optim.final_lr", "optim.adabound_gamma")
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
            raise ConfigError(f"{where} must be whole numbers separated by commas, got {value!r}") from None
    return float(value) if kind == "float" else value


# ============================================================================ state <-> config


def load_into_editor(cfg: TrainConfig) -> None:
    """Put a whole config into the editor's widgets (before they are drawn: a callback or page start)."""
    for f in ALL_FIELDS:
        state[f.widget_key] = f.to_widget(_nested(cfg, f.key))
    info = MODELS[cfg.model.name]
    options = info.validate(cfg.model.name, cfg.model.options)
    for option in info.options:
        state[_option_key(cfg.model.name, option.name)] = _option_to_widget(option.kind, options[option.name])
    set_pipeline(Pipeline.from_list(list(cfg.augment.train)))
    state["tr_seeded"] = True


def _nested(cfg: TrainConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def set_pipeline(pipeline: Pipeline) -> None:
    state["tr_pipeline"] = pipeline
    state["tr_pipeline_version"] += 1


def _seed(key: str, value: Any) -> None:
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
        options[option.name] = _option_from_widget(option.kind, state[key], f"model option {option.name}")
    # Store only the options that differ from the defaults: a run's config then says what was chosen.
    values["model.options"] = {k: v for k, v in options.items() if v != info.defaults()[k]}
    values["augment.train"] = state["tr_pipeline"].to_list()
    return values


def current_config() -> TrainConfig:
    """The config the editor describes; raises ConfigError with the engine's message."""
    return apply_overrides(TrainConfig(), current_values())


# ============================================================================ widgets


def draw_field(f: Field, values: Mapping[str, Any]) -> None:
    if f.when is not None and not f.when(values):
        return
    common = {"key": f.widget_key, "help": f.help, "persist_state": "session"}
    if f.kind == "bool":
        st.checkbox(f.label, **common)
    elif f.kind == "choice":
        st.selectbox(f.label, list(f.choices), format_func=lambda c: c or "standard", **common)
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


def _field(key: str) -> Field:
    return next(f for f in ALL_FIELDS if f.key == key)


# ---- data -------------------------------------------------------------------------------------


def _dataset_label(name: str, available: list[str]) -> str:
    if name in DATASETS:
        info = DATASETS[name]
        return info.label + ("" if name in available else " · not on this machine")
    upload = find_upload(name)
    return _datasets.label(name, upload)


def _on_zip_upload() -> None:
    file = state.get("tr_zip_upload")
    if file is None:
        return
    try:
        upload = save_upload(file.name, file.getvalue())
    except DatasetError as exc:
        flash("error", f"{file.name} cannot be used as a dataset: {exc} The selected dataset is unchanged.")
        return
    except Exception as exc:  # an unexpected failure must not take the page down
        flash("error", f"{file.name} could not be read ({type(exc).__name__}: {exc}). The selected dataset is unchanged.")
        return
    state[_field("data.dataset").widget_key] = upload.dataset
    flash("success", f"Uploaded {upload.summary}. It is selected as the dataset." + (f" ({upload.note})" if upload.note else ""))
    _datasets.dataset_chosen(upload.dataset, new=True)


def data_tab(values: Mapping[str, Any]) -> None:
    available = available_datasets()
    options = _datasets.dataset_options([*DATASETS, *(u.dataset for u in list_uploads())])
    key = _field("data.dataset").widget_key
    if state[key] not in options:
        options.append(state[key])  # e.g. a folder: path from a loaded run config
    st.selectbox(_field("data.dataset").label, options, format_func=lambda n: _dataset_label(n, available), key=key,
                 help=_field("data.dataset").help, persist_state="session", on_change=_datasets.on_dataset_selected)
    name = state[key]
    if name in DATASETS:
        st.caption(DATASETS[name].help)
    _datasets.budget_note(name)
    draw_fields(DATA_FIELDS[1:], values)  # the dataset itself is the selectbox above
    st.file_uploader(
        "Upload a dataset: a zip of class folders", type=["zip"], key="tr_zip_upload", on_change=_on_zip_upload,
        help="<class>/<image> for every class (at least two), optionally inside train/ and test/ folders; one "
        f"wrapping folder is fine. Up to {MAX_UPLOAD_BYTES // 2**20} MB. Without a test folder, a share of each "
        "class is held out as the test split.",
    )
    _datasets.sources_panel()


# ---- model ------------------------------------------------------------------------------------


def model_tab(values: Mapping[str, Any]) -> None:
    key = _field("model.name").widget_key
    st.selectbox(_field("model.name").label, list(MODELS), format_func=lambda n: MODELS[n].label, key=key,
                 help=_field("model.name").help, persist_state="session")
    info = MODELS[state[key]]
    st.caption(info.help)
    draw_field(_field("model.init"), values)
    source = run_picker("model.init_from_run", "none (train from the initialisation above)")
    if source:
        try:
            trained = store.get_run(source).config["model"]["name"]
        except store.UnknownRunError:
            trained = None
        if trained is not None and trained != state[key]:
            st.warning(f"That run trained a {MODELS[trained].label if trained in MODELS else trained}; its weights "
                       f"fit only the same model, so this run would fail. Pick {trained} above or another run.")
    pretrained_note(state[key])
    cols = st.columns(2)
    for i, option in enumerate(info.options):
        wkey = _option_key(state[key], option.name)
        _seed(wkey, _option_to_widget(option.kind, option.default))
        with cols[i % 2]:
            common = {"key": wkey, "help": option.help, "persist_state": "session"}
            if option.kind == "bool":
                st.checkbox(option.name, **common)
            elif option.kind == "choice":
                st.selectbox(option.name, list(option.choices), **common)
            elif option.kind == "int_list":
                st.text_input(f"{option.name} (comma-separated)", **common)
            else:
                number = int if option.kind == "int" else float
                low, high = (None if v is None else number(v) for v in (option.low, option.high))
                st.number_input(option.name, min_value=low, max_value=high, step=number(1 if number is int else 0.05),
                                format=None if number is int else "%g", **common)


def pretrained_note(name: str) -> None:
    """For a model that can start from ImageNet weights: whether they are here, and how to get them."""
    arch = MODELS[name].pretrained
    if arch is None:
        return
    found = weights.availability(arch)
    if found.present:
        st.caption(f"ImageNet weights: in place ({found.path}).")
    else:
        st.info(found.message, icon=":material/download:")


# ---- augmentation -----------------------------------------------------------------------------


def _use_lab_pipeline() -> None:
    pipeline = state.get("lab_pipeline")
    if pipeline is not None:
        set_pipeline(pipeline)
        flash("success", f"Using the Augmentation Lab's pipeline ({len(pipeline.steps)} steps).")


def _on_pipeline_json() -> None:
    loaded = read_pipeline_upload("tr_pipeline_json")
    if loaded is None:
        return
    pipeline, _ = loaded  # the Train page has no preview seed: a run's seed is in the Run tab
    set_pipeline(pipeline)
    flash("success", f"Loaded {len(pipeline.steps)} step(s) from {state['tr_pipeline_json'].name}.")


def pipeline_param_from_link(text: str) -> str:
    """The `p` value of a lab link (the whole URL or just the value)."""
    text = text.strip()
    if "?" in text or text.startswith(("http://", "https://")):
        values = parse_qs(urlsplit(text).query).get("p")
        if not values:
            raise AugmentError("the link carries no pipeline (no p=… in it)")
        return values[0]
    return text.removeprefix("p=")


def _on_pipeline_link() -> None:
    text = state.get("tr_pipeline_link", "")
    if not text.strip():
        return
    try:
        pipeline = pipeline_from_param(pipeline_param_from_link(text))
    except AugmentError as exc:
        flash("error", f"The link's pipeline could not be used: {exc}. The pipeline is unchanged.")
        return
    set_pipeline(pipeline)
    flash("success", f"Loaded {len(pipeline.steps)} step(s) from the link.")


def _add_step() -> None:
    set_pipeline(state["tr_pipeline"].added(state["tr_add_op"]))


def _remove_step(index: int) -> None:
    set_pipeline(state["tr_pipeline"].removed(index))


def augment_tab() -> None:
    pipeline: Pipeline = state["tr_pipeline"]
    version = state["tr_pipeline_version"]
    st.caption(
        "The training split goes through this pipeline, each image with its own random draws; the test split "
        "is never augmented. The Augmentation Lab previews exactly what it does."
    )
    lab = state.get("lab_pipeline")
    top = st.columns(2)
    top[0].button(
        f"Use the Lab's pipeline ({len(lab.steps)} steps)" if lab is not None else "Use the Lab's pipeline",
        on_click=_use_lab_pipeline, disabled=lab is None, key="tr-use-lab", icon=":material/science:",
        help="Copy the pipeline you built on the Augmentation Lab page (including one loaded there from JSON or a link).",
    )
    top[1].button("No augmentation", on_click=set_pipeline, args=(Pipeline.empty(),), key="tr-clear-pipeline",
                  icon=":material/block:", disabled=not pipeline.steps)
    load = st.columns(2)
    load[0].file_uploader("Load a pipeline (JSON)", type=["json"], key="tr_pipeline_json", on_change=_on_pipeline_json,
                          help="A pipeline saved from the Augmentation Lab (its Export tab).")
    load[1].text_input("…or paste a link shared from the Augmentation Lab", key="tr_pipeline_link",
                       on_change=_on_pipeline_link, placeholder="http://localhost:8501/?p=…&seed=0")

    edited = pipeline
    for i, step in enumerate(pipeline.steps):
        op = get_op(step.op)
        prefix = f"tr_aug{version}_{i}"
        with st.container(border=True):
            head = st.columns([6, 1], vertical_alignment="center")
            _seed(f"{prefix}_enabled", step.enabled)
            enabled = head[0].checkbox(f"**{i + 1}. {op.label}**", key=f"{prefix}_enabled", help=op.help)
            head[1].button("✕", key=f"{prefix}_remove", on_click=_remove_step, args=(i,), help="Remove this step")
            params = {}
            if op.params:
                summary = st.empty()  # filled below, once this run's slider values are known
                # A fixed label: an expander whose label changed would be a new one, closed after every edit.
                with st.expander("Settings"):
                    for param in op.params:
                        params[param.name] = param_widget(param, f"{prefix}_{param.name}", step.params[param.name], not enabled)
            if (params and params != step.params) or enabled != step.enabled:
                try:
                    edited = edited.updated(i, params=params or None, enabled=enabled)
                except AugmentError as exc:
                    st.error(f"Step {i + 1} keeps its previous settings: {exc}")
            if op.params:
                summary.caption(", ".join(f"{k} = {_short(v)}" for k, v in edited.steps[i].params.items()))
    state["tr_pipeline"] = edited
    if not pipeline.steps:
        st.info("No augmentation: the model sees the training images as they are.")
    ops = sorted(REGISTRY.values(), key=lambda op: (GROUPS.index(op.group), op.label))
    add = st.columns([3, 1], vertical_alignment="bottom")
    add[0].selectbox("Augmentation to add", [op.name for op in ops], key="tr_add_op",
                     format_func=lambda n: f"{get_op(n).group} · {get_op(n).label}")
    add[1].button("Add", key="tr-add-step", on_click=_add_step, icon=":material/add:")


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---- tricks -----------------------------------------------------------------------------------


def run_picker(key: str, none_label: str) -> str | None:
    """A selectbox of the finished runs for a "run" field; returns the chosen id (None for none)."""
    runs = store.list_runs()
    finished = runs[runs["status"] == "finished"]
    choices = {"": none_label, **{r.id: f"{r.name} ({r.model} on {_runs.dataset_name(r.dataset)}, test acc {r.test_acc:.1%})"
                                  for r in finished.itertuples() if pd.notna(r.test_acc)}}
    f = _field(key)
    if state[f.widget_key] not in choices:
        choices[state[f.widget_key]] = f"{state[f.widget_key]} (not a finished run here)"
    st.selectbox(f.label, list(choices), format_func=choices.get, key=f.widget_key, help=f.help, persist_state="session")
    return state[f.widget_key] or None


def tricks_tab(values: Mapping[str, Any]) -> None:
    st.markdown("**Label smoothing and batch mixing**")
    draw_fields(MIX_FIELDS, values)
    st.markdown("**Distillation**")
    run_picker("tricks.teacher_run_id", "none (no distillation)")
    draw_fields(DISTILL_FIELDS[1:], values)  # the teacher is the selectbox above
    st.markdown("**Fine-tuning: differential learning rate and freezing**")
    draw_fields(FINETUNE_FIELDS, values)
    st.caption("Warmup and the linear scaling rule are in the Optimiser & schedule tab.")


# ---- learning-rate finder ---------------------------------------------------------------------


def _lr_finder_key(cfg: TrainConfig) -> str:
    """What the finder's result depends on: everything but the lr it sweeps and the schedule it ignores."""
    tree = cfg.to_dict()
    del tree["schedule"], tree["optim"]["lr"]
    return json.dumps(tree, sort_keys=True)


def lr_to_widget(cfg: TrainConfig, found_lr: float) -> float:
    """The value for the lr field that makes a run train at `found_lr`, to two significant digits.

    The finder sets the optimiser's lr directly; with the linear scaling rule on, the field holds
    the lr per 256 images, so the found lr is scaled back.
    """
    value = found_lr * 256 / cfg.run.batch_size if cfg.schedule.linear_scaling else found_lr
    return float(f"{value:.2g}")


def lr_finder_figure(curve: pd.DataFrame, suggested: float) -> go.Figure:
    fig = go.Figure()
    lrs = curve["lr"].tolist()
    fig.add_scatter(x=lrs, y=curve["raw_loss"].tolist(), mode="lines", name="loss of each batch",
                    line={"width": 1, "color": "rgba(99,110,250,0.35)"})
    fig.add_scatter(x=lrs, y=curve["loss"].tolist(), mode="lines", name="smoothed", line={"color": "#636EFA", "width": 2})
    at = curve.iloc[(curve["lr"] - suggested).abs().argmin()]
    fig.add_scatter(x=[suggested], y=[float(at["loss"])], mode="markers", name=f"suggested lr {suggested:.2g}",
                    marker={"size": 12, "color": "#EF553B", "symbol": "x"})
    fig.add_vline(x=suggested, line={"dash": "dot", "color": "#EF553B"})
    fig.update_xaxes(type="log", title="learning rate")
    fig.update_layout(title="Learning-rate finder", yaxis_title="training loss", height=320,
                      margin={"t": 40, "b": 40, "l": 50, "r": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


def _use_found_lr(value: float) -> None:
    state[_field("optim.lr").widget_key] = value
    flash("success", f"Peak learning rate set to {value:g}.")


def lr_finder_panel() -> None:
    """Smith's LR range test on the editor's config, in this process, then one click to use its lr."""
    with st.expander("Find a learning rate", icon=":material/query_stats:"):
        st.caption(
            f"Trains a fresh model of this config for {LR_FINDER_STEPS} steps while the learning rate grows from "
            f"{LR_FINDER_RANGE[0]:g} to {LR_FINDER_RANGE[1]:g} (Smith 2015), and suggests the lr where the loss "
            "falls fastest. Nothing is recorded as a run. It takes a few seconds to a minute, depending on the model."
        )
        try:
            cfg = current_config()
        except ConfigError:
            st.caption("Fix the config first: it cannot run as it is.")
            return
        if st.button("Find a learning rate", key="tr-lr-find", icon=":material/play_arrow:"):
            # Next to a training run, threads for every core would fight it for them: measured on a
            # busy 2-core machine, the default config's test took 15 s on one thread and 76 s on two.
            busy = (store.list_runs()["status"] == "running").any()
            finder_cfg = apply_overrides(cfg, {"run.threads": 1}) if busy else cfg
            try:
                with st.spinner(f"Training {LR_FINDER_STEPS} steps at growing learning rates…"):
                    curve = lr_find(finder_cfg, start_lr=LR_FINDER_RANGE[0], end_lr=LR_FINDER_RANGE[1],
                                    num_steps=LR_FINDER_STEPS, smoothing=LR_FINDER_SMOOTHING)
            except (ValueError, RuntimeError) as exc:
                st.error(f"The learning-rate finder failed: {exc}")
                return
            state["tr_lr_found"] = {"curve": curve, "lr": curve.attrs["suggested_lr"], "key": _lr_finder_key(cfg)}
        found = state["tr_lr_found"]
        if found is None:
            return
        if found["key"] != _lr_finder_key(cfg):
            st.caption("This curve was measured for an earlier config; run the finder again for the current one.")
        st.plotly_chart(lr_finder_figure(found["curve"], found["lr"]), key="tr-lr-finder-chart")
        value = lr_to_widget(cfg, found["lr"])
        per = " (per 256 images, as the linear scaling rule is on)" if cfg.schedule.linear_scaling else ""
        st.button(f"Use this LR: {value:g}{per}", key="tr-lr-use", on_click=_use_found_lr, args=(value,),
                  icon=":material/check:", disabled=value == cfg.optim.lr)


# ============================================================================ what the run will cost


@st.cache_data(max_entries=16, show_spinner=False)
def _parameter_count(model: str, options_json: str, in_channels: int, num_classes: int, image_size: int) -> int:
    options = json.loads(options_json)
    # The count is the same with or without pretrained weights; never download them just to count.
    options = {k: (False if k == "pretrained" else v) for k, v in options.items()}
    return count_parameters(build_model(model, in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options))


def schedule_figure(cfg: TrainConfig, steps_per_epoch: int) -> go.Figure:
    steps, lrs = schedule_curve(cfg, steps_per_epoch)
    fig = go.Figure(go.Scatter(x=[s / steps_per_epoch for s in steps], y=lrs, mode="lines", name="lr"))
    head = cfg.optim.head_lr_mult
    if head != 1.0:
        fig.add_scatter(x=[s / steps_per_epoch for s in steps], y=[lr * head for lr in lrs], mode="lines",
                        name=f"head (×{head:g})", line={"dash": "dot"})
    fig.update_layout(title="Learning rate", xaxis_title="epoch", height=260, margin={"t": 40, "b": 40, "l": 50, "r": 10},
                      showlegend=head != 1.0, legend={"orientation": "h", "y": -0.3})
    frozen = cfg.run.epochs if cfg.optim.train_head_only else cfg.optim.freeze_body_epochs
    if frozen:
        fig.add_vrect(x0=0, x1=frozen, fillcolor="grey", opacity=0.15, line_width=0,
                      annotation_text="body frozen", annotation_position="top left")
    return fig


def cost_panel(cfg: TrainConfig) -> Callable[[], None] | None:
    """Schedule, parameters and device now; returns the (slow) estimate to draw once the page is up."""
    try:
        bundle = _runs.load_bundle(dataclasses.replace(cfg.data, image_size=image_size_for(cfg)))
    except DatasetError as exc:
        st.error(f"The dataset does not load: {exc}")
        bundle = None
    steps_per_epoch = max(1, len(bundle.train_y) // cfg.run.batch_size) if bundle is not None else 1
    st.plotly_chart(schedule_figure(cfg, steps_per_epoch), key="tr-schedule")
    if bundle is None:
        return None
    st.caption(
        f"{bundle.num_classes} classes · {len(bundle.train_y):,} train / {len(bundle.test_y):,} test images of "
        f"{bundle.image_size}x{bundle.image_size} · {steps_per_epoch:,} steps per epoch"
        + (f" · {bundle.note}" if bundle.note else "")
    )
    cols = st.columns(2)
    try:
        n = _parameter_count(cfg.model.name, json.dumps(cfg.model.options, sort_keys=True), bundle.in_channels,
                             bundle.num_classes, bundle.image_size)
        cols[0].metric("Parameters", f"{n:,}", help="Trainable weights of the model for this dataset's images and classes.")
    except ValueError as exc:
        st.error(f"The model cannot be built for these images: {exc}")
        return None
    try:
        device = pick_device(cfg.run.device)
        threads = cfg.run.threads or available_cores()
        described = describe_device(device, threads, autocast_dtype(cfg.run.amp, device))
    except ConfigError as exc:
        st.error(str(exc))
        return None
    cols[1].metric("Device", device.type.upper(), help="The device a run of this config trains on.")
    cols[1].caption(described)
    left, right = st.columns([3, 2], vertical_alignment="center")
    slot = left.empty()
    right.checkbox(
        "Estimate time", key="tr_auto_estimate", persist_state="session",
        help="Times a few real training steps of this config on this machine (cached per model, data, batch "
        "and augmentation). Turn it off while editing a config whose steps are slow.",
    )
    if not state["tr_auto_estimate"]:
        return None
    right.button("Measure again", key="tr-remeasure", on_click=estimate.clear_cache, type="tertiary",
                 help="Forget the timings, e.g. after the machine got less busy.")

    def draw_estimate() -> None:
        with slot.container():
            busy = (store.list_runs()["status"] == "running").any()
            try:
                with st.spinner("Timing a few training steps…"):
                    est = estimate.estimate(cfg)
            except (ValueError, RuntimeError) as exc:
                st.error(f"A training step fails with this config: {exc}")
                return
            st.metric("Estimated time", estimate.format_duration(est.total_s),
                      help=f"Measured on this machine: {est.timing.timed_steps} real training steps of this config "
                      f"after one warm-up step, times {est.total_steps:,} steps, plus {est.evaluations} evaluation(s) "
                      "and starting the training process.")
            st.caption(
                f"{est.seconds_per_step * 1000:,.0f} ms per step × {est.total_steps:,} steps"
                + (" · measured while another run trains, so probably too long" if busy else "")
            )

    return draw_estimate


# ============================================================================ launching


def _launch() -> None:
    try:
        cfg = current_config()
        run_id = runner.launch(cfg, state.get("tr_run_name", "").strip() or None)
    except (ConfigError, ValueError) as exc:
        flash("error", f"Not launched: {exc}")
        return
    st.query_params["run"] = run_id
    record = store.get_run(run_id)
    if record.status == "queued":
        flash("info", f"Queued {record.name}: it starts when a running run ends.")
    else:
        flash("success", f"Launched {record.name}.")


def launch_panel(cfg: TrainConfig | None) -> None:
    st.text_input("Run name", key="tr_run_name", placeholder=store.default_run_name(cfg) if cfg else "",
                  help="Shown in the run list and the comparison; empty: model on dataset.", persist_state="session")
    cols = st.columns([2, 1], vertical_alignment="bottom")
    cols[0].button("Launch", key="tr-launch", type="primary", icon=":material/rocket_launch:", on_click=_launch,
                   disabled=cfg is None, width="stretch")
    cols[1].number_input(
        "Runs at once", min_value=1, max_value=16, value=runner.max_concurrent(), key="tr_max_concurrent",
        on_change=lambda: runner.set_max_concurrent(int(state["tr_max_concurrent"])),
        help="More runs than this wait in the queue and start in turn. One is right for a CPU, where two runs "
        "would each take twice as long; a large GPU can take several.",
    )


# ============================================================================ the run monitor


def default_run(runs: pd.DataFrame) -> str | None:
    """The newest running run, else the newest queued one, else the newest run of all."""
    for status in ("running", "queued"):
        live = runs[runs["status"] == status]
        if not live.empty:
            return live["id"].iloc[0]
    return runs["id"].iloc[0] if not runs.empty else None


def selected_run(runs: pd.DataFrame) -> str | None:
    wanted = st.query_params.get("run")
    if wanted in set(runs["id"]):
        return wanted
    chosen = default_run(runs)
    if chosen is not None:
        st.query_params["run"] = chosen
    elif "run" in st.query_params:
        del st.query_params["run"]
    return chosen


def _pick_run(key: str) -> None:
    st.query_params["run"] = state[key]


def queue_table(runs: pd.DataFrame) -> None:
    live = runs[runs["status"].isin(["running", "queued"])].sort_values("created")
    if live.empty:
        st.caption("Nothing is training or waiting.")
        return
    position = (live["status"] == "queued").cumsum().where(live["status"] == "queued")
    waiting = {run_id for run_id in live.loc[live["status"] == "queued", "id"] if store.waiting_for(run_id)}
    table = pd.DataFrame({
        "status": [
            s + (f" #{int(p)}" if pd.notna(p) else "") + (" (waits for a run it needs)" if i in waiting else "")
            for s, p, i in zip(live["status"], position, live["id"])
        ],
        "name": live["name"],
        "model": live["model"],
        "dataset": live["dataset"].map(_runs.dataset_name),
        "progress": [f"{int(s or 0):,} / {int(t):,} steps" if pd.notna(t) else "—" for s, t in zip(live["step"].fillna(0), live["total_steps"])],
        "id": live["id"],
    })
    # st.table: static HTML. A dataframe grid redrawn every few seconds cost the browser 0.07 of a core.
    st.table(table.set_index("status"))


def queue_panel(drawn_active: bool) -> pd.DataFrame:
    """Running and queued runs; moves the queue along (runner.tick) on every refresh. Returns the
    run list it read, so that the rest of the refresh need not read it again."""
    runner.tick()
    runs = store.list_runs()
    active = bool(runs["status"].isin(["running", "queued"]).any())
    if active != drawn_active:
        st.rerun()  # start or stop the page's refresh timer
    st.markdown("**Training and waiting**")
    queue_table(runs)
    return runs


def queue_position(run_id: str, runs: pd.DataFrame) -> int | None:
    queued = runs[runs["status"] == "queued"].sort_values("created")
    ids = list(queued["id"])
    return ids.index(run_id) + 1 if run_id in ids else None


def run_panel(run_id: str, drawn_status: str, runs: pd.DataFrame) -> None:
    """The selected run, live: header, stop button, progress and growing curves."""
    try:
        record = store.get_run(run_id)
    except store.UnknownRunError:
        st.warning(f"Run {run_id} is no longer in the store.")
        return
    if record.is_final and record.status != drawn_status:
        st.rerun()  # an ended run gets its report, drawn once outside this fragment
    head = st.columns([5, 1], vertical_alignment="center")
    head[0].subheader(record.name)
    head[0].caption(f"{_runs.status_label(record.status)} · {record.id}" + (f" · {record.device}" if record.device else ""))
    if not record.is_final:
        head[1].button(
            "Stop" if record.status == "running" else "Remove from queue", key="tr-stop", icon=":material/stop:",
            on_click=runner.stop, args=(record.id,),
            help="A running run stops cleanly at its next step and keeps what it learned; a queued one never starts.",
        )
        if record.stop_requested and record.status == "running":
            st.caption("Stopping at the next step…")
        curve = _runs.live_curve(record.id)
        _runs.show_progress(record, curve.tail(), queue_position(record.id, runs) if record.status == "queued" else None)
        _runs.show_curves(record, f"tr-live-{record.id}", curve)


def _edit_copy(run_id: str) -> None:
    load_into_editor(store.get_run(run_id).train_config())
    flash("success", "The editor now holds that run's config: change what you want and launch.")


def live_view(run_id: str, drawn_status: str, drawn_active: bool) -> None:
    """The queue and the selected live run, refreshed together: one fragment update a second
    rather than two, since each update costs the browser about as much whatever it redraws."""
    runs = queue_panel(drawn_active)
    run_panel(run_id, drawn_status, runs)


def monitor() -> None:
    st.header("Runs")
    runs = store.list_runs()
    run_id = selected_run(runs)
    active = bool(runs["status"].isin(["running", "queued"]).any())
    if run_id is None:
        st.fragment(run_every=QUEUE_REFRESH_S if active else None)(queue_panel)(active)
        st.info("No runs yet: configure one above and press Launch, or start a preset.")
        return
    choices = list(runs["id"].head(RUN_CHOICES))
    if run_id not in choices:
        choices.insert(0, run_id)
    names = dict(zip(runs["id"], runs["name"] + " · " + runs["status"]))
    pick_key = f"tr_pick_{run_id}"  # a new widget per selection, so it always shows the selected run
    state[pick_key] = run_id
    st.selectbox("Show run", choices, format_func=lambda i: f"{names.get(i, i)} · {i}", key=pick_key,
                 on_change=_pick_run, args=(pick_key,))
    record = store.get_run(run_id)
    if not record.is_final:
        st.fragment(run_every=REFRESH_S)(live_view)(run_id, record.status, active)
        return
    st.fragment(run_every=QUEUE_REFRESH_S if active else None)(queue_panel)(active)
    run_panel(run_id, record.status, runs)
    _runs.show_final_report(record, f"tr-report-{run_id}")
    with st.expander("Config of this run"):
        st.button("Edit a copy in the editor above", key="tr-edit-copy", on_click=_edit_copy, args=(run_id,),
                  icon=":material/edit:")
        st.caption(versions.describe((record.summary or {}).get("versions")))
        st.json(record.config, expanded=False)


# ============================================================================ page


init_state()
st.title("Train")
show_flashes()

with st.expander("Presets: the course's experiments in one click", icon=":material/school:"):
    _presets.presets_panel()

editor, summary = st.columns([3, 2], gap="large")
with editor:
    try:
        values = current_values()
    except ConfigError:
        values = {f.key: state[f.widget_key] for f in ALL_FIELDS}
    tabs = st.tabs(["Data", "Model", "Augmentation", "Tricks", "Optimiser & schedule", "Run"])
    with tabs[0]:
        data_tab(values)
    with tabs[1]:
        model_tab(values)
    with tabs[2]:
        augment_tab()
    with tabs[3]:
        tricks_tab(values)
    with tabs[4]:
        draw_fields(OPTIM_FIELDS, values)
        lr_finder_panel()
        st.divider()
        draw_fields(SCHEDULE_FIELDS, values)
    with tabs[5]:
        draw_fields(RUN_FIELDS, values)

draw_estimate = None
with summary:
    try:
        config = current_config()
    except ConfigError as exc:
        config = None
        st.error(f"This config cannot run: {exc}", icon=":material/error:")
    if config is not None:
        draw_estimate = cost_panel(config)
    launch_panel(config)

monitor()

# Last, so that everything above is on screen while a few training steps are timed.
if draw_estimate is not None:
    draw_estimate()
