"""core.figures: every chart, built from plain data, and its exports (HTML page, modebar PNG)."""
from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core import figures


def _series(name="run a", color="#EF553B", n=3, **extra) -> figures.Series:
    x = np.arange(1.0, n + 1)
    return figures.Series(name, color, x, x / 10, **extra)


# ---- comparison ----------------------------------------------------------------------------


def test_comparison_band_is_one_closed_shape_under_the_mean_line():
    s = _series(lo=np.array([0.05, 0.15, 0.25]), hi=np.array([0.15, 0.25, 0.35]), runs=3)
    fig = figures.comparison([s], title="Test accuracy", x_label="Epoch", y_label="acc")
    band, mean = fig.data
    # there along the top edge, back along the bottom
    assert list(band.x) == [1, 2, 3, 3, 2, 1]
    assert list(band.y) == [0.15, 0.25, 0.35, 0.25, 0.15, 0.05]
    assert band.fill == "toself" and band.fillcolor == "rgba(239,85,59,0.2)"
    assert band.showlegend is False and band.hoverinfo == "skip" and band.legendgroup == s.name
    assert mean.name == s.name and mean.line.color == s.color and mean.legendgroup == s.name
    assert np.asarray(mean.customdata).tolist() == [[0.05, 0.15], [0.15, 0.25], [0.25, 0.35]]
    assert "band=%{customdata[0]:.6g} … %{customdata[1]:.6g}" in mean.hovertemplate
    assert fig.layout.title.text == "Test accuracy" and fig.layout.xaxis.title.text == "Epoch"
    assert fig.layout.yaxis.title.text == "acc" and fig.layout.margin.t == 60


def test_comparison_hover_shows_raw_and_smoothed_values_when_they_differ():
    raw = np.array([0.3, 0.1, 0.5])
    fig = figures.comparison([_series(raw=raw), _series("run b", "#636EFA")])
    smoothed, plain = fig.data
    assert list(smoothed.customdata) == list(raw)
    assert "value=%{customdata:.6g}<br>smoothed=%{y:.6g}" in smoothed.hovertemplate
    assert plain.customdata is None and "value=%{y:.6g}<extra>" in plain.hovertemplate
    assert [t.line.color for t in fig.data] == ["#EF553B", "#636EFA"]
    assert fig.layout.title.text is None and fig.layout.margin.t == 30


def test_comparison_drops_markers_on_long_lines():
    short, long = figures.comparison([_series(n=60), _series("b", n=61)]).data
    assert short.mode == "lines+markers" and long.mode == "lines"


def test_palette_is_plotlys_default_colours():
    assert figures.PALETTE[:2] == ("#636EFA", "#EF553B") and len(set(figures.PALETTE)) == 10


# ---- one run -------------------------------------------------------------------------------


def _epochs(n=2) -> pd.DataFrame:
    e = np.arange(1.0, n + 1)
    return pd.DataFrame({"epoch": e, "train_loss": 2 / e, "train_acc": e / 4, "test_loss": 2.5 / e, "test_acc": e / 5})


def test_run_curves_draws_a_one_step_run_as_a_dot_and_accuracy_on_0_to_1():
    steps = pd.DataFrame({"epoch": [0.01], "train_loss": [2.3], "train_acc": [0.1]})
    loss, acc = figures.run_curves(steps, _epochs(0), window=4)
    assert [t.mode for t in loss.data] == ["markers", "markers"]
    assert [t.name for t in acc.data] == ["train (each batch)", "train (running mean)"]
    assert list(acc.layout.yaxis.range) == [0, 1] and acc.layout.yaxis.tickformat == ".0%"
    assert loss.layout.yaxis.range is None
    assert loss.layout.title.text == "Loss" and acc.layout.title.text == "Accuracy"


def test_run_curves_running_mean_over_the_window_and_epoch_lines():
    steps = pd.DataFrame({"epoch": [0.25, 0.5, 0.75, 1.0], "train_loss": [4.0, 2.0, 0.0, 2.0],
                          "train_acc": [0.0, 0.5, 1.0, 0.5]})
    loss, _ = figures.run_curves(steps, _epochs(2), window=2)
    batches, mean, train, test = loss.data
    assert batches.mode == "lines" and batches.line.color == "rgba(99,110,250,0.35)"
    assert list(mean.y) == [4.0, 3.0, 1.0, 1.0]
    assert (train.name, train.line.dash, train.mode) == ("train (epoch)", "dot", "lines+markers")
    assert (test.name, test.line.color, list(test.y)) == ("test", "#EF553B", [2.5, 1.25])


def test_run_curves_without_steps_show_only_the_evaluations():
    empty = pd.DataFrame({"epoch": [], "train_loss": [], "train_acc": []})
    loss, acc = figures.run_curves(empty, _epochs(1), window=1)
    assert [t.name for t in acc.data] == ["train (epoch)", "test"]


def test_confusion_colours_by_share_of_true_class_and_lists_true_top_down():
    counts = [[3, 1, 0], [0, 0, 0], [2, 2, 4]]
    fig = figures.confusion(["a", "b", "c"], counts)
    heat = fig.data[0]
    assert np.asarray(heat.z).tolist() == [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]]
    assert not np.isnan(np.asarray(heat.z, dtype=float)).any()  # the empty row divides by nothing
    assert np.asarray(heat.text).tolist() == counts and heat.texttemplate == "%{text}"
    assert (heat.zmin, heat.zmax, heat.colorbar.tickformat) == (0, 1, ".0%")
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.height == 360


def test_per_class_skips_classes_without_accuracy_and_sorts_ascending():
    fig = figures.per_class({"cat": 0.9, "dog": None, "fox": 0.2, "owl": 0.5})
    bar = fig.data[0]
    assert list(bar.y) == ["fox", "owl", "cat"] and list(bar.x) == [0.2, 0.5, 0.9]
    assert list(bar.text) == ["20%", "50%", "90%"] and bar.orientation == "h"
    assert list(fig.layout.xaxis.range) == [0, 1]


def test_top_classes_puts_the_most_likely_on_top():
    bar = figures.top_classes([("cat", 0.7), ("dog", 0.2), ("fox", 0.1)]).data[0]
    # a horizontal bar chart draws its first bar at the bottom
    assert list(bar.y) == ["fox", "dog", "cat"] and list(bar.x) == [0.1, 0.2, 0.7]
    assert list(bar.text) == ["10.0%", "20.0%", "70.0%"]


# ---- the Lab -------------------------------------------------------------------------------


class _TensorLike:  # what a torch tensor offers figures: .tolist()
    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return self.rows


@pytest.mark.parametrize("make", [list, _TensorLike, np.array])
def test_soft_labels_stack_one_trace_per_class(make):
    soft = [[0.7, 0.3], [0.4, 0.6]]
    fig = figures.soft_labels(make(soft), ["1: cat", "2: dog"])
    assert [t.name for t in fig.data] == ["1: cat", "2: dog"]
    assert [list(t.x) for t in fig.data] == [[0.7, 0.4], [0.3, 0.6]]
    assert list(fig.data[0].y) == ["mixed #1", "mixed #2"]
    assert fig.layout.barmode == "stack" and fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.height == 300


def test_beta_density_marks_each_drawn_value_and_caps_the_axis():
    x = np.linspace(0.01, 0.99, 50)
    density = 1 / np.sqrt(x * (1 - x)) / math.pi  # Beta(0.5, 0.5): large at the ends
    marks = {"λ #1": 0.2, "λ #2": 0.9}
    fig = figures.beta_density(x, density, 0.5, marks, title="Density λ is drawn from", x_title="λ")
    assert fig.data[0].name == "Beta(0.5, 0.5)" and fig.data[0].fill == "tozeroy"
    assert [s.x0 for s in fig.layout.shapes] == [0.2, 0.9]
    assert all(s.line.dash == "dot" for s in fig.layout.shapes)
    assert [a.text for a in fig.layout.annotations] == list(marks)
    assert fig.layout.yaxis.range[1] == pytest.approx(min(density.max(), 6.0) * 1.05)
    assert fig.layout.title.text == "Density λ is drawn from" and fig.layout.xaxis.title.text == "λ"


# ---- the Train page ------------------------------------------------------------------------


def test_lr_finder_is_log_x_and_marks_the_suggestion_on_the_smoothed_curve():
    curve = pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2, 1e-1], "raw_loss": [2.4, 2.0, 1.2, 5.0],
                          "loss": [2.3, 2.1, 1.5, 3.0]})
    fig = figures.lr_finder(curve, 1.2e-2)
    raw, smoothed, marker = fig.data
    assert fig.layout.xaxis.type == "log"
    assert (raw.name, smoothed.name) == ("loss of each batch", "smoothed")
    assert list(marker.x) == [1.2e-2] and list(marker.y) == [1.5]  # the nearest lr's smoothed loss
    assert marker.name == "suggested lr 0.012" and marker.marker.symbol == "x"
    assert [s.x0 for s in fig.layout.shapes] == [1.2e-2]


def test_schedule_adds_the_head_only_when_its_lr_differs():
    epochs, lrs = [0.0, 0.5, 1.0], [0.1, 0.05, 0.0]
    plain = figures.schedule(epochs, lrs)
    assert [t.name for t in plain.data] == ["lr"] and plain.layout.showlegend is False
    head = figures.schedule(epochs, lrs, head_lr_mult=10)
    assert [t.name for t in head.data] == ["lr", "head (×10)"]
    assert list(head.data[1].y) == pytest.approx([1.0, 0.5, 0.0]) and head.layout.showlegend is True


def test_schedule_shades_the_frozen_epochs_only_when_there_are_some():
    assert figures.schedule([0, 1], [0.1, 0.1]).layout.shapes == ()
    fig = figures.schedule([0, 1, 2], [0.1, 0.1, 0.1], frozen_epochs=1.5)
    (rect,) = fig.layout.shapes
    assert (rect.type, rect.x0, rect.x1) == ("rect", 0, 1.5)
    assert [a.text for a in fig.layout.annotations] == ["body frozen"]


# ---- export --------------------------------------------------------------------------------


def _decoded(value):
    """A trace array from plotly's JSON: a plain list, or numpy's bytes in base64 (plotly >= 6)."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return value


def _page_traces(html: str) -> list[dict]:
    start = html.index("Plotly.newPlot(")
    after_id = html.index(",", start) + 1
    data, _ = json.JSONDecoder().raw_decode(html[after_id:].lstrip())
    return data


def test_to_html_is_a_standalone_page_with_plotly_js_and_the_data():
    fig = figures.comparison([_series("run with mixup"), _series("baseline", "#636EFA", raw=np.array([9.0, 8.0, 7.0]))])
    page = figures.to_html(fig, config=figures.export_config("auglab_test_acc"))
    assert isinstance(page, bytes)
    html = page.decode("utf-8")
    head = html[:200].lower()
    assert "<html>" in head and "<head>" in head and html.rstrip().endswith("</html>")
    assert "plotly.js v" in html.lower() and len(html) > 1_000_000  # the library itself, embedded
    # Offline: no script loaded from the network. (The embedded plotly.js itself mentions
    # cdn.plot.ly as the default topojsonURL of geo maps, which these charts never use.)
    assert "<script src=" not in html and 'src="https://cdn.plot.ly' not in html
    traces = _page_traces(html)
    assert [t["name"] for t in traces] == ["run with mixup", "baseline"]
    assert _decoded(traces[0]["x"]) == [1.0, 2.0, 3.0] and _decoded(traces[0]["y"]) == pytest.approx([0.1, 0.2, 0.3])
    assert _decoded(traces[1]["customdata"]) == [9.0, 8.0, 7.0]
    assert '"filename": "auglab_test_acc"' in html


def test_export_config_sets_the_modebar_png_button():
    config = figures.export_config("auglab_test_acc_by_epoch")
    assert config == {"toImageButtonOptions": {"format": "png", "filename": "auglab_test_acc_by_epoch", "scale": 2}}
    # plotly accepts it as a figure config
    assert isinstance(go.Figure().to_html(config=config, include_plotlyjs=False), str)


def test_figures_imports_no_ui_torch_or_core_beyond_its_translations():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(figures))
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots <= {"__future__", "collections", "dataclasses", "typing", "numpy", "pandas", "plotly", "core"}
    core_modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("core")}
    assert core_modules == {"core.i18n"}  # only for the labels' translations
