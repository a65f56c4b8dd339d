"""The Train page's run monitor: the queue, the selected run live, and its report once it ends.

The selected run is ?run=<id> in the URL (by default the newest running one). A live run is
drawn by a fragment that polls the run store every second and moves the queue along; training
happens in separate processes started by core.runs.runner, so this only reads the store.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import versions
from core.i18n import _
from core.runs import runner, store
from pages.ui import run_view
from pages.ui.config_form import load_into_editor
from pages.ui.messages import flash
from pages.ui.replay_panel import replay_panel

state = st.session_state


REFRESH_S = 1.0  # live view refresh: curves grow at least once a second
# Shown alone (the selected run has ended), the queue table and the queue's progress (runner.tick)
# need no such pace: a queued run waits for a whole run to end, and a training process starts the
# next one itself when it ends. With a live run selected, they ride along with its refresh.
QUEUE_REFRESH_S = 3.0
RUN_CHOICES = 200  # newest runs offered in the run picker
# A live tab's refresh reads the run list and moves the queue along; every tab of a server shares
# one such read per SHARED_READ_S (bench/soak.py: ten live tabs made ten reads a second, each parsing
# every run's config, and the server's share of the cores went to that).
SHARED_READ_S = 0.5



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


def _queue_status(status: str, position: float, waits: bool) -> str:
    """"queued #2 (waits for a run it needs)": the status, the place in the queue, what it waits for."""
    text = run_view.status_text(status)
    if pd.notna(position):
        text = _("{status} #{position}").format(status=text, position=int(position))
    return _("{status} (waits for a run it needs)").format(status=text) if waits else text


def with_queue_positions(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with `position`: a queued run's place in the order the queue will start them (1:
    next), read once per refresh for the table and the selected run alike."""
    order = {run_id: i for i, (run_id, unused) in enumerate(store.queue_order(), 1)}
    return runs.assign(position=runs["id"].map(order).where(runs["status"] == "queued"))


@dataclass(frozen=True)
class QueueView:
    """The run list as one refresh reads it: every run with its queue position, and the queued runs
    that wait for a run they need (a teacher, weights to start from)."""

    runs: pd.DataFrame
    waiting: frozenset[str]


def _read_queue() -> QueueView:
    runner.tick()
    runs = with_queue_positions(store.list_runs())
    waiting = frozenset(run_id for run_id in runs.loc[runs["status"] == "queued", "id"] if store.waiting_for(run_id))
    return QueueView(runs, waiting)


_shared: dict[str, tuple[float, QueueView]] = {}  # store -> (when read, what was read), for every session
_shared_lock = threading.Lock()


def _timed_refresh() -> bool:
    """Whether this script run is a fragment's rerun alone (a live view's timer, a click inside it),
    not a whole page run."""
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def queue_view() -> QueueView:
    """The run list and the queue, moved along. A whole page run (a page opened, a click) reads
    them afresh; a live view's refresh takes the read another tab of this server made less than
    SHARED_READ_S ago, so ten tabs watching cost about as much as two."""
    where = store.where()
    if not _timed_refresh():
        view = _read_queue()
        with _shared_lock:
            _shared[where] = (time.monotonic(), view)
        return view
    with _shared_lock:  # one tab reads while the others wait for it, then all share the read
        held = _shared.get(where)
        if held is None or time.monotonic() - held[0] >= SHARED_READ_S:
            held = (time.monotonic(), _read_queue())
            _shared[where] = held
        return held[1]


def _in_queue_order(runs: pd.DataFrame) -> pd.DataFrame:
    """Running runs (oldest first), then the queued ones in the order they will start."""
    running = runs[runs["status"] == "running"].sort_values("created")
    queued = runs[runs["status"] == "queued"].sort_values("position")
    return pd.concat([running, queued], ignore_index=True)


def _owner_text(owner: object) -> str:
    return str(owner) if isinstance(owner, str) and owner else "—"


def queue_table(view: QueueView) -> None:
    runs = view.runs
    live = _in_queue_order(runs[runs["status"].isin(["running", "queued"])])
    if live.empty:
        st.caption(_("Nothing is training or waiting."))
        return
    queued = live[live["status"] == "queued"]
    if not queued.empty:
        first = queued.iloc[0]
        st.caption(_("Next to start: {name}, queued by {owner}. The queue takes turns between the names that have "
                     "runs waiting.").format(name=first["name"], owner=_owner_text(first["owner"])))
    waiting = view.waiting
    # the column names are what a person reads: st.table has no separate labels
    status = _("status")
    table = pd.DataFrame({
        status: [_queue_status(s, p, i in waiting) for s, p, i in zip(live["status"], live["position"], live["id"])],
        _("queued by"): live["owner"].map(_owner_text),
        _("name"): live["name"],
        _("model"): live["model"],
        _("dataset"): live["dataset"].map(run_view.dataset_name),
        _("progress"): [
            _("{step:,} / {total:,} steps").format(step=int(s or 0), total=int(t)) if pd.notna(t) else "—"
            for s, t in zip(live["step"].fillna(0), live["total_steps"])
        ],
        _("id"): live["id"],
    })
    # st.table: static HTML. A dataframe grid redrawn every few seconds cost the browser 0.07 of a core.
    st.table(table.set_index(status))


def queue_panel(drawn_active: bool) -> pd.DataFrame:
    """Running and queued runs; moves the queue along (runner.tick) on every refresh. Returns the
    run list it read, so that the rest of the refresh need not read it again."""
    view = queue_view()
    runs = view.runs
    active = bool(runs["status"].isin(["running", "queued"]).any())
    if active != drawn_active:
        st.rerun()  # start or stop the page's refresh timer
    st.markdown(_("**Training and waiting**"))
    queue_table(view)
    return runs


def queue_position(run_id: str, runs: pd.DataFrame) -> int | None:
    """The run's place in the order the queue will start runs (1: next), None if not queued."""
    position = runs.loc[runs["id"] == run_id, "position"] if "position" in runs else pd.Series(dtype=float)
    return int(position.iloc[0]) if len(position) and pd.notna(position.iloc[0]) else None


def run_panel(run_id: str, drawn_status: str, runs: pd.DataFrame) -> None:
    """The selected run, live: header, stop button, progress and growing curves."""
    try:
        record = store.get_run(run_id)
    except store.UnknownRunError:
        st.warning(_("Run {run_id} is no longer in the store.").format(run_id=run_id))
        return
    if record.is_final and record.status != drawn_status:
        st.rerun()  # an ended run gets its report, drawn once outside this fragment
    head = st.columns([5, 1], vertical_alignment="center")
    head[0].subheader(record.name)
    head[0].caption(f"{run_view.status_label(record.status)} · {record.id}" + (f" · {record.device}" if record.device else ""))
    if not record.is_final:
        head[1].button(
            _("Stop") if record.status == "running" else _("Remove from queue"), key="tr-stop", icon=":material/stop:",
            on_click=runner.stop, args=(record.id,),
            help=_(
                "A running run stops cleanly at its next step and keeps what it learned; a "
                "queued one never starts."
            ),
        )
        if record.stop_requested and record.status == "running":
            st.caption(_("Stopping at the next step…"))
        curve = run_view.live_curve(record.id)
        run_view.show_progress(record, curve.tail(), queue_position(record.id, runs) if record.status == "queued" else None)
        run_view.show_curves(record, f"tr-live-{record.id}", curve)
        run_view.show_batch_sample(record)


def _edit_copy(run_id: str) -> None:
    load_into_editor(store.get_run(run_id).train_config())
    flash("success", _("The editor now holds that run's config: change what you want and launch."))


def live_view(run_id: str, drawn_status: str, drawn_active: bool) -> None:
    """The queue and the selected live run, refreshed together: one fragment update a second
    rather than two, since each update costs the browser about as much whatever it redraws."""
    runs = queue_panel(drawn_active)
    run_panel(run_id, drawn_status, runs)


def monitor() -> None:
    st.header(_("Runs"))
    runs = store.list_runs()
    run_id = selected_run(runs)
    active = bool(runs["status"].isin(["running", "queued"]).any())
    if run_id is None:
        st.fragment(run_every=QUEUE_REFRESH_S if active else None)(queue_panel)(active)
        st.info(_("No runs yet: configure one above and press Launch, or start a preset."))
        return
    choices = list(runs["id"].head(RUN_CHOICES))
    if run_id not in choices:
        choices.insert(0, run_id)
    names = dict(zip(runs["id"], runs["name"] + " · " + runs["status"].map(run_view.status_text)))
    pick_key = f"tr_pick_{run_id}"  # a new widget per selection, so it always shows the selected run
    state[pick_key] = run_id
    st.selectbox(_("Show run"), choices, format_func=lambda i: f"{names.get(i, i)} · {i}", key=pick_key,
                 on_change=_pick_run, args=(pick_key,))
    record = store.get_run(run_id)
    if not record.is_final:
        st.fragment(run_every=REFRESH_S)(live_view)(run_id, record.status, active)
        return
    st.fragment(run_every=QUEUE_REFRESH_S if active else None)(queue_panel)(active)
    run_panel(run_id, record.status, runs)
    replay_panel(record)
    run_view.show_final_report(record, f"tr-report-{run_id}")
    with st.expander(_("Config of this run")):
        st.button(_("Edit a copy in the editor above"), key="tr-edit-copy", on_click=_edit_copy, args=(run_id,),
                  icon=":material/edit:")
        st.caption(versions.describe((record.summary or {}).get("versions")))
        st.json(record.config, expanded=False)
