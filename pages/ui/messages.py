"""Messages for the user: errors in words, and flashes left by callbacks.

Callbacks run before the page is drawn, so they cannot show anything themselves: they leave a
message (`flash`) that the page shows once, where it calls `show_flashes`.
"""
from __future__ import annotations

import streamlit as st

from core.augment import AugmentError
from core.data.images import ImageError
from core.i18n import _


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


def show_error(message: str, error: BaseException | None = None) -> None:
    text = _("{message}: {reason}").format(message=message, reason=explain(error)) if error is not None else message
    st.error(text, icon=":material/error:")


def stop_unless_the_store_works() -> None:
    """For a page that needs the run store: when it is damaged or unreachable, say so and why, and
    draw nothing more (the server and the other pages go on)."""
    from core.runs import store

    try:
        store.check()
    except store.StoreError as exc:
        st.error(_("The run store cannot be used: {reason}").format(reason=exc), icon=":material/database:")
        st.stop()
