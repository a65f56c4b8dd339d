"""What a run of the editor's config will cost: its schedule, data, parameters, device and an estimated duration."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st

from core import figures
from core.data import DatasetError
from core.i18n import _
from core.runs import store
from core.training import estimate
from core.training.batches import image_size_for, steps_per_epoch
from core.training.config import ConfigError, TrainConfig
from core.training.device import planned_device
from core.training.models import parameter_count
from core.training.schedules import schedule_curve
from pages.ui import run_view

state = st.session_state


@st.cache_data(max_entries=16, show_spinner=False)
def _parameter_count(model: str, options_json: str, in_channels: int, num_classes: int, image_size: int) -> int:
    return parameter_count(model, json.loads(options_json), in_channels=in_channels, num_classes=num_classes,
                           image_size=image_size)


def schedule_figure(cfg: TrainConfig, per_epoch: int) -> go.Figure:
    steps, lrs = schedule_curve(cfg, per_epoch)
    frozen = cfg.run.epochs if cfg.optim.train_head_only else cfg.optim.freeze_body_epochs
    return figures.schedule([s / per_epoch for s in steps], lrs, cfg.optim.head_lr_mult, frozen)


def cost_panel(cfg: TrainConfig) -> Callable[[], None] | None:
    """Schedule, parameters and device now; returns the (slow) estimate to draw once the page is up."""
    try:
        bundle = run_view.load_bundle(dataclasses.replace(cfg.data, image_size=image_size_for(cfg)))
    except DatasetError as exc:
        st.error(_("The dataset does not load: {exc}").format(exc=exc))
        bundle = None
    per_epoch = steps_per_epoch(len(bundle.train_y), cfg.run.batch_size) if bundle is not None else 1
    st.plotly_chart(schedule_figure(cfg, per_epoch), key="tr-schedule")
    if bundle is None:
        return None
    st.caption(
        _(
            "{num_classes} classes · {n_train_y:,} train / {n_test_y:,} test images of "
            "{image_size}x{image_size} · {per_epoch:,} steps per epoch"
        ).format(
            num_classes=bundle.num_classes,
            n_train_y=len(bundle.train_y),
            n_test_y=len(bundle.test_y),
            image_size=bundle.image_size,
            per_epoch=per_epoch,
        )
        + (f" · {bundle.note}" if bundle.note else "")
    )
    cols = st.columns(2)
    try:
        n = _parameter_count(cfg.model.name, json.dumps(cfg.model.options, sort_keys=True), bundle.in_channels,
                             bundle.num_classes, bundle.image_size)
        cols[0].metric(_("Parameters"), f"{n:,}", help=_("Trainable weights of the model for this dataset's images and classes."))
    except ValueError as exc:
        st.error(_("The model cannot be built for these images: {exc}").format(exc=exc))
        return None
    try:
        device, described = planned_device(cfg.run.device, cfg.run.threads, cfg.run.amp)
    except ConfigError as exc:
        st.error(str(exc))
        return None
    cols[1].metric(_("Device"), device.type.upper(), help=_("The device a run of this config trains on."))
    cols[1].caption(described)
    left, right = st.columns([3, 2], vertical_alignment="center")
    slot = left.empty()
    right.checkbox(
        _("Estimate time"), key="tr_auto_estimate", persist_state="session",
        help=_(
            "Times a few real training steps of this config on this machine (cached per "
            "model, data, batch and augmentation). Turn it off while editing a config whose "
            "steps are slow."
        ),
    )
    if not state["tr_auto_estimate"]:
        return None
    right.button(_("Measure again"), key="tr-remeasure", on_click=estimate.clear_cache, type="tertiary",
                 help=_("Forget the timings, e.g. after the machine got less busy."))

    def draw_estimate() -> None:
        with slot.container():
            busy = (store.list_runs()["status"] == "running").any()
            try:
                with st.spinner(_("Timing a few training steps…")):
                    est = estimate.estimate(cfg)
            except (ValueError, RuntimeError) as exc:
                st.error(_("A training step fails with this config: {exc}").format(exc=exc))
                return
            st.metric(_("Estimated time"), estimate.format_duration(est.total_s),
                      help=_(
                          "Measured on this machine: {timed_steps} real training steps of this config "
                          "after one warm-up step, times {total_steps:,} steps, plus {evaluations} "
                          "evaluation(s) and starting the training process."
                      ).format(
                          timed_steps=est.timing.timed_steps,
                          total_steps=est.total_steps,
                          evaluations=est.evaluations,
                      ))
            st.caption(
                _("{ms_per_step:,.0f} ms per step × {total_steps:,} steps").format(
                    ms_per_step=est.seconds_per_step * 1000,
                    total_steps=est.total_steps,
                )
                + (_(" · measured while another run trains, so probably too long") if busy else "")
            )

    return draw_estimate
