"""Pipelines that travel in an uploaded JSON file (links: core.lessons, which reads and writes them)."""
from __future__ import annotations

import streamlit as st

from core.augment import AugmentError, Pipeline, load_json
from core.i18n import _
from core.lessons import MAX_SEED
from pages.ui.messages import explain, flash


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
            raise AugmentError(_("'seed' must be at most {max_seed}, got {seed}").format(max_seed=MAX_SEED, seed=seed))
    except Exception as e:  # anything in an uploaded file is the file's fault: say so, keep the page
        flash("error", _("Could not load {name}: {explain}. The pipeline is unchanged.").format(
            name=file.name,
            explain=explain(e),
        ))
        return None
    return pipeline, seed
