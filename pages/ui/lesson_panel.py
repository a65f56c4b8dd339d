"""The teacher's view: a lesson link and its QR code, from what the page shows now.

The teacher picks the language and, for each control the page declares (core.lessons.CONTROLS),
whether students may change it, may only see it (locked) or do not see it (hidden). The link and
a QR code large enough for a projector follow at once; the page itself is not changed.
"""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core import lessons
from core.i18n import LANGUAGES, N_, _, language, tr
from core.lessons import CONTROLS, HIDDEN, LOCKED, OPEN, Lesson

state = st.session_state
STATE_LABELS = {OPEN: N_("students change it"), LOCKED: N_("locked"), HIDDEN: N_("hidden")}  # shown through tr()
QR_WIDTH = 480  # pixels on screen: readable from the back of a classroom when projected


def lesson_panel(lesson: Lesson, key: str) -> str:
    """Draws the builder for `lesson` (the page's current settings); returns the link it built."""
    st.caption(_(
        "Hand a class exactly this page: the link opens on these settings, in the language chosen, "
        "with the controls you lock shown but fixed and those you hide left out."
    ))
    if f"{key}_lang" not in state:
        state[f"{key}_lang"] = language()
    lang = st.segmented_control(_("Language of the lesson"), list(LANGUAGES), format_func=LANGUAGES.get,
                                key=f"{key}_lang", required=True)
    states = {}
    for control in CONTROLS[lesson.page]:
        widget = f"{key}_{control.name}"
        if widget not in state:
            state[widget] = OPEN
        options = [OPEN, LOCKED, HIDDEN] if control.lockable else [OPEN, HIDDEN]
        states[control.name] = st.segmented_control(tr(control.label), options, key=widget, required=True,
                                                    format_func=lambda s: tr(STATE_LABELS[s]))
    built = replace(lesson, lang=lang).with_controls(states)
    link = built.url(lessons.app_root(st.context.url or ""))
    st.code(link, language=None, wrap_lines=True)
    try:
        qr = lessons.qr_png(link)
    except Exception as e:  # segno refuses data a QR code cannot hold
        st.warning(_("No QR code for this link: {reason}").format(reason=e), icon=":material/qr_code:")
        return link
    st.image(qr, width=QR_WIDTH, caption=_("Scan to open the lesson"))
    buttons = st.columns(2)
    buttons[0].download_button(_("QR code (PNG)"), data=qr, file_name="lesson_qr.png", mime="image/png",
                               on_click="ignore", key=f"{key}-qr-png", icon=":material/qr_code:")
    buttons[1].download_button(_("QR code (SVG, for print)"), data=lessons.qr_svg(link), file_name="lesson_qr.svg",
                               mime="image/svg+xml", on_click="ignore", key=f"{key}-qr-svg", icon=":material/qr_code_2:")
    st.caption(_(
        "The lock is a convenience for a class, not a security boundary: whoever edits the link or "
        "runs the app on their own machine can change anything."
    ))
    return link


def lesson_banner(lesson: Lesson) -> None:
    """On a page opened from a lesson link with controls fixed: says so, once at the top."""
    fixed = [c for c in CONTROLS[lesson.page] if not lesson.is_open(c.name)]
    if fixed:
        st.info(_("A lesson link set up this page: {controls}.").format(
            controls="; ".join(f"{tr(c.label)} ({tr(STATE_LABELS[lesson.state_of(c.name)])})" for c in fixed)),
            icon=":material/school:")
