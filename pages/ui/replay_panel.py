"""Replay an ended run on the Train page: its curves grow as if live, at 1x, 5x or 20x, with no training."""
from __future__ import annotations

import streamlit as st

from core.i18n import _
from core.runs import replay, store
from core.runs.curves import StepCurve
from core.training.estimate import format_duration
from pages.ui import run_view
from pages.ui.messages import flash

state = st.session_state
REFRESH_S = 0.5  # a replay redraws twice a second: smooth enough, and it trains nothing


def _start(run_id: str) -> None:
    try:
        state["tr_replay"] = replay.Replay.of(run_id, state["tr_replay_speed"], replay.clock())
    except (ValueError, store.UnknownRunError) as exc:
        flash("error", _("Cannot replay: {reason}").format(reason=exc))


def _stop() -> None:
    state["tr_replay"] = None


def replay_panel(record: store.RunRecord) -> None:
    """For an ended run: pick a speed, press Replay, watch the curves grow; Stop ends it."""
    playing = state["tr_replay"] is not None and state["tr_replay"].run_id == record.id
    with st.expander(_("Replay this run"), icon=":material/replay:", expanded=playing):
        cols = st.columns([2, 1, 1], vertical_alignment="bottom")
        cols[0].segmented_control(_("Speed"), list(replay.SPEEDS), format_func=lambda s: f"{s}×",
                                  key="tr_replay_speed", required=True)
        cols[1].button(_("Replay"), key="tr-replay", icon=":material/play_arrow:", on_click=_start, args=(record.id,))
        cols[2].button(_("Stop"), key="tr-replay-stop", icon=":material/stop:", on_click=_stop, disabled=not playing)
        if playing:
            st.fragment(run_every=REFRESH_S)(_replay_view)(record)
        else:
            st.caption(_("Shows the recorded curves growing as they did while the run trained, without training."))


def _replay_view(record: store.RunRecord) -> None:
    played = state["tr_replay"]
    if played is None or played.run_id != record.id:  # stopped meanwhile
        return
    now = replay.clock()
    steps, epochs = played.visible(now)
    shown, total = played.run_time(now), played.recorded_s
    st.progress(shown / total if total else 1.0, text=_("Replay at {speed}×: {shown} of {total} of training").format(
        speed=played.speed, shown=format_duration(shown), total=format_duration(total)))
    curve = StepCurve.of(steps, capacity=run_view.MAX_CURVE_POINTS)
    if curve.rows or not epochs.empty:
        loss, acc = run_view.curve_figures(record, curve, epochs)
        left, right = st.columns(2)
        left.plotly_chart(loss, key=f"tr-replay-{record.id}-loss")
        right.plotly_chart(acc, key=f"tr-replay-{record.id}-acc")
    if played.done(now):
        state["tr_replay"] = None
        flash("success", _("Replay of {name} finished.").format(name=record.name))
        st.rerun(scope="app")
