"""Pipelines that travel: in a shareable link, and in an uploaded JSON file.

A link carries the pipeline as compact JSON in URL-safe base64 (no padding), so a link pasted
into a chat still works and the page rebuilds the exact same pipeline.
"""
from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qs, urlsplit

import streamlit as st

from core.augment import AugmentError, Pipeline, load_json
from core.i18n import _
from pages.ui.messages import explain, flash
from pages.ui.state import MAX_SEED


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




def pipeline_to_param(pipeline: Pipeline) -> str:
    text = json.dumps(pipeline.to_list(), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def pipeline_from_param(value: str) -> Pipeline:
    """Raises AugmentError with a readable message for anything that is not a valid pipeline."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise AugmentError(_("the link's pipeline is damaged (not URL-safe base64)")) from None
    try:
        items = json.loads(text)
    except ValueError as e:
        raise AugmentError(_("the link's pipeline is not valid JSON ({e})").format(e=e)) from None
    return Pipeline.from_list(items)


def seed_from_param(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_SEED:
        raise AugmentError(_("the link's seed must be a non-negative whole number, got {value!r}").format(value=value))
    return int(value)


def pipeline_param_from_link(text: str) -> str:
    """The `p` value of a lab link (the whole URL or just the value)."""
    text = text.strip()
    if "?" in text or text.startswith(("http://", "https://")):
        values = parse_qs(urlsplit(text).query).get("p")
        if not values:
            raise AugmentError(_("the link carries no pipeline (no p=… in it)"))
        return values[0]
    return text.removeprefix("p=")
