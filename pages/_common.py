"""UI helpers shared by the pages: session state declared in one place, messages, image loading.

Every session-state key the app keeps across reruns is declared in `STATE` with its initial
value, and `init_state` (called by app.py before any page runs, and by each page before it reads
its state) fills in what is missing. Keys
that are also widget keys keep their value when the user visits another page: Streamlit drops
the state of widgets that were not drawn in a run unless the value was set through the
session-state API, which `init_state` does on every run.
"""
from __future__ import annotations

import base64
import binascii
import gc
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from core.augment import AugmentError, Param, Pipeline, load_json
from core.data.images import ImageError, LoadedImage, load_image, to_png_bytes
from core.data.samples import default_sample, sample_bytes

# Long side of the working image in pixels: large enough to judge an augmentation, small enough
# that a grid of 24 tiles stays interactive on a 2-core laptop.
PREVIEW_SIDE = 512
# number inputs travel through JavaScript, whose integers are exact only up to 2**53
MAX_SEED = 2**53 - 1


_heap_frozen = False  # per server process: this module is imported once, whatever the reruns


def freeze_startup_heap() -> None:
    """Exempt what the server holds after its first page run from Python's full garbage collections.

    Streamlit runs gc.collect(2) after every script run, fragment runs included (its
    runner.postScriptGC option). With torch, torchvision, pandas, plotly and scikit-image loaded,
    that is some 400,000 tracked objects and ~200 ms of CPU each time: a live page refreshing
    every second kept a quarter of a core busy doing nothing else, taken from the training run
    beside it. Those objects are modules, classes and caches that live as long as the server, so
    they are frozen once (gc.freeze); later collections scan only what came after, and objects
    still free themselves by reference counting as usual.
    """
    global _heap_frozen
    if _heap_frozen:
        return
    gc.collect()  # nothing that is already garbage gets frozen
    gc.freeze()
    _heap_frozen = True


def default_pipeline() -> Pipeline:
    """What the lab opens with: the classic ImageNet-style trio, so there is something to see."""
    return Pipeline.of("hflip", "random_resized_crop", "color_jitter")


# key -> function giving its initial value (a function, so that mutable values are never shared)
STATE: dict[str, Callable[[], Any]] = {
    # the lab's pipeline and one stable id per step: widget keys use the id, so a step keeps its
    # widgets when it moves and a replaced pipeline gets fresh widgets seeded from its values
    "lab_pipeline": default_pipeline,
    "lab_step_ids": lambda: [],
    "lab_next_step_id": lambda: 0,
    "lab_link_read": lambda: False,  # whether the pipeline in the URL was read (first run only)
    "lab_image": lambda: None,  # WorkingImage shown and augmented
    "lab_sample": default_sample,  # widget: the sample picked
    "lab_add_op": lambda: "hflip",  # widget: the augmentation the "Add" button adds
    "lab_seed": lambda: 0,  # widget: the preview grid's seed
    "lab_rows": lambda: 2,  # widget
    "lab_cols": lambda: 4,  # widget
    "lab_mix_kind": lambda: "Mixup",  # widget
    "lab_mix_alpha": lambda: 1.0,  # widget
    "lab_mix_seed": lambda: 0,  # widget
    "flash": lambda: [],  # (kind, text) messages from callbacks, shown once by show_flashes
    # ---- the Train page (pages/train.py)
    "tr_pipeline": Pipeline.empty,  # the augmentation the next run trains with
    "tr_pipeline_version": lambda: 0,  # bumped when the pipeline is replaced: fresh step widgets
    "tr_seeded": lambda: False,  # whether the editor's widgets hold a config yet
    "tr_auto_estimate": lambda: True,  # widget: time a few steps to estimate each config's duration
    "tr_lr_found": lambda: None,  # the LR finder's last result: {"curve": DataFrame, "lr": float, "key": str}
    # ---- the Train page's datasets section (pages/_datasets.py)
    "tr_pointed": lambda: [],  # zip:/folder: datasets pointed to in this session, offered in the list
    # The budget suggest_budget last set: {"dataset", "before": (batch, epochs), "after": (batch, epochs), "note"}.
    # Undone when another dataset is chosen and the widgets still hold it.
    "tr_budget": lambda: None,
    "tr_point_path": lambda: "",  # widget: a path typed in
    # ---- the Compare page (pages/compare.py; the selection is shared: the Train page sets compare_runs)
    "compare_runs": list,  # the run ids picked, kept while the user visits other pages
    "compare_link": lambda: None,  # the ?runs= value already read, so a link is applied once
    "compare_grouped": lambda: True,  # widget: seed groups drawn as mean and band
    "compare_auto": lambda: None,  # the newest group the page opened on, while the user has not picked
    "compare_emptied": lambda: False,  # the user emptied the picker: do not fill it again
}


def init_state(only_missing: bool = False) -> None:
    """Fills in the declared keys that are missing. At the top of a run it also sets every present
    key again (keeps widget values across pages); only_missing: from code that may run after a
    widget was drawn, where setting its key would fail."""
    for key, initial in STATE.items():
        if key not in st.session_state:
            st.session_state[key] = initial()
        elif not only_missing:
            st.session_state[key] = st.session_state[key]  # keeps widget values across pages


# ---- messages ----------------------------------------------------------------------------------
# Callbacks run before the page is drawn, so they cannot show anything themselves: they leave a
# message that the page shows once, where it calls show_flashes.


def flash(kind: str, text: str) -> None:
    assert kind in ("error", "warning", "info", "success"), kind
    st.session_state["flash"] = [*st.session_state.get("flash", []), (kind, text)]


def show_flashes() -> None:
    for kind, text in st.session_state.get("flash", []):
        getattr(st, kind)(text)
    st.session_state["flash"] = []


def explain(error: BaseException) -> str:
    """An exception in words for the user; unexpected ones also name their type, for a bug report."""
    if isinstance(error, (ImageError, AugmentError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def read_pipeline_upload(key: str) -> tuple[Pipeline, int | None] | None:
    """The pipeline and seed of the JSON file uploaded under widget `key`, for its on_change callback.

    None when nothing is uploaded, or when the file cannot be used: then a message says why and the
    page keeps its current pipeline.
    """
    file = st.session_state.get(key)
    if file is None:
        return None
    try:
        pipeline, seed = load_json(file.getvalue())
        if seed is not None and seed > MAX_SEED:
            raise AugmentError(f"'seed' must be at most {MAX_SEED}, got {seed}")
    except Exception as e:  # anything in an uploaded file is the file's fault: say so, keep the page
        flash("error", f"Could not load {file.name}: {explain(e)}. The pipeline is unchanged.")
        return None
    return pipeline, seed


def show_error(message: str, error: BaseException | None = None) -> None:
    st.error(f"{message}: {explain(error)}" if error is not None else message, icon=":material/error:")


# ---- images ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkingImage:
    name: str  # the file name or sample name, shown to the user
    key: str  # digest of the encoded bytes: identifies the pixels for caching
    image: LoadedImage
    is_sample: bool = False  # a bundled sample rather than the user's own file


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@st.cache_data(max_entries=32, show_spinner="Decoding the image…")
def _decode(key: str, _data: bytes, max_side: int) -> LoadedImage:
    # keyed by the bytes' digest (computed once by the caller) rather than by hashing the bytes again
    return load_image(_data, max_side)


def load_bytes(name: str, data: bytes, max_side: int = PREVIEW_SIDE, is_sample: bool = False) -> WorkingImage:
    """Decode uploaded bytes (cached by their digest); raises ImageError with a message for the user."""
    key = digest(data)
    return WorkingImage(name, key, _decode(key, data, max_side), is_sample)


def load_sample_image(name: str, max_side: int = PREVIEW_SIDE) -> WorkingImage:
    return load_bytes(name, sample_bytes(name), max_side, is_sample=True)


def png(image) -> bytes:
    """PNG bytes of a tensor [C,H,W], a batch (as a grid) or a PIL image, for downloads."""
    return to_png_bytes(image)


# ---- pipelines in links ------------------------------------------------------------------------
# A shareable link carries the pipeline as compact JSON in URL-safe base64 (no padding), so a
# link pasted into a chat still works and the page can rebuild the exact same pipeline.


def pipeline_to_param(pipeline: Pipeline) -> str:
    text = json.dumps(pipeline.to_list(), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def pipeline_from_param(value: str) -> Pipeline:
    """Raises AugmentError with a readable message for anything that is not a valid pipeline."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise AugmentError("the link's pipeline is damaged (not URL-safe base64)") from None
    try:
        items = json.loads(text)
    except ValueError as e:
        raise AugmentError(f"the link's pipeline is not valid JSON ({e})") from None
    return Pipeline.from_list(items)


def seed_from_param(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_SEED:
        raise AugmentError(f"the link's seed must be a non-negative whole number, got {value!r}")
    return int(value)


def param_widget(param: Param, key: str, value: Any, disabled: bool) -> Any:
    """The widget an augmentation parameter's schema declares (checkbox, select box, slider, or a
    number box when it has no bounds), started at `value` the first time; returns the schema value.

    The Lab and the Train page's pipeline editor both draw their steps with it."""
    if key not in st.session_state:
        st.session_state[key] = tuple(value) if param.kind.endswith("_range") else value
    common = {"key": key, "help": param.help or None, "disabled": disabled}
    if param.kind == "bool":
        return st.checkbox(param.name, **common)
    if param.kind == "choice":
        return st.selectbox(param.name, list(param.choices), **common)
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
