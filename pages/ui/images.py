"""The picture a page works on: decoded once per distinct upload, cached by the bytes' digest."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import streamlit as st

from core.data.images import LoadedImage, load_image, to_png_bytes
from core.data.samples import sample_bytes
from core.i18n import _, language, tr
from pages.ui.state import PREVIEW_SIDE

# ---- images ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkingImage:
    name: str  # the file name or sample name, shown to the user
    key: str  # digest of the encoded bytes: identifies the pixels for caching
    image: LoadedImage
    is_sample: bool = False  # a bundled sample rather than the user's own file


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@st.cache_data(max_entries=32, show_spinner=False)  # load_bytes shows a spinner in the session's language
def _decode(key: str, _data: bytes, max_side: int, lang: str) -> LoadedImage:
    # keyed by the bytes' digest (computed once by the caller) rather than by hashing the bytes again,
    # and by the language: the image's notes are text for the user
    return load_image(_data, max_side)


def picture_name(picture: WorkingImage) -> str:
    """The picture's name as shown: a sample's in the page's language, a file's as uploaded."""
    return tr(picture.name) if picture.is_sample else picture.name


def load_bytes(name: str, data: bytes, max_side: int = PREVIEW_SIDE, is_sample: bool = False) -> WorkingImage:
    """Decode uploaded bytes (cached by their digest); raises ImageError with a message for the user."""
    key = digest(data)
    with st.spinner(_("Decoding the image…")):
        image = _decode(key, data, max_side, language())
    return WorkingImage(name, key, image, is_sample)


def load_sample_image(name: str, max_side: int = PREVIEW_SIDE) -> WorkingImage:
    return load_bytes(name, sample_bytes(name), max_side, is_sample=True)


def png(image) -> bytes:
    """PNG bytes of a tensor [C,H,W], a batch (as a grid) or a PIL image, for downloads."""
    return to_png_bytes(image)
