"""Train: configure a run, launch it, watch it learn, and read its report when it ends.

Top: the course's experiments as one-click presets. Middle: the config editor (tabs for data,
model, augmentation, tricks, optimiser and schedule, run) next to what the run will cost.
Bottom: the run monitor. The fields, the panels and the monitor live in pages/ui; this page lays
out the tabs and launches.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.augment import AugmentError, Pipeline
from core.data import DATASETS, DatasetError, available_datasets
from core.data.uploads import MAX_UPLOAD_BYTES, find_upload, list_uploads, save_upload
from core import lessons
from core.i18n import _, tr
from core.lessons import pipeline_from_param, pipeline_param_from_link
from core.runs import runner, store
from core.training import weights
from core.training.config import ConfigError, TrainConfig
from core.training.models import MODELS
from pages.ui import dataset_picker, preset_panel
from pages.ui import state as ui_state
from pages.ui.config_form import (
    ALL_FIELDS,
    DATA_FIELDS,
    DISTILL_FIELDS,
    FINETUNE_FIELDS,
    MIX_FIELDS,
    OPTIM_FIELDS,
    PIPELINE,
    RUN_FIELDS,
    SCHEDULE_FIELDS,
    current_config,
    current_values,
    draw_field,
    draw_fields,
    draw_model_options,
    field,
    load_into_editor,
    run_picker,
)
from pages.ui.cost_panel import cost_panel
from pages.ui.lesson_panel import lesson_banner, lesson_panel
from pages.ui.links import read_pipeline_upload
from pages.ui.lr_finder_panel import lr_finder_panel
from pages.ui.messages import flash, show_flashes, stop_unless_the_store_works
from pages.ui.run_monitor import monitor

state = st.session_state
LINK_EXAMPLE = "http://localhost:8501/?p=…&seed=0"  # an address: the same in every language

# This page's session state is declared with every page's in pages/ui/state.py (STATE); the editor's
# field widgets are seeded by load_into_editor and keep their values across pages with
# persist_state="session".


def init_state() -> None:
    ui_state.init_state()
    if not state["tr_seeded"]:
        load_into_editor(TrainConfig())



def _dataset_label(name: str, available: list[str]) -> str:
    if name in DATASETS:
        info = DATASETS[name]
        return tr(info.label) + ("" if name in available else _(" · not on this machine"))
    upload = find_upload(name)
    return dataset_picker.label(name, upload)


def _on_zip_upload() -> None:
    file = state.get("tr_zip_upload")
    if file is None:
        return
    try:
        upload = save_upload(file.name, file.getvalue())
    except DatasetError as exc:
        flash("error", _("{name} cannot be used as a dataset: {exc} The selected dataset is unchanged.").format(
            name=file.name,
            exc=exc,
        ))
        return
    except Exception as exc:  # an unexpected failure must not take the page down
        flash("error", _("{name} could not be read ({error_type}: {exc}). The selected dataset is unchanged.").format(
            name=file.name,
            error_type=type(exc).__name__,
            exc=exc,
        ))
        return
    state[field("data.dataset").widget_key] = upload.dataset
    flash("success", _("Uploaded {summary}. It is selected as the dataset.").format(summary=upload.summary)
          + (f" ({upload.note})" if upload.note else ""))
    dataset_picker.dataset_chosen(upload.dataset, new=True)


def data_tab(values: Mapping[str, Any]) -> None:
    available = available_datasets()
    options = dataset_picker.dataset_options([*DATASETS, *(u.dataset for u in list_uploads())])
    key = field("data.dataset").widget_key
    if state[key] not in options:
        options.append(state[key])  # e.g. a folder: path from a loaded run config
    st.selectbox(field("data.dataset").label, options, format_func=lambda n: _dataset_label(n, available), key=key,
                 help=field("data.dataset").help, persist_state="session", on_change=dataset_picker.on_dataset_selected)
    name = state[key]
    if name in DATASETS:
        st.caption(tr(DATASETS[name].help))
    dataset_picker.budget_note(name)
    draw_fields(DATA_FIELDS[1:], values)  # the dataset itself is the selectbox above
    st.file_uploader(
        _("Upload a dataset: a zip of class folders"), type=["zip"], key="tr_zip_upload", on_change=_on_zip_upload,
        help=_(
            "<class>/<image> for every class (at least two), optionally inside train/ and "
            "test/ folders; one wrapping folder is fine. Up to {megabytes} MB. Without a test "
            "folder, a share of each class is held out as the test split."
        ).format(
            megabytes=MAX_UPLOAD_BYTES // 2**20,
        ),
    )
    dataset_picker.sources_panel()



def model_tab(values: Mapping[str, Any]) -> None:
    key = field("model.name").widget_key
    st.selectbox(field("model.name").label, list(MODELS), format_func=lambda n: tr(MODELS[n].label), key=key,
                 help=field("model.name").help, persist_state="session")
    info = MODELS[state[key]]
    st.caption(tr(info.help))
    draw_field(field("model.init"), values)
    source = run_picker("model.init_from_run", _("none (train from the initialisation above)"))
    if source:
        try:
            trained = store.get_run(source).config["model"]["name"]
        except store.UnknownRunError:
            trained = None
        if trained is not None and trained != state[key]:
            st.warning(_(
                "That run trained a {model}; its weights fit only the same model, so this run "
                "would fail. Pick {trained} above or another run."
            ).format(
                model=tr(MODELS[trained].label) if trained in MODELS else trained,
                trained=trained,
            ))
    pretrained_note(state[key])
    draw_model_options(state[key])


def pretrained_note(name: str) -> None:
    """For a model that can start from ImageNet weights: whether they are here, and how to get them."""
    arch = MODELS[name].pretrained
    if arch is None:
        return
    found = weights.availability(arch)
    if found.present:
        st.caption(_("ImageNet weights: in place ({path}).").format(path=found.path))
    else:
        st.info(found.message, icon=":material/download:")



def _use_lab_pipeline() -> None:
    pipeline = state.get("lab_pipeline")
    if pipeline is not None:
        PIPELINE.set(pipeline)
        flash("success", _("Using the Augmentation Lab's pipeline ({n_steps} steps).").format(n_steps=len(pipeline.steps)))


def _on_pipeline_json() -> None:
    loaded = read_pipeline_upload("tr_pipeline_json")
    if loaded is None:
        return
    pipeline, unused = loaded  # the Train page has no preview seed: a run's seed is in the Run tab
    PIPELINE.set(pipeline)
    flash("success", _("Loaded {n_steps} step(s) from {name}.").format(
        n_steps=len(pipeline.steps),
        name=state['tr_pipeline_json'].name,
    ))


def _on_pipeline_link() -> None:
    text = state.get("tr_pipeline_link", "")
    if not text.strip():
        return
    try:
        pipeline = pipeline_from_param(pipeline_param_from_link(text))
    except AugmentError as exc:
        flash("error", _("The link's pipeline could not be used: {exc}. The pipeline is unchanged.").format(exc=exc))
        return
    PIPELINE.set(pipeline)
    flash("success", _("Loaded {n_steps} step(s) from the link.").format(n_steps=len(pipeline.steps)))


def augment_tab() -> None:
    pipeline = PIPELINE.pipeline
    st.caption(
        _(
            "The training split goes through this pipeline, each image with its own random "
            "draws; the test split is never augmented. The Augmentation Lab previews exactly "
            "what it does."
        )
    )
    lab = state.get("lab_pipeline")
    top = st.columns(2)
    top[0].button(
        _("Use the Lab's pipeline ({n_steps} steps)").format(n_steps=len(lab.steps)) if lab is not None else _("Use the Lab's pipeline"),
        on_click=_use_lab_pipeline, disabled=lab is None, key="tr-use-lab", icon=":material/science:",
        help=_(
            "Copy the pipeline you built on the Augmentation Lab page (including one loaded "
            "there from JSON or a link)."
        ),
    )
    top[1].button(_("No augmentation"), on_click=PIPELINE.set, args=(Pipeline.empty(),), key="tr-clear-pipeline",
                  icon=":material/block:", disabled=not pipeline.steps)
    load = st.columns(2)
    load[0].file_uploader(_("Load a pipeline (JSON)"), type=["json"], key="tr_pipeline_json", on_change=_on_pipeline_json,
                          help=_("A pipeline saved from the Augmentation Lab (its Export tab)."))
    load[1].text_input(_("…or paste a link shared from the Augmentation Lab"), key="tr_pipeline_link",
                       on_change=_on_pipeline_link, placeholder=LINK_EXAMPLE)

    if not pipeline.steps:
        st.info(_("No augmentation: the model sees the training images as they are."))
    PIPELINE.draw()


def tricks_tab(values: Mapping[str, Any]) -> None:
    st.markdown(_("**Label smoothing and batch mixing**"))
    draw_fields(MIX_FIELDS, values)
    st.markdown(_("**Distillation**"))
    run_picker("tricks.teacher_run_id", _("none (no distillation)"))
    draw_fields(DISTILL_FIELDS[1:], values)  # the teacher is the selectbox above
    st.markdown(_("**Fine-tuning: differential learning rate and freezing**"))
    draw_fields(FINETUNE_FIELDS, values)
    st.caption(_("Warmup and the linear scaling rule are in the Optimiser & schedule tab."))



def _launch() -> None:
    try:
        cfg = current_config()
        run_id = runner.launch(cfg, state.get("tr_run_name", "").strip() or None)
    except (ConfigError, ValueError) as exc:
        flash("error", _("Not launched: {exc}").format(exc=exc))
        return
    st.query_params["run"] = run_id
    record = store.get_run(run_id)
    if record.status == "queued":
        flash("info", _("Queued {name}: it starts when a running run ends.").format(name=record.name))
    else:
        flash("success", _("Launched {name}.").format(name=record.name))


def launch_panel(cfg: TrainConfig | None) -> None:
    st.text_input(_("Run name"), key="tr_run_name", placeholder=store.default_run_name(cfg) if cfg else "",
                  help=_("Shown in the run list and the comparison; empty: model on dataset."), persist_state="session")
    cols = st.columns([2, 1], vertical_alignment="bottom")
    cols[0].button(_("Launch"), key="tr-launch", type="primary", icon=":material/rocket_launch:", on_click=_launch,
                   disabled=cfg is None, width="stretch")
    cols[0].caption(runner.where_runs_train())
    cols[1].number_input(
        _("Runs at once"), min_value=1, max_value=16, value=runner.max_concurrent(), key="tr_max_concurrent",
        on_change=lambda: runner.set_max_concurrent(int(state["tr_max_concurrent"])),
        help=_(
            "More runs than this wait in the queue and start in turn. One is right for a "
            "CPU, where two runs would each take twice as long; a large GPU can take several."
        ),
    )



def editor_and_launch():
    """The config editor's tabs, and beside them what the config costs and its Launch; returns
    the cost panel's estimate to draw last (None if there is none)."""
    editor, summary = st.columns([3, 2], gap="large")
    with editor:
        try:
            values = current_values()
        except ConfigError:
            values = {f.key: state[f.widget_key] for f in ALL_FIELDS}
        tabs = st.tabs([_("Data"), _("Model"), _("Augmentation"), _("Tricks"), _("Optimiser & schedule"), _("Run")])
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
    with summary:
        try:
            config = current_config()
        except ConfigError as exc:
            config = None
            st.error(_("This config cannot run: {exc}").format(exc=exc), icon=":material/error:")
        draw_estimate = cost_panel(config) if config is not None else None
        launch_panel(config)
    return draw_estimate


def _read_link() -> None:
    """On a session's first run, take a lesson link's preset and what it locked or hid."""
    if state["tr_link_read"]:
        return
    state["tr_link_read"] = True
    lesson, problems = lessons.read_link("train", st.query_params.to_dict())
    for problem in problems:
        flash(problem.kind, problem.text)
    preset_panel.use_lesson(lesson)
    state["tr_lesson"] = lesson


init_state()
ui_state.language_switch()
ui_state.owner_field()
stop_unless_the_store_works()
_read_link()
lesson = state["tr_lesson"]
st.title(_("Train"))
show_flashes()
lesson_banner(lesson)

with st.expander(_("Presets: the course's experiments in one click"), icon=":material/school:",
                 expanded=lesson.preset is not None):
    preset_panel.presets_panel(lesson)

draw_estimate = None
if lesson.shown("editor"):  # a lesson link may show the preset and the runs only
    with st.expander(_("Lesson link for a class"), icon=":material/qr_code:"):
        lesson_panel(preset_panel.lesson_from_panel(), "tr_lesson_link")
    draw_estimate = editor_and_launch()

monitor()

# Last, so that everything above is on screen while a few training steps are timed.
if draw_estimate is not None:
    draw_estimate()
