"""UI pieces that show one run: status, progress, curves, final report and prediction.

Every function takes a `store.RunRecord` (read it with `store.get_run(run_id)`) and draws with
Streamlit; none of them keeps state of its own, so the Train and Compare pages can call them
inside their own fragments. Widget and chart keys start with the caller's `key`, so one page can
show several runs.
"""
from __future__ import annotations

import dataclasses
import functools
import html
import io
import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from core import figures
from core.data import DatasetBundle, DatasetError, load_for_config
from core.data.images import UPLOAD_TYPES, ImageError, load_image, to_uint8
from core.data.uploads import find_upload
from core.i18n import N_, _, tr
from core.runs import explain, store
from core.runs.curves import StepCurve
from core.training.config import DataConfig
from core.training.estimate import format_duration
from core.training.events import BatchSample
from core.training.loop import BATCH_SAMPLE_EVERY_S

STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
    "interrupted": ":material/warning:",
}
# A run's status as a person reads it; the store keeps the English word, which stays the data.
STATUS_TEXT = {
    "queued": N_("queued"),
    "running": N_("running"),
    "finished": N_("finished"),
    "stopped": N_("stopped"),
    "failed": N_("failed"),
    "interrupted": N_("interrupted"),
}
# Step curves longer than this are averaged in bins (core.runs.curves): a browser chart gains nothing
# from 20,000 points, sending them every second would be the page's main cost, and a live view that
# held every row would grow with the run.
MAX_CURVE_POINTS = 300
GALLERY_TILE = 96  # pixels a misclassified test image is shown at (nearest-neighbour, so pixels stay crisp)
GALLERY_SIZE = 24  # misclassified images shown


def status_text(status: str) -> str:
    """The status word in the current language ("queued", "running", ...)."""
    return tr(STATUS_TEXT[status]) if status in STATUS_TEXT else status


def status_label(status: str) -> str:
    return f"{STATUS_ICONS.get(status, '')} {status_text(status)}"


def describe(record: store.RunRecord) -> str:
    """One line: name, model on dataset, status."""
    cfg = record.config
    return _("{name} · {model} on {dataset} · {status}").format(
        name=record.name,
        model=cfg["model"]["name"],
        dataset=dataset_name(cfg["data"]["dataset"]),
        status=status_text(record.status),
    )


def dataset_name(dataset: str) -> str:
    """How a config's dataset reads to a person: an upload by its file name, not its stored path."""
    upload = find_upload(dataset)
    return _("upload {name}").format(name=upload.name) if upload else dataset


def load_bundle(data: DataConfig | Mapping) -> DatasetBundle:
    """The dataset a data config describes, loaded once per server (the page's and the gallery's)."""
    tree = dataclasses.asdict(data) if isinstance(data, DataConfig) else dict(data)
    # the spinner here rather than the cache's (a decorator's text is fixed at import, in one
    # language); like the cache's, it shows only after half a second, so a cache hit shows nothing
    with st.spinner(_("Loading the dataset…")):
        return _bundle(json.dumps(tree, sort_keys=True))


@st.cache_resource(max_entries=3, show_spinner=False)
def _bundle(data_config_json: str) -> DatasetBundle:
    return load_for_config(json.loads(data_config_json))


# ---- status and progress ----------------------------------------------------------------------


def show_status_message(record: store.RunRecord) -> None:
    """Why a run ended early, impossible to miss; finished and live runs show nothing here."""
    if record.status == "failed":
        st.error(_("This run failed: {message}").format(message=record.message or _("no message was recorded")),
                 icon=":material/error:")
        if record.summary.get("traceback"):
            with st.expander(_("Details for a bug report")):
                st.code(record.summary["traceback"], language=None)
    elif record.status == "stopped":
        st.warning(_("This run was stopped ({message}). What it recorded until then is kept below.").format(
            message=record.message or _("on request"),
        ), icon=":material/stop_circle:")
    elif record.status == "interrupted":
        st.warning(
            _("This run was interrupted: {message}. What it recorded until then is kept below.").format(
                message=record.message or _("its process ended without a result"),
            ),
            icon=":material/warning:",
        )


def eta_seconds(record: store.RunRecord, steps: pd.DataFrame) -> float | None:
    """Seconds left, from the pace of the last few dozen steps; None before there is a pace."""
    total = record.summary.get("total_steps")
    if not total or len(steps) < 2:
        return None
    recent = steps.tail(30)
    pace = (recent["wall"].iloc[-1] - recent["wall"].iloc[0]) / max(1, recent["step"].iloc[-1] - recent["step"].iloc[0])
    return max(0.0, (total - int(steps["step"].iloc[-1])) * pace)


def show_progress(record: store.RunRecord, steps: pd.DataFrame, queue_position: int | None = None) -> None:
    """Progress bar with epoch, step, ETA and speed (or where the run waits in the queue).

    steps: the run's latest step rows in step order; the last 30 are all it reads."""
    if record.status == "queued":
        waiting = store.waiting_for(record.id)
        if waiting:
            names = ", ".join(store.get_run(run_id).name for run_id in waiting)
            st.progress(0.0, text=_(
                "Waiting for {names} to end: this run starts from its weights (or learns from "
                "it)."
            ).format(
                names=names,
            ))
            return
        st.progress(0.0, text=_(
            "Waiting to start: position {position} in the queue. It starts when a running run ends."
        ).format(position=queue_position) if queue_position else _(
            "Waiting to start: in the queue. It starts when a running run ends."
        ))
        return
    total = record.summary.get("total_steps")
    if not total or steps.empty:
        st.progress(0.0, text=_("Starting: loading the data and building the model…"))
        return
    step = int(steps["step"].iloc[-1])
    epochs = record.config["run"]["epochs"]
    epoch = float(steps["epoch"].iloc[-1])
    speed = steps["images_per_s"].tail(20).median()
    eta = eta_seconds(record, steps)
    parts = [
        _("epoch {epoch:.2f} of {epochs}").format(epoch=epoch, epochs=epochs),
        _("step {step:,} of {total:,}").format(step=step, total=total),
    ]
    if record.status == "running":
        parts.append(
            _("about {duration} left").format(duration=format_duration(eta)) if eta is not None
            else _("measuring the pace…")
        )
    if pd.notna(speed):
        parts.append(_("{speed:,.0f} images/s").format(speed=speed))
    st.progress(min(1.0, step / total), text=" · ".join(parts))


# ---- curves -----------------------------------------------------------------------------------


def curve_figures(record: store.RunRecord, curve: StepCurve, epochs: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """(loss, accuracy): the training batches (averaged in bins of consecutive steps once a run has
    more than MAX_CURVE_POINTS), a running mean over a quarter epoch, the epoch means and the tests."""
    window = curve.window_in_bins(max(1, int(record.summary.get("steps_per_epoch") or 1) // 4))
    return figures.run_curves(curve.frame(), epochs, window)


_LIVE_CURVE = "_runs_live_curve"  # session state: (run id, StepCurve) of the run watched live


def live_curve(run_id: str) -> StepCurve:
    """The run's step curve, reading from the store only the rows added since this session's last call.

    A live view redraws every second: reading the whole step table each time would grow with the
    run and compete with the training process for the machine, and holding every row read would
    grow the server's memory with it. The curve keeps at most MAX_CURVE_POINTS bins and the last
    few rows, whatever the length of the run.
    """
    held = st.session_state.get(_LIVE_CURVE)
    if held is None or held[0] != run_id or held[1].last_step is None:
        curve = StepCurve.of(store.metrics(run_id, "step"), capacity=MAX_CURVE_POINTS)
    else:
        curve = held[1]
        curve.add(store.metrics(run_id, "step", after_step=curve.last_step))
    st.session_state[_LIVE_CURVE] = (run_id, curve)
    return curve


def show_curves(record: store.RunRecord, key: str, curve: StepCurve | None = None) -> None:
    if curve is None:
        curve = StepCurve.of(store.metrics(record.id, "step"), capacity=MAX_CURVE_POINTS)
    epochs = store.metrics(record.id, "epoch")
    if curve.rows == 0 and epochs.empty:
        if record.status in ("queued", "running"):
            st.caption(_("The curves appear with the first training steps."))
        return
    loss, acc = curve_figures(record, curve, epochs)
    left, right = st.columns(2)
    left.plotly_chart(loss, key=f"{key}-loss")
    right.plotly_chart(acc, key=f"{key}-acc")


# ---- what the model sees ----------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _sample_tiles(run_id: str, modified_ns: int) -> tuple[BatchSample, tuple[bytes, ...]] | None:
    """The run's latest batch sample and its images as PNG tiles, made once per sample for every tab."""
    sample = store.read_batch_sample(run_id)
    if sample is None:
        return None
    tiles = []
    for image in sample.images:
        pil = _tile(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
        out = io.BytesIO()
        pil.save(out, format="PNG")
        tiles.append(out.getvalue())
    return sample, tuple(tiles)


def show_batch_sample(record: store.RunRecord) -> None:
    """A few images of a recent training batch exactly as the model received them, each with the
    target the loss used (bars) and what it drew; the trainer writes one a few times a minute."""
    path = store.run_dir(record.id) / store.BATCH_SAMPLE_FILE
    try:
        held = _sample_tiles(record.id, path.stat().st_mtime_ns)
    except OSError:
        held = None
    if held is None:
        if not record.is_final:
            st.caption(_("What the model sees appears with the first training step."))
        return
    sample, tiles = held
    classes = record.summary.get("classes") or []
    st.markdown(_("**What the model sees**: images of the batch at step {step:,} (epoch {epoch:.2f}), after the "
                  "augmentation pipeline and any mixing, as the model received them, with the target the loss "
                  "compared its prediction to.").format(step=sample.step, epoch=sample.epoch))
    if not record.is_final:
        st.caption(_("A new batch about every {seconds:g} seconds.").format(seconds=BATCH_SAMPLE_EVERY_S))
    for column, tile, target, drawn in zip(st.columns(len(tiles)), tiles, sample.targets, sample.drawn):
        column.image(tile)
        column.markdown(target_bars(target, classes), unsafe_allow_html=True)
        column.caption(" · ".join(drawn) if drawn else _("no augmentation step drew anything"))


def target_bars(target: list[tuple[int, float]], classes: list[str]) -> str:
    """A soft target as HTML bars, one a class, largest first, then what is spread over the rest:
    static HTML, light for a browser that redraws it every second (a chart per image is not)."""
    rows = []
    for index, weight in target:
        name = html.escape(classes[index] if index < len(classes) else f"#{index}")
        rows.append(f'<div class="auglab-target" style="background: linear-gradient(90deg, {figures.PALETTE[0]}55 '
                    f'{weight:.1%}, transparent {weight:.1%}); font-size: 0.8rem; padding: 0 0.2rem">'
                    f"{name} {weight:.0%}</div>")
    rest = 1.0 - sum(weight for unused, weight in target)
    if rest >= 0.005:
        rows.append(f'<div style="font-size: 0.8rem; opacity: 0.7; padding: 0 0.2rem">'
                    f"{html.escape(_('other classes: {share:.0%}').format(share=rest))}</div>")
    return "".join(rows)


# ---- the final report -------------------------------------------------------------------------


def show_final_metrics(record: store.RunRecord) -> None:
    final = record.summary.get("final") or {}
    if not final:
        return
    cols = st.columns(5)
    cols[0].metric(_("Test accuracy"), f"{final['test_acc']:.2%}")
    cols[1].metric(_("Test loss"), f"{final['test_loss']:.4f}")
    cols[2].metric(_("Train accuracy"), f"{final['train_acc']:.2%}", help=_("On augmented (and possibly mixed) batches, as trained."))
    cols[3].metric(_("Train loss"), f"{final['train_loss']:.4f}")
    cols[4].metric(_("Training time"), format_duration(final.get("wall", 0.0)), help=_("on {device}").format(device=record.device) if record.device else _("on an unknown device"))


def _tile(image: np.ndarray) -> Image.Image:
    pil = Image.fromarray(image, "L" if image.ndim == 2 else "RGB")
    return pil.resize((GALLERY_TILE, GALLERY_TILE), Image.Resampling.NEAREST)


def show_misclassified(record: store.RunRecord) -> None:
    wrong = record.summary.get("misclassified") or []
    classes = record.summary.get("classes") or []
    st.subheader(_("Misclassified test images"))
    if not wrong:
        st.caption(_("No test image was misclassified.") if record.summary.get("final") else _("No gallery was recorded."))
        return
    try:
        bundle = load_bundle(record.config["data"])
    except (DatasetError, OSError) as exc:
        st.info(_("The test images cannot be shown: the dataset no longer loads ({error}).").format(error=exc))
        return
    test_x = bundle.test_x
    if list(bundle.classes) != list(classes):
        st.info(_("The test images cannot be shown: the dataset has changed since this run."))
        return
    shown = [item for item in wrong if item["index"] < len(test_x)][:GALLERY_SIZE]
    st.caption(_(
        "The {n_shown} most confidently wrong of {n_wrong} recorded mistakes; the test "
        "split is never augmented."
    ).format(
        n_shown=len(shown),
        n_wrong=len(wrong),
    ))
    looks = st.toggle(_("Show where the model looked"), key=f"tr-gallery-cam-{record.id}", help=_(
        "Grad-CAM: the regions whose features raised the score of the class it wrongly predicted, brightest "
        "where they raised it most. A map on the background, not the object, is a model that learnt a shortcut."
    ))
    pictures = [to_uint8(test_x[item["index"]].float() / 255) for item in shown]
    if looks:
        try:
            heats = _gallery_maps(record.id, record.ended, tuple(item["index"] for item in shown),
                                  tuple(item["predicted"] for item in shown), json.dumps(record.config["data"], sort_keys=True))
        except Exception as exc:  # a model that cannot be rebuilt must not take the page down
            st.info(_("The maps cannot be drawn ({error_type}: {error}).").format(error_type=type(exc).__name__, error=exc))
            heats = None
        if heats is not None:
            pictures = [explain.overlay(picture, heat) for picture, heat in zip(pictures, heats)]
    tiles = [_tile(picture) for picture in pictures]
    captions = [
        _("true: {true} · predicted: {predicted} ({confidence:.0%})").format(
            true=classes[item["true"]], predicted=classes[item["predicted"]], confidence=item["confidence"],
        )
        for item in shown
    ]
    per_row = 6
    for start in range(0, len(tiles), per_row):
        for column, tile, caption in zip(st.columns(per_row), tiles[start:start + per_row], captions[start:start + per_row]):
            column.image(tile, caption=caption)


@st.cache_data(max_entries=8, show_spinner=False)
def _gallery_maps(run_id: str, ended: object, indices: tuple[int, ...], predicted: tuple[int, ...],
                  data_config_json: str) -> list[np.ndarray]:
    """Grad-CAM maps of the gallery's images for the classes the model wrongly chose (cached per run)."""
    import torch

    bundle = _bundle(data_config_json)
    images = bundle.test_x[list(indices)]
    maps = explain.explain(run_id, images, torch.tensor(predicted))
    return [m.heat.numpy() for m in maps]


def show_predict(record: store.RunRecord, key: str) -> None:
    """Upload a picture and see what the run's model makes of it."""
    from core.runs.predict import predict

    if not record.summary.get("weights") or not record.summary.get("data"):
        return
    st.subheader(_("Predict"))
    file = st.file_uploader(
        _("Upload a picture to classify"), type=list(UPLOAD_TYPES), key=f"{key}-predict",
        help=_(
            "It is converted the way the model was trained: resized to the training image "
            "size, to colour or gray as needed, and normalised with the training set's "
            "statistics."
        ),
    )
    if file is None:
        return
    try:
        image = load_image(file.getvalue(), max_side=512)
        top = predict(record.id, image.tensor, k=5)
    except ImageError as exc:
        st.error(_("Could not read {name}: {error}.").format(name=file.name, error=exc))
        return
    except Exception as exc:  # a model that cannot be rebuilt must not take the page down
        st.error(_("Could not classify {name} ({error_type}: {error}).").format(
            name=file.name,
            error_type=type(exc).__name__,
            error=exc,
        ))
        return
    left, right = st.columns([1, 2])
    picture = to_uint8(image.tensor)
    left.image(picture, caption=file.name, width="stretch")
    try:
        looked = explain.explain(record.id, image.tensor)[0]
    except Exception as exc:  # a map is extra: the prediction above still stands
        left.caption(_("Where the model looks cannot be drawn ({error_type}: {error}).").format(
            error_type=type(exc).__name__, error=exc))
    else:
        left.image(explain.overlay(picture, looked.heat), width="stretch", caption=_(
            "Where the model looks for {name} ({probability:.0%}): {method}"
        ).format(name=looked.class_name, probability=looked.probability, method=looked.method))
    right.plotly_chart(figures.top_classes(top), key=f"{key}-predict-chart")
    right.dataframe(
        pd.DataFrame(top, columns=["class", "probability"]), hide_index=True,
        column_config={
            "class": st.column_config.TextColumn(_("class")),
            "probability": st.column_config.ProgressColumn(
                _("probability"), format="percent", min_value=0.0, max_value=1.0
            ),
        },
    )


def show_final_report(record: store.RunRecord, key: str) -> None:
    """Everything about a run that has ended: message, metrics, curves, confusion, gallery, predict."""
    show_status_message(record)
    show_final_metrics(record)
    show_curves(record, key)
    show_batch_sample(record)
    confusion = record.summary.get("confusion")
    classes = record.summary.get("classes")
    if confusion and classes:
        left, right = st.columns([3, 2])
        left.plotly_chart(figures.confusion(classes, confusion), key=f"{key}-confusion")
        right.plotly_chart(figures.per_class(record.summary.get("per_class_acc") or {}), key=f"{key}-per-class")
        show_misclassified(record)
    show_predict(record, key)
