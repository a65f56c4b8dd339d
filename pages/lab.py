"""Augmentation Lab: build a pipeline by pointing and clicking and see what it does to a picture.

The sidebar holds the picture and the pipeline; every slider is generated from the op's
declared schema. The main area shows a seeded grid of augmented copies (with what each drew),
the batch mixing tricks, what an ImageNet network makes of the picture, and the exports:
torchvision code, code reproducing the grid, JSON, PNG and a shareable link that carries the
pipeline and the seed.
"""
from __future__ import annotations

import re
from typing import Callable
from urllib.parse import urlencode

import pandas as pd
import streamlit as st
import torch

from core import figures, lessons
from core.augment import Pipeline, mixing
from core.augment.pipeline import shrink
from core.data.images import (
    UPLOAD_TYPES,
    beta_density,
    crop_boxes,
    draw_boxes,
    make_grid_image,
    square_batch,
    to_uint8,
)
from core.data.samples import SAMPLES
from core.i18n import _, language, tr
from core.lessons import COLS, MAX_SEED, ROWS, Lesson
from core.training import weights
from pages.ui.images import (
    WorkingImage,
    load_bytes,
    load_sample_image,
    picture_name,
    png,
)
from pages.ui.lesson_panel import lesson_banner, lesson_panel
from pages.ui.links import read_pipeline_upload
from pages.ui.messages import explain, flash, show_error, show_flashes
from pages.ui.pipeline_editor import PipelineEditor
from pages.ui.state import PREVIEW_SIDE, default_pipeline, init_state, language_switch, tile_side

MIX_SIDE = 256  # mixing needs images of one size: each is centre-cropped and resized to this
# photos on screen go as JPEG: a tenth of PNG's bytes and ~50x faster to encode, which keeps
# every slider move snappy; downloads stay PNG
SHOWN_AS = "JPEG"
MIX_KINDS = {m.label: m for m in mixing.MIXERS.values()}  # by the label the page shows
state = st.session_state
EDITOR = PipelineEditor("lab")


# ---- state changes (widget callbacks: they run before the page is drawn) -----------------------


def _new_samples() -> None:
    state["lab_seed"] = (state["lab_seed"] + 1) % (MAX_SEED + 1)


def _new_mix_draw() -> None:
    state["lab_mix_seed"] = (state["lab_mix_seed"] + 1) % (MAX_SEED + 1)


def use_upload(name: str, data: bytes) -> None:
    """Make uploaded bytes the working image; a bad file leaves the current one in place."""
    current = state["lab_image"]
    try:
        state["lab_image"] = load_bytes(name, data)
    except Exception as e:  # a decoder bug, too, must not take the page down
        message = _("Could not use {name}: {reason}.").format(name=name, reason=explain(e))
        if current:
            message += _(" Still showing {name}.").format(name=current.name)
        flash("error", message)


def _on_image_upload() -> None:
    file = state.get("lab_upload")
    if file is not None:
        use_upload(file.name, file.getvalue())


def _use_sample() -> None:
    try:
        state["lab_image"] = load_sample_image(state["lab_sample"])
    except Exception as e:
        flash("error", _("Could not load the sample {name}: {reason}").format(name=tr(state["lab_sample"]), reason=explain(e)))


def _on_json_upload() -> None:
    loaded = read_pipeline_upload("lab_json_upload")
    if loaded is None:
        return
    pipeline, seed = loaded
    EDITOR.set(pipeline)
    if seed is not None:
        state["lab_seed"] = seed
    flash("success", _("Loaded {count} step(s) from {name}.").format(
        count=len(pipeline.steps), name=state["lab_json_upload"].name
    ))


def _read_link() -> None:
    """On a session's first run, take what the URL carries: a shared link's pipeline and seed, a
    lesson link's picture, grid and locked or hidden controls. Whatever is wrong is said, and that
    setting keeps its default."""
    if state["lab_link_read"]:
        return
    state["lab_link_read"] = True
    lesson, problems = lessons.read_link("lab", st.query_params.to_dict())
    for problem in problems:
        flash(problem.kind, problem.text)
    if lesson.pipeline is not None:
        EDITOR.set(lesson.pipeline)
    elif "p" in st.query_params:
        EDITOR.set(default_pipeline())  # the link's pipeline was refused (said above)
    for key, value in (("lab_seed", lesson.seed), ("lab_rows", lesson.rows), ("lab_cols", lesson.cols)):
        if value is not None:
            state[key] = value
    if lesson.sample is not None:
        state["lab_sample"] = lesson.sample
        state["lab_image"] = None  # loaded from the sample by image_source
    state["lab_lesson"] = lesson


def _write_link(pipeline: Pipeline, seed: int, working: WorkingImage) -> str:
    """Keep the URL in step with the pipeline, seed and sample; returns the link to share."""
    params = {"p": lessons.pipeline_to_param(pipeline), "seed": str(seed)}
    if working.is_sample:
        params["sample"] = state["lab_sample"]
    elif "sample" in st.query_params:
        del st.query_params["sample"]
    for name, value in params.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value
    base = (st.context.url or "").split("?")[0]
    return f"{base}?{urlencode(params)}"


def lesson() -> Lesson:
    """What a lesson link fixed on this page (nothing, for a page opened without one)."""
    return state["lab_lesson"]


# ---- the sidebar: picture and pipeline ---------------------------------------------------------


def image_source() -> WorkingImage | None:
    if not lesson().shown("picture"):
        if state["lab_image"] is None:
            _use_sample()
        return state["lab_image"]
    locked = not lesson().is_open("picture")
    st.sidebar.header(_("Picture"))
    st.sidebar.selectbox(_("Sample"), list(SAMPLES), format_func=tr, key="lab_sample", on_change=_use_sample,
                         disabled=locked)
    st.sidebar.file_uploader(
        _("…or upload one"),
        type=list(UPLOAD_TYPES),
        key="lab_upload",
        on_change=_on_image_upload,
        disabled=locked,
        help=_(
            "JPEG, PNG, WebP, BMP, GIF (first frame) or TIFF, up to 50 megapixels. "
            "It is scaled to {side} pixels on its long side for the preview."
        ).format(side=PREVIEW_SIDE),
    )
    if state["lab_image"] is None:
        _use_sample()
    working = state["lab_image"]
    if working is not None and not working.is_sample and not locked:
        st.sidebar.button(_("Back to the sample ({name})").format(name=tr(state["lab_sample"])), on_click=_use_sample)
    return working


def _seed_widget(key: str, value) -> None:
    """Give a widget its starting value once; afterwards the widget owns it."""
    if key not in state:
        state[key] = value


def pipeline_sidebar() -> Pipeline:
    if not lesson().shown("pipeline"):
        return EDITOR.pipeline
    locked = not lesson().is_open("pipeline")
    st.sidebar.header(_("Pipeline"))
    with st.sidebar:
        st.caption(_("Steps run top to bottom (like `v2.Compose`); steps switched off are skipped."))
        if not EDITOR.pipeline.steps:
            st.info(_("The pipeline is empty.") if locked else _("The pipeline is empty: add an augmentation below."))
        return EDITOR.draw(locked=locked)


# ---- the preview grid --------------------------------------------------------------------------


@st.cache_data(max_entries=16, show_spinner=False)
def _preview(image_key: str, _image: torch.Tensor, pipeline_json: str, seed: int, n: int, side: int, lang: str):
    # `lang` keys the cache: the captions and the crop note are text in the session's language.
    # The tiles are computed at `side` (the size they are shown at), the crop boxes drawn on the
    # picture at that size.
    pipeline = Pipeline.from_json(pipeline_json)
    batch, records = pipeline.preview(_image, n, seed, side=side)
    captions = [Pipeline.describe(records, i) or [_("unchanged (no enabled step)")] for i in range(n)]
    small = shrink(_image, side) if side < max(_image.shape[1:]) else _image
    boxes, note = crop_boxes(records, tuple(small.shape[1:]))
    outlined = draw_boxes(small, boxes, [str(i + 1) for i in range(n)]) if boxes else None
    return batch, captions, outlined, note


@st.cache_data(max_entries=8, show_spinner=False)
def _full_tile(image_key: str, _image: torch.Tensor, pipeline_json: str, seed: int, n: int, index: int):
    tile, unused = Pipeline.from_json(pipeline_json).preview_tile(_image, n, seed, index)
    return to_uint8(tile)


def preview_grid(working: WorkingImage, pipeline: Pipeline):
    """The grid tab; returns (batch, captions) for the PNG export, or None if the pipeline failed."""
    controls = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    rows, cols, seed = state["lab_rows"], state["lab_cols"], state["lab_seed"]
    if lesson().shown("grid"):
        locked = not lesson().is_open("grid")
        rows = controls[0].slider(_("Rows"), *ROWS, key="lab_rows", disabled=locked)
        cols = controls[1].slider(_("Columns"), *COLS, key="lab_cols", disabled=locked)
    if lesson().shown("seed"):
        locked = not lesson().is_open("seed")
        seed = controls[2].number_input(
            _("Seed"), 0, MAX_SEED, step=1, key="lab_seed", help=_("The same seed always gives the same grid."),
            disabled=locked,
        )
        if not locked:
            controls[3].button(_("New samples"), icon=":material/casino:", on_click=_new_samples, key="lab-new-samples")
    n = rows * cols
    image = working.image
    side = tile_side(cols)
    try:
        batch, captions, outlined, note = _preview(working.key, image.tensor, pipeline.to_json(), int(seed), n, side,
                                                   language())
    except Exception as e:  # an op that cannot handle this picture: say so and keep the page alive
        show_error(_("The pipeline could not run on this picture"), e)
        return None

    left, right = st.columns([1, 3])
    with left:
        width, height = image.original_size
        caption = _("Original: {name} ({width}x{height})").format(name=picture_name(working), width=width, height=height)
        st.image(to_uint8(image.tensor), caption=caption, width="stretch", output_format=SHOWN_AS)
        for text in image.notes:
            st.info(text, icon=":material/info:")
        if outlined is not None:
            st.image(outlined, caption=note, width="stretch", output_format=SHOWN_AS)
        else:
            st.caption(_("Crop boxes: {note}.").format(note=note))
    with right:
        for r in range(rows):
            for c, column in enumerate(st.columns(cols)):
                i = r * cols + c
                caption = f"#{i + 1} · " + " · ".join(captions[i])
                column.image(to_uint8(batch[i]), caption=caption, width="stretch", output_format=SHOWN_AS)
        full_size_tile(working, pipeline, int(seed), n, side)
    return batch, captions


def full_size_tile(working: WorkingImage, pipeline: Pipeline, seed: int, n: int, side: int) -> None:
    """One tile of the grid at the working picture's full size, on request (the grid's are smaller)."""
    height, width = working.image.tensor.shape[1:]
    if side >= max(height, width):
        return  # the tiles already are full size
    if state.get("lab_full_tile") is not None and state["lab_full_tile"] > n:
        state["lab_full_tile"] = None  # the grid shrank under the chosen tile
    chosen = st.pills(
        _("Tiles are computed at {side} px, the size they are shown at. See one at full size ({width}x{height}):").format(
            side=side, width=width, height=height),
        list(range(1, n + 1)), format_func=lambda k: f"#{k}", key="lab_full_tile",
    )
    if chosen is not None:
        try:
            tile = _full_tile(working.key, working.image.tensor, pipeline.to_json(), seed, n, chosen - 1)
        except Exception as e:  # as the grid: an op that cannot handle this picture at this size
            show_error(_("The pipeline could not run on this picture"), e)
            return
        st.image(tile, caption=_("Tile {number} at full size").format(number=chosen), output_format=SHOWN_AS)


# ---- mixing ------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def _mix(kind: str, image_keys: tuple[str, ...], _images: list[torch.Tensor], strength: float, seed: int):
    x = square_batch(_images, MIX_SIDE)
    y = torch.arange(len(_images))
    return MIX_KINDS[kind](x, y, len(_images), strength, torch.Generator().manual_seed(seed))


WORKING = "working picture"  # the mixing slots' id of the working picture (the others: sample names, "upload:" + name)


def _mix_sources(working: WorkingImage) -> dict[str, Callable[[], WorkingImage]]:
    """Pictures a mixing slot can take, by a stable id: the working one, the samples and extra uploads."""
    sources = {WORKING: lambda: working}
    for name in SAMPLES:
        sources.setdefault(name, lambda name=name: load_sample_image(name))
    for file in state.get("lab_mix_uploads") or []:
        sources["upload:" + file.name] = lambda file=file: load_bytes(file.name, file.getvalue())
    return sources


def _source_label(source: str, working: WorkingImage) -> str:
    """A mixing slot's choice as shown, in the page's language."""
    if source == WORKING:
        return _("{name} (working picture)").format(name=picture_name(working))
    if source.startswith("upload:"):
        return _("upload: {name}").format(name=source.removeprefix("upload:"))
    return tr(source)


def mixing_preview(working: WorkingImage) -> None:
    st.caption(
        _(
            "Batch tricks mix images *and* labels. Here each picture is its own class, so "
            "the soft label says how much of each picture a mixed image is. Partners come "
            "from a random permutation of the batch, as in training: a picture can draw "
            "itself and stay unchanged."
        )
    )
    top = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
    kind = top[0].segmented_control(
        _("Method"), list(MIX_KINDS), format_func=tr, key="lab_mix_kind", required=True
    )
    mixer = MIX_KINDS[kind]
    strength, symbol = mixer.strength, mixer.strength.label
    alpha = top[1].slider(  # the declared range (Beta needs > 0: the slider starts a step above 0)
        _("{symbol} of Beta({symbol}, {symbol})").format(symbol=symbol), *strength.closed_range(), step=strength.step,
        key="lab_mix_alpha", help=f"{tr(mixer.help)} {tr(strength.help)}",
    )
    seed = top[2].number_input(_("Mixing seed"), 0, MAX_SEED, step=1, key="lab_mix_seed")
    top[3].button(_("New draw"), icon=":material/casino:", on_click=_new_mix_draw, key="lab-new-mix")
    st.file_uploader(
        _("More pictures to mix (optional)"), type=list(UPLOAD_TYPES), accept_multiple_files=True, key="lab_mix_uploads"
    )

    sources = _mix_sources(working)
    names = list(sources)
    count = mixer.pictures
    slots = st.columns(count)
    chosen = []
    others = [name for name in names[1:] if not (working.is_sample and name == working.name)] or names
    for k in range(count):
        default = names[0] if k == 0 else others[(k - 1) % len(others)]
        _seed_widget(f"lab_mix_slot{k}", default)
        if state[f"lab_mix_slot{k}"] not in names:  # an upload that was removed
            state[f"lab_mix_slot{k}"] = default
        chosen.append(slots[k].selectbox(_("Picture {number}").format(number=k + 1), names, key=f"lab_mix_slot{k}",
                                         format_func=lambda source: _source_label(source, working)))
    try:
        pictures = [sources[name]() for name in chosen]
        keys, tensors = tuple(p.key for p in pictures), [p.image.tensor for p in pictures]
        mixed, soft, info = _mix(kind, keys, tensors, float(alpha), int(seed))
    except Exception as e:
        show_error(_("These pictures could not be mixed"), e)
        return

    labels = [f"{k + 1}: {picture_name(picture)}" for k, picture in enumerate(pictures)]
    for i, column in enumerate(st.columns(count)):
        shown, caption = _mixed_view(kind, i, mixed, info, labels)
        column.image(shown, caption=_("mixed #{number}: {caption}").format(number=i + 1, caption=caption), output_format=SHOWN_AS)
    _mix_charts(kind, float(alpha), soft, info, labels)


def _mixed_view(kind: str, i: int, mixed: torch.Tensor, info: dict, labels: list[str]):
    """Mixed image i with what was drawn for it outlined, and the mixer's caption saying it in words."""
    mixer = MIX_KINDS[kind]
    caption = mixer.describe(info, i, labels)
    if mixer.name == "ricap":
        return draw_boxes(mixed[i], info["boxes"], [labels[s] for s in info["sources"][i].tolist()]), caption
    if mixer.name == "mixup":
        return to_uint8(mixed[i]), caption
    return draw_boxes(mixed[i], [info["box"][i].tolist()], [labels[int(info["partner"][i])]]), caption


def _mix_charts(kind: str, alpha: float, soft: torch.Tensor, info: dict, labels: list[str]) -> None:
    charts = st.columns(2)
    charts[0].plotly_chart(figures.soft_labels(soft, labels), key="lab-mix-labels")
    x, density = beta_density(alpha)
    ricap = MIX_KINDS[kind].name == "ricap"
    if ricap:
        bh, bw = info["boundary"]
        drawn = {_("boundary x / width"): bw / MIX_SIDE, _("boundary y / height"): bh / MIX_SIDE}
    else:
        what = "λ" if MIX_KINDS[kind].name == "mixup" else _("kept area")
        drawn = {f"{what} #{i + 1}": float(v) for i, v in enumerate(info["lam"])}
    charts[1].plotly_chart(
        figures.beta_density(x, density, alpha, drawn,
                             title=_("Density of the boundary") if ricap else _("Density λ is drawn from"),
                             x_title=_("fraction") if ricap else "λ"),
        key="lab-mix-beta",
    )
    if MIX_KINDS[kind].name == "cutmix":
        st.caption(_(
            "CutMix draws λ from this density, then clips the box at the border; the label "
            "uses the kept area."
        ))


# ---- what an ImageNet network sees -------------------------------------------------------------

IMAGENET_ARCH = "mobilenet_v2"  # the one whose weights install offline
IMAGENET_TOP = 5


@st.cache_data(max_entries=16, show_spinner=False)  # the caller shows a spinner in the session's language
def _imagenet_top(image_key: str, _image: torch.Tensor) -> list[tuple[str, float]]:
    return weights.imagenet_top(_image, IMAGENET_TOP, IMAGENET_ARCH)


def imagenet_panel(working: WorkingImage) -> None:
    st.subheader(_("What an ImageNet network sees"))
    st.caption(
        _(
            "torchvision's MobileNetV2, trained on ImageNet's 1000 classes, looks at the "
            "original picture (resized and centre-cropped to 224 px, as it was trained). The "
            "class names come with its weights. Fine-tuning (Train page, model MobileNetV2, "
            "pretrained) starts from these features and learns a new last layer."
        )
    )
    found = weights.availability(IMAGENET_ARCH)
    if not found.present:
        st.info(found.message, icon=":material/download:")
        return
    try:
        with st.spinner(_("Asking MobileNetV2…")):
            top = _imagenet_top(working.key, working.image.tensor)
    except Exception as e:  # a damaged weights file must not take the page down
        show_error(_("MobileNetV2 could not classify this picture"), e)
        return
    st.dataframe(
        pd.DataFrame({"ImageNet class": [name for name, unused in top], "probability": [prob for unused, prob in top]}),
        hide_index=True,
        column_config={  # the data's columns keep their names; the headers are translated
            "ImageNet class": st.column_config.TextColumn(_("ImageNet class")),
            "probability": st.column_config.ProgressColumn(
                _("probability"), format="percent", min_value=0.0, max_value=1.0
            ),
        },
        key="lab-imagenet-top",
    )


# ---- exports -----------------------------------------------------------------------------------


def exports(working: WorkingImage, pipeline: Pipeline, grid, link: str) -> None:
    seed, n = int(state["lab_seed"]), state["lab_rows"] * state["lab_cols"]
    st.subheader(_("torchvision"))
    st.caption(_(
        "The same pipeline as a plain `torchvision.transforms.v2` Compose, to paste into "
        "any training script."
    ))
    st.code(pipeline.to_torchvision_code(working.image.size), language="python")

    st.subheader(_("This exact grid"))
    uploaded = not working.is_sample
    path = working.name if uploaded else re.sub(r"\W+", "_", working.name).strip("_") + ".png"
    if uploaded:
        st.caption(_("Reproduces the grid above pixel for pixel with this project's `core` package, from {path}.").format(path=path))
    else:
        st.caption(_(
            "Reproduces the grid above pixel for pixel with this project's `core` package, "
            "from {path} (download it below)."
        ).format(path=path))
    st.code(pipeline.to_core_code(seed, n, image_path=path, max_side=PREVIEW_SIDE, side=tile_side(state["lab_cols"])),
            language="python")
    buttons = st.columns(3)
    if not uploaded:
        buttons[0].download_button(
            _("Picture ({path})").format(path=path), data=lambda: png(working.image.tensor), file_name=path, mime="image/png",
            on_click="ignore", key="lab-dl-picture", icon=":material/image:",
        )
    if grid is not None:
        # deferred downloads run outside the script, where session state cannot be read
        batch, captions, cols = *grid, state["lab_cols"]
        captions = [[f"#{i + 1}", *lines] for i, lines in enumerate(captions)]
        buttons[1].download_button(
            _("Grid (PNG)"), data=lambda: png(make_grid_image(batch, cols, captions)), mime="image/png",
            file_name=f"grid_seed{seed}.png", on_click="ignore", key="lab-dl-grid", icon=":material/grid_on:",
        )

    st.subheader(_("Save and load"))
    buttons = st.columns(2)
    buttons[0].download_button(
        _("Pipeline (JSON)"), data=pipeline.to_json(seed), file_name="pipeline.json", mime="application/json",
        on_click="ignore", key="lab-dl-json", icon=":material/download:",
    )
    buttons[1].file_uploader(_("Load a pipeline (JSON)"), type=["json"], key="lab_json_upload", on_change=_on_json_upload,
                             disabled=not lesson().is_open("pipeline"))

    st.subheader(_("Shareable link"))
    if uploaded:
        st.caption(_(
            "The link carries the pipeline and the seed, not an uploaded picture: whoever opens it "
            "sees this pipeline on the sample."
        ))
    else:
        st.caption(_(
            "The link carries the pipeline, the seed and the sample: whoever opens it sees this "
            "grid on the same picture."
        ))
    st.code(link, language=None, wrap_lines=True)

    st.subheader(_("Lesson link for a class"))
    if uploaded:
        st.caption(_("An uploaded picture cannot travel in a link: the lesson opens on the sample {name}.").format(
            name=tr(state["lab_sample"])))
    lesson_panel(Lesson(page="lab", sample=state["lab_sample"], pipeline=pipeline, seed=seed,
                        rows=state["lab_rows"], cols=state["lab_cols"]), "lab_lesson_link")


# ---- page --------------------------------------------------------------------------------------

init_state()
language_switch()
_read_link()
st.title(_("Augmentation Lab"))
working = image_source()
pipeline = pipeline_sidebar()
show_flashes()
if working is None:
    st.stop()  # the flash above says why: there is no picture to augment
lesson_banner(lesson())
link = _write_link(pipeline, int(state["lab_seed"]), working)
# the Preview tab, then those a lesson link did not hide
titles = {"mixing": _("Mixing"), "imagenet": _("ImageNet view"), "export": _("Export")}
shown = [name for name in titles if lesson().shown(name)]
grid_tab, *others = st.tabs([_("Preview"), *(titles[name] for name in shown)])
panels = dict(zip(shown, others))
with grid_tab:
    grid = preview_grid(working, pipeline)
if "mixing" in panels:
    with panels["mixing"]:
        mixing_preview(working)
if "imagenet" in panels:
    with panels["imagenet"]:
        imagenet_panel(working)
if "export" in panels:
    with panels["export"]:
        exports(working, pipeline, grid, link)
