"""Every chart of the app, in one place: the comparison chart, a run's curves, confusion matrix and
per-class accuracy, the top classes of a prediction, the Lab's soft labels and Beta density, the
LR finder and the learning-rate schedule. Each is a pure function from plain data (lists, numpy
arrays, pandas frames, dicts) to a plotly `go.Figure`, so pages only compute and show, and a test
or a notebook gets the same figure. Exports use plotly's own features rather than a second
renderer: `to_html` writes a standalone interactive page, and `export_config` sets the modebar's
camera button to download a PNG under a given name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.i18n import _

# Plotly's default colours, named so that a run keeps its colour from one chart to the next.
PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52")
_BLUE, _RED = PALETTE[0], PALETTE[1]
_FAINT_BLUE = "rgba(99,110,250,0.35)"  # each batch's value, under its smoothed line


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# ============================================================================ comparing runs


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    x: np.ndarray
    y: np.ndarray  # what is drawn (smoothed where smoothing is on)
    raw: np.ndarray | None = None  # the recorded values, shown on hover when they differ from y
    lo: np.ndarray | None = None  # a band around y (seed groups)
    hi: np.ndarray | None = None
    runs: int = 1  # runs behind the line: more than one for a seed group's mean


def _band_traces(s: Series) -> list[go.Scatter]:
    # The band is one closed shape: along the top edge, then back along the bottom.
    band = go.Scatter(
        x=np.concatenate([s.x, s.x[::-1]]), y=np.concatenate([s.hi, s.lo[::-1]]), mode="lines",
        fill="toself", fillcolor=_rgba(s.color, 0.2), line={"width": 0}, hoverinfo="skip",
        showlegend=False, legendgroup=s.name, name=_("{name} band").format(name=s.name),
    )
    mean = go.Scatter(
        x=s.x, y=s.y, name=s.name, legendgroup=s.name, mode="lines+markers", line={"color": s.color},
        marker={"size": 4}, customdata=np.stack([s.lo, s.hi], axis=-1),
        hovertemplate="%{fullData.name}<br>x=%{x:.6g}<br>"
        + _("mean=%{y:.6g}<br>band=%{customdata[0]:.6g} … %{customdata[1]:.6g}") + "<extra></extra>",
    )
    return [band, mean]


def _line_trace(s: Series) -> go.Scatter:
    hover = "%{fullData.name}<br>x=%{x:.6g}<br>"
    if s.raw is not None:
        hover += _("value=%{customdata:.6g}<br>smoothed=%{y:.6g}") + "<extra></extra>"
    else:
        hover += _("value=%{y:.6g}") + "<extra></extra>"
    return go.Scatter(
        x=s.x, y=s.y, name=s.name, mode="lines+markers" if len(s.x) <= 60 else "lines",
        line={"color": s.color}, marker={"size": 5}, customdata=s.raw, hovertemplate=hover,
    )


def comparison(series: Sequence[Series], *, title: str = "", x_label: str = "", y_label: str = "") -> go.Figure:
    """Runs side by side; hovering a point shows the exact recorded (and smoothed) values."""
    fig = go.Figure()
    for s in series:
        if s.lo is not None and s.hi is not None:
            fig.add_traces(_band_traces(s))
        else:
            fig.add_trace(_line_trace(s))
    fig.update_layout(
        title=title or None, xaxis_title=x_label, yaxis_title=y_label, hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        margin={"l": 10, "r": 10, "t": 60 if title else 30, "b": 10},
    )
    return fig


# ============================================================================ one run


def run_curves(steps: pd.DataFrame, epochs: pd.DataFrame, window: int) -> tuple[go.Figure, go.Figure]:
    """(loss, accuracy) against epochs: the training batches (light), their running mean over
    `window` rows, then the epoch means of training and the test evaluations (with markers).

    steps: columns epoch, train_loss, train_acc (one row per step or per bin of steps);
    epochs: columns epoch, train_loss, train_acc, test_loss, test_acc.
    """
    # A line needs two points: the first step of a run is drawn as a dot rather than nothing.
    step_mode = "lines" if len(steps) > 1 else "markers"
    figures = []
    # Built from whole dicts in one go: add_scatter and update_layout's "xaxis_title" paths cost
    # three times as much, on a figure a live tab rebuilds every second (README: many tabs at once).
    for column, title in (("loss", _("Loss")), ("acc", _("Accuracy"))):
        data = []
        if not steps.empty:
            train = steps[f"train_{column}"]
            data += [
                {"type": "scatter", "x": steps["epoch"].to_numpy(), "y": train.to_numpy(), "name": _("train (each batch)"),
                 "mode": step_mode, "line": {"width": 1, "color": _FAINT_BLUE}},
                {"type": "scatter", "x": steps["epoch"].to_numpy(), "y": train.rolling(window, min_periods=1).mean().to_numpy(),
                 "name": _("train (running mean)"), "mode": step_mode, "line": {"width": 2, "color": _BLUE}},
            ]
        if not epochs.empty:
            data += [
                {"type": "scatter", "x": epochs["epoch"].to_numpy(), "y": epochs[f"train_{column}"].to_numpy(),
                 "name": _("train (epoch)"), "mode": "lines+markers", "line": {"color": _BLUE, "dash": "dot"}},
                {"type": "scatter", "x": epochs["epoch"].to_numpy(), "y": epochs[f"test_{column}"].to_numpy(),
                 "name": _("test"), "mode": "lines+markers", "line": {"color": _RED, "width": 3}},
            ]
        layout = {"title": {"text": title}, "xaxis": {"title": {"text": _("epoch")}}, "height": 320,
                  "margin": {"t": 40, "b": 40, "l": 50, "r": 10}, "legend": {"orientation": "h", "y": -0.25}}
        if column == "acc":
            layout["yaxis"] = {"range": [0, 1], "tickformat": ".0%"}
        figures.append(go.Figure(data=data, layout=layout))
    return figures[0], figures[1]


def sweep(values: Sequence[float], means: Sequence[float], lows: Sequence[float | None],
          highs: Sequence[float | None], best: float, *, label: str, title: str = "") -> go.Figure:
    """Mean final test accuracy against a setting's value, with each mean's interval as a band
    (where it has one) and the best value marked."""
    x = np.asarray(values, dtype=float)
    fig = go.Figure()
    have = [i for i, (lo, hi) in enumerate(zip(lows, highs)) if lo is not None and hi is not None]
    if len(have) >= 2:
        xs = x[have]
        fig.add_trace(go.Scatter(
            x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([[highs[i] for i in have], [lows[i] for i in have][::-1]]),
            fill="toself", fillcolor=_rgba(_BLUE, 0.2), line={"width": 0}, hoverinfo="skip",
            name=_("95% interval of the mean"),
        ))
    fig.add_trace(go.Scatter(x=x, y=list(means), mode="lines+markers", name=_("mean over seeds"),
                             line={"color": _BLUE}, marker={"size": 7},
                             hovertemplate=label + " = %{x:.6g}<br>" + _("mean test accuracy %{y:.2%}") + "<extra></extra>"))
    top = list(values).index(best)
    fig.add_trace(go.Scatter(x=[x[top]], y=[means[top]], mode="markers", name=_("best"),
                             marker={"symbol": "star", "size": 16, "color": _RED}))
    fig.update_layout(title=title or None, xaxis_title=label, yaxis_title=_("final test accuracy"), height=380,
                      yaxis_tickformat=".0%", legend={"orientation": "h", "y": -0.25},
                      margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10})
    return fig


def confusion(classes: Sequence[str], counts: Sequence[Sequence[int]]) -> go.Figure:
    """Counts of (true, predicted) on the test split, true classes top to bottom."""
    z = np.asarray(counts, dtype=float)
    rows = z.sum(axis=1, keepdims=True)
    # Colour by the share of each true class, so a small class's mistakes are as visible as a large one's.
    share = np.divide(z, rows, out=np.zeros_like(z), where=rows > 0)
    fig = go.Figure(
        go.Heatmap(
            z=share.tolist(), x=list(classes), y=list(classes), text=np.asarray(counts).tolist(), texttemplate="%{text}",
            colorscale="Blues", zmin=0, zmax=1, colorbar={"title": _("share of<br>true class"), "tickformat": ".0%"},
            hovertemplate=_("true %{y}<br>predicted %{x}<br>%{text} images (%{z:.1%})") + "<extra></extra>",
        )
    )
    fig.update_layout(title=_("Confusion matrix (test split)"), xaxis_title=_("predicted"), yaxis_title=_("true"),
                      height=max(360, 40 * len(classes) + 160), margin={"t": 40, "b": 40})
    fig.update_yaxes(autorange="reversed")
    return fig


def per_class(per_class: Mapping[str, float | None]) -> go.Figure:
    """Test accuracy of each class, worst at the bottom; classes without test images (None) are left out."""
    items = sorted(((name, acc) for name, acc in per_class.items() if acc is not None), key=lambda item: item[1])
    fig = go.Figure(go.Bar(x=[acc for _, acc in items], y=[name for name, _ in items], orientation="h",
                           text=[f"{acc:.0%}" for _, acc in items], textposition="auto"))
    fig.update_layout(title=_("Accuracy per class (test split)"), xaxis_range=[0, 1], xaxis_tickformat=".0%",
                      height=max(300, 26 * len(items) + 120), margin={"t": 40, "b": 40})
    return fig


def top_classes(top: Sequence[tuple[str, float]]) -> go.Figure:
    """A prediction's most likely classes, most likely first in `top`; drawn with it on top."""
    shown = list(top)[::-1]  # a horizontal bar chart draws its first bar at the bottom
    fig = go.Figure(go.Bar(x=[p for _, p in shown], y=[name for name, _ in shown], orientation="h",
                           text=[f"{p:.1%}" for _, p in shown], textposition="auto"))
    fig.update_layout(title=_("Top {n} classes").format(n=len(shown)), xaxis_range=[0, 1], xaxis_tickformat=".0%", height=280,
                      margin={"t": 40, "b": 30})
    return fig


# ============================================================================ the Lab's mixing


def soft_labels(soft: Any, labels: Sequence[str]) -> go.Figure:
    """Each mixed picture's label as stacked shares of the source pictures (soft: rows x len(labels))."""
    shares = np.asarray(soft.tolist() if hasattr(soft, "tolist") else soft, dtype=float)
    rows = [_("mixed #{number}").format(number=i + 1) for i in range(len(shares))]
    fig = go.Figure([go.Bar(y=rows, x=shares[:, k].tolist(), name=label, orientation="h")
                     for k, label in enumerate(labels)])
    fig.update_layout(barmode="stack", title=_("Soft labels (each row sums to 1)"), xaxis_range=[0, 1],
                      height=260 + 20 * len(rows), yaxis_autorange="reversed", margin={"t": 50, "b": 30})
    return fig


def beta_density(x: Any, density: Any, alpha: float, marks: Mapping[str, float], *, title: str,
                 x_title: str) -> go.Figure:
    """The symmetric Beta(alpha, alpha) density, with a dotted line at each value drawn (`marks`: name -> value)."""
    density = np.asarray(density, dtype=float)
    fig = go.Figure(go.Scatter(x=x, y=density, fill="tozeroy", name=f"Beta({alpha:g}, {alpha:g})"))
    for name, value in marks.items():
        fig.add_vline(x=value, line_dash="dot", annotation_text=name, annotation_textangle=-90)
    # Small alphas have infinite density at 0 and 1: cap the axis so the middle stays readable.
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_range=[0, min(float(density.max()), 6.0) * 1.05],
                      height=300, margin={"t": 50, "b": 30}, showlegend=False)
    return fig


# ============================================================================ the Train page


def lr_finder(curve: pd.DataFrame, suggested: float) -> go.Figure:
    """The range test's loss against the lr (columns lr, raw_loss, loss), with the suggested lr marked."""
    fig = go.Figure()
    lrs = curve["lr"].tolist()
    fig.add_scatter(x=lrs, y=curve["raw_loss"].tolist(), mode="lines", name=_("loss of each batch"),
                    line={"width": 1, "color": _FAINT_BLUE})
    fig.add_scatter(x=lrs, y=curve["loss"].tolist(), mode="lines", name=_("smoothed"), line={"color": _BLUE, "width": 2})
    at = curve.iloc[(curve["lr"] - suggested).abs().argmin()]
    fig.add_scatter(x=[suggested], y=[float(at["loss"])], mode="markers", name=_("suggested lr {lr}").format(lr=f"{suggested:.2g}"),
                    marker={"size": 12, "color": _RED, "symbol": "x"})
    fig.add_vline(x=suggested, line={"dash": "dot", "color": _RED})
    fig.update_xaxes(type="log", title=_("learning rate"))
    fig.update_layout(title=_("Learning-rate finder"), yaxis_title=_("training loss"), height=320,
                      margin={"t": 40, "b": 40, "l": 50, "r": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


def schedule(epochs: Sequence[float], lrs: Sequence[float], head_lr_mult: float = 1.0,
             frozen_epochs: float = 0) -> go.Figure:
    """The learning rate against epochs; the head's when it differs, and the epochs the body is frozen."""
    epochs, lrs = list(epochs), list(lrs)
    fig = go.Figure(go.Scatter(x=epochs, y=lrs, mode="lines", name=_("lr")))
    with_head = head_lr_mult != 1.0
    if with_head:
        fig.add_scatter(x=epochs, y=[lr * head_lr_mult for lr in lrs], mode="lines", name=_("head (×{mult})").format(mult=f"{head_lr_mult:g}"),
                        line={"dash": "dot"})
    fig.update_layout(title=_("Learning rate"), xaxis_title=_("epoch"), height=260, margin={"t": 40, "b": 40, "l": 50, "r": 10},
                      showlegend=with_head, legend={"orientation": "h", "y": -0.3})
    if frozen_epochs > 0:
        fig.add_vrect(x0=0, x1=frozen_epochs, fillcolor="grey", opacity=0.15, line_width=0,
                      annotation_text=_("body frozen"), annotation_position="top left")
    return fig


# ============================================================================ export


def to_html(fig: go.Figure, *, config: Mapping[str, Any] | None = None) -> bytes:
    """The figure as a standalone HTML page that works offline (plotly.js embedded), still interactive.

    config: plotly.js config for the page, e.g. `export_config(name)` for its PNG button.
    """
    return fig.to_html(include_plotlyjs=True, full_html=True, config=dict(config or {})).encode("utf-8")


def export_config(filename: str) -> dict[str, Any]:
    """The plotly.js config (`st.plotly_chart(..., config=...)`) under which the modebar's camera
    button downloads the chart as `filename`.png at twice its size on screen."""
    return {"toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}
