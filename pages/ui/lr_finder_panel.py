"""Find a learning rate: Smith's range test on the editor's config, in the page's process, then one click to use it."""
from __future__ import annotations

import json

import streamlit as st

from core import figures
from core.i18n import _
from core.runs import store
from core.training.config import ConfigError, TrainConfig, apply_overrides
from core.training.lr_finder import lr_find
from core.training.schedules import lr_setting
from pages.ui.config_form import current_config, field
from pages.ui.messages import flash

state = st.session_state


# The LR finder runs in the page's own process while the person waits, so it is short: 60 steps
# of the default config took 15 s on one thread of a busy 2-core machine; 10 steps per decade of lr.
LR_FINDER_STEPS = 60
LR_FINDER_RANGE = (1e-5, 10.0)
# lr_find's default 0.98 averages over ~50 steps, too long for a 60-step test: the smoothed curve
# would lag behind the lr and the suggestion land too high.
LR_FINDER_SMOOTHING = 0.9


def _lr_finder_key(cfg: TrainConfig) -> str:
    """What the finder's result depends on: everything but the lr it sweeps and the schedule it ignores."""
    tree = cfg.to_dict()
    del tree["schedule"], tree["optim"]["lr"]
    return json.dumps(tree, sort_keys=True)


def _use_found_lr(value: float) -> None:
    state[field("optim.lr").widget_key] = value
    flash("success", _("Peak learning rate set to {value:g}.").format(value=value))


def lr_finder_panel() -> None:
    """Smith's LR range test on the editor's config, in this process, then one click to use its lr."""
    with st.expander(_("Find a learning rate"), icon=":material/query_stats:"):
        st.caption(
            _(
                "Trains a fresh model of this config for {lr_finder_steps} steps while the "
                "learning rate grows from {start_lr:g} to {end_lr:g} (Smith 2015), and suggests the "
                "lr where the loss falls fastest. Nothing is recorded as a run. It takes a few "
                "seconds to a minute, depending on the model."
            ).format(
                lr_finder_steps=LR_FINDER_STEPS,
                start_lr=LR_FINDER_RANGE[0],
                end_lr=LR_FINDER_RANGE[1],
            )
        )
        try:
            cfg = current_config()
        except ConfigError:
            st.caption(_("Fix the config first: it cannot run as it is."))
            return
        if st.button(_("Find a learning rate"), key="tr-lr-find", icon=":material/play_arrow:"):
            # Next to a training run, threads for every core would fight it for them: measured on a
            # busy 2-core machine, the default config's test took 15 s on one thread and 76 s on two.
            busy = (store.list_runs()["status"] == "running").any()
            finder_cfg = apply_overrides(cfg, {"run.threads": 1}) if busy else cfg
            try:
                with st.spinner(_("Training {lr_finder_steps} steps at growing learning rates…").format(lr_finder_steps=LR_FINDER_STEPS)):
                    curve = lr_find(finder_cfg, start_lr=LR_FINDER_RANGE[0], end_lr=LR_FINDER_RANGE[1],
                                    num_steps=LR_FINDER_STEPS, smoothing=LR_FINDER_SMOOTHING)
            except (ValueError, RuntimeError) as exc:
                st.error(_("The learning-rate finder failed: {exc}").format(exc=exc))
                return
            state["tr_lr_found"] = {"curve": curve, "lr": curve.attrs["suggested_lr"], "key": _lr_finder_key(cfg)}
        found = state["tr_lr_found"]
        if found is None:
            return
        if found["key"] != _lr_finder_key(cfg):
            st.caption(_(
                "This curve was measured for an earlier config; run the finder again for the "
                "current one."
            ))
        st.plotly_chart(figures.lr_finder(found["curve"], found["lr"]), key="tr-lr-finder-chart")
        value = lr_setting(cfg, found["lr"])
        per = _(" (per 256 images, as the linear scaling rule is on)") if cfg.schedule.linear_scaling else ""
        st.button(_("Use this LR: {value:g}{per}").format(value=value, per=per), key="tr-lr-use", on_click=_use_found_lr, args=(value,),
                  icon=":material/check:", disabled=value == cfg.optim.lr)
