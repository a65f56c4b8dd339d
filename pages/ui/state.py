"""Session state declared in one place, and initialised by one function every page calls.

Every session-state key the app keeps across reruns is declared in `STATE` with its initial
value, and `init_state` (called by app.py before any page runs, and by each page before it reads
its state) fills in what is missing. Keys that are also widget keys keep their value when the
user visits another page: Streamlit drops the state of widgets that were not drawn in a run
unless the value was set through the session-state API, which `init_state` does on every run.
"""
from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from core.augment import Pipeline
from core.data.samples import default_sample
from core.i18n import DEFAULT, LANGUAGES, _, use_language_source
from core.lessons import Lesson
from core.runs import runner

# Long side of the working image in pixels: large enough to judge an augmentation, small enough
# that a grid of 24 tiles stays interactive on a 2-core laptop.
PREVIEW_SIDE = 512
# The preview's tiles are computed at about the size they are shown: the wide layout gives the
# grid some 1,000 px of a laptop screen, shared by the columns (4 columns: 256 px tiles, a quarter
# of the working image's pixels). A tile at the working image's full size is one click away.
GRID_WIDTH = 1024


def tile_side(cols: int) -> int:
    """Long side in pixels of the preview's tiles in a grid of `cols` columns."""
    return min(PREVIEW_SIDE, max(128, GRID_WIDTH // max(1, cols)))


_heap_frozen = False  # per server process: this module is imported once, whatever the reruns


def freeze_startup_heap() -> None:
    """Once per server: exempt what it holds after its first page run from Python's full garbage
    collections.

    Python's collector, and Streamlit's full collection after every script run when its
    runner.postScriptGC option is on (off in .streamlit/config.toml), scan every tracked object:
    with torch, torchvision, pandas, plotly and scikit-image loaded, some 400,000 of them and
    ~200 ms of CPU each time; a live page refreshing every second kept a quarter of a core busy
    doing nothing else. Those objects are modules, classes and caches that live as long as the
    server, so they are frozen once (gc.freeze); later collections scan only what came after, and
    objects still free themselves by reference counting as usual.
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


LANG = "lang"  # session state and URL parameter: the language the pages speak
OWNER = "owner"  # session state: whose runs this session launches
APP_RAN = "app_ran"  # session state: this session has had a run through app.py (run_through_the_app)
MAX_OWNER_CHARS = 40


def browser_locale() -> str | None:
    """The browser's preferred language, e.g. "zh-CN" (None where unknown)."""
    return st.context.locale


def initial_language() -> str:
    """`?lang=en|zh` in the URL, else the browser's language, else English."""
    asked = st.query_params.get(LANG)
    if asked in LANGUAGES:
        return asked
    if asked is not None:
        # a link is validated like any input: a message, and the page opens in the browser's language
        st.session_state.setdefault("flash", []).append(
            ("warning", _("The link asks for an unknown language ({value}); known: {known}.").format(
                value=asked[:20], known=", ".join(LANGUAGES)))
        )
    browser = (browser_locale() or "").lower()
    for code in LANGUAGES:
        if browser == code or browser.startswith(code + "-"):
            return code
    return DEFAULT


# key -> function giving its initial value (a function, so that mutable values are never shared)
STATE: dict[str, Callable[[], Any]] = {
    LANG: initial_language,  # widget: the sidebar's language switch (language_switch)
    APP_RAN: lambda: False,  # set by app.py's every run (through_the_app)
    # widget: the name this browser session's runs are queued under (owner_field); the queue takes
    # turns between names, so a class sharing one app shares it fairly
    OWNER: lambda: f"guest-{os.urandom(2).hex()}",
    # the lab's pipeline and one stable id per step: widget keys use the id, so a step keeps its
    # widgets when it moves and a replaced pipeline gets fresh widgets seeded from its values
    "lab_pipeline": default_pipeline,
    "lab_step_ids": lambda: [],
    "lab_next_step_id": lambda: 0,
    "lab_link_read": lambda: False,  # whether the link in the URL was read (first run only)
    "lab_lesson": lambda: Lesson(page="lab"),  # what a lesson link locked or hid (core.lessons)
    "lab_image": lambda: None,  # WorkingImage shown and augmented
    "lab_sample": default_sample,  # widget: the sample picked
    "lab_add_op": lambda: "hflip",  # widget: the augmentation the "Add" button adds
    "lab_seed": lambda: 0,  # widget: the preview grid's seed
    "lab_rows": lambda: 2,  # widget
    "lab_cols": lambda: 4,  # widget
    "lab_full_tile": lambda: None,  # widget: the tile shown at full size (1-based), if any
    "lab_mix_kind": lambda: "Mixup",  # widget
    "lab_mix_alpha": lambda: 1.0,  # widget
    "lab_mix_seed": lambda: 0,  # widget
    "flash": lambda: [],  # (kind, text) messages from callbacks, shown once by show_flashes
    # ---- the Train page (pages/train.py)
    "tr_link_read": lambda: False,  # whether the lesson link in the URL was read (first run only)
    "tr_lesson": lambda: Lesson(page="train"),  # what a lesson link locked or hid
    "tr_pipeline": Pipeline.empty,  # the augmentation the next run trains with
    "tr_step_ids": lambda: [],  # one stable id per step, as the lab's (pages/ui/pipeline_editor.py)
    "tr_next_step_id": lambda: 0,
    "tr_add_op": lambda: "hflip",  # widget: the augmentation the "Add" button adds
    "tr_seeded": lambda: False,  # whether the editor's widgets hold a config yet
    "tr_auto_estimate": lambda: True,  # widget: time a few steps to estimate each config's duration
    "tr_replay": lambda: None,  # the replay playing (core.runs.replay.Replay), if any
    "tr_replay_speed": lambda: 5,  # widget: 1, 5 or 20 times as fast as the run trained
    "tr_lr_found": lambda: None,  # the LR finder's last result: {"curve": DataFrame, "lr": float, "key": str}
    # ---- the Train page's datasets section (pages/dataset_picker.py)
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
    "compare_export_weights": lambda: False,  # widget: the exported run file holds the weights
    "compare_probe_shown": lambda: None,  # (run ids, corruption) the robustness probe was asked for
}


_this_run = threading.local()  # per script thread: whether the run in progress is app.py's


@contextmanager
def through_the_app() -> Iterator[None]:
    """app.py runs everything inside this, the page it hands over to included."""
    _this_run.app = True
    st.session_state[APP_RAN] = True
    try:
        yield
    finally:
        _this_run.app = False


def run_through_the_app() -> None:
    """Make sure this run goes through app.py's st.navigation, whatever URL the tab asked for.

    Streamlit treats an app with a folder named pages/ as a v1 multipage app until some run calls
    st.navigation: on a server that has just started, a tab that opens (or reconnects to) /train
    directly ran pages/train.py on its own, with a sidebar listing the folder's files (app,
    compare, lab, train) instead of the app's navigation. The flag is process-wide and only
    st.navigation clears it, so two tabs reconnecting at once could both be served that way.
    Hence the check: a session's first run that reaches a page without app.py around it (in the
    app's server) clears the flag and reruns, and the rerun is app.py's. Only the first: a session
    that has been through app.py once keeps its navigation, and a rerun later would drop a click.
    (streamlit.runtime.pages_manager.PagesManager.uses_pages_directory; the browser test
    test_a_killed_server_leaves_the_run_training_and_a_reopened_page_shows_it_live holds it.)
    """
    if getattr(_this_run, "app", False) or st.session_state.get(APP_RAN):
        return
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or Path(ctx.main_script_path).name != "app.py":
        return  # a page run on its own, as a test may
    PagesManager.uses_pages_directory = False
    st.rerun()


def init_state(only_missing: bool = False) -> None:
    """Fills in the declared keys that are missing. At the top of a run it also sets every present
    key again (keeps widget values across pages); only_missing: from code that may run after a
    widget was drawn, where setting its key would fail."""
    if not only_missing:
        run_through_the_app()
    for key, initial in STATE.items():
        if key not in st.session_state:
            st.session_state[key] = initial()
        elif not only_missing:
            st.session_state[key] = st.session_state[key]  # keeps widget values across pages


def session_owner() -> str | None:
    """The session's name in the queue, for core.runs.runner (None outside a session's run)."""
    name = str(st.session_state.get(OWNER) or "").strip()[:MAX_OWNER_CHARS]
    return name or None


def owner_field() -> None:
    """The sidebar's "Your name in the queue", on the pages that launch runs."""
    runner.use_owner_source(session_owner)
    st.sidebar.text_input(
        _("Your name in the queue"), key=OWNER, max_chars=MAX_OWNER_CHARS,
        help=_("The runs you launch are queued under this name. When several people share this app, the "
               "queue takes turns between names, so nobody's runs wait behind a classmate's whole list."),
    )


def session_language() -> str | None:
    """The session's language, for core.i18n (None outside a session's run)."""
    return st.session_state.get(LANG)


# in both languages, on purpose: whoever cannot read the current one still finds the switch
SWITCH_LABEL = "Language · 语言"


runner.use_owner_source(session_owner)  # every run a session launches is queued under its name
use_language_source(session_language)  # every message of a session's run in the session's language


def _plain(value: Any) -> bool:
    """A value a choice widget holds (text, a number, a list of them); not a button's or an upload's."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (str, int, float))


def _keep_widget_values() -> None:
    """Before the first run in a new language: every choice keeps its value. A select box tells its
    choice by the text it showed, which the new language changes; setting each value through the
    session state (read here with the old texts) makes the widgets start from it instead.
    Buttons, uploads and checkboxes are left alone: their state does not depend on texts, and
    Streamlit forbids setting some of them."""
    for key in list(st.session_state):
        if key != LANG and _plain(st.session_state[key]):
            st.session_state[key] = st.session_state[key]


def language_switch() -> None:
    """The sidebar's language switch, drawn by each page after init_state; the URL keeps the
    language, so a shared link opens in it."""
    use_language_source(session_language)  # again on every run: whatever else registered one since
    st.sidebar.segmented_control(SWITCH_LABEL, list(LANGUAGES), format_func=LANGUAGES.get, key=LANG,
                                 required=True, on_change=_keep_widget_values)
    if st.query_params.get(LANG) != st.session_state[LANG]:
        st.query_params[LANG] = st.session_state[LANG]
