"""Replay: an ended run's curves grow again at 1x, 5x or 20x, as they were recorded, with no training."""
from __future__ import annotations

import json

import pytest
from conftest import open_train_page, plotly_array, run
from test_compare import make_run

from core.runs import replay


def test_a_replay_shows_what_the_run_had_recorded_by_then_at_its_speed():
    # 2 epochs of 4 steps, a step every 0.5 s: steps at 0.5 ... 4.0 s, evaluations at 2.0 and 4.0 s
    run_id = make_run("baseline", test_acc=(0.5, 0.7), steps_per_epoch=4, wall_per_step=0.5)
    # (times that are exact in binary, so that the comparisons are the run's, not rounding's)
    played = replay.Replay.of(run_id, speed=5, started=0.0)
    assert played.recorded_s == 4.0 and played.duration_s == pytest.approx(0.8)
    steps, epochs = played.visible(0.0)
    assert steps.empty and epochs.empty
    steps, epochs = played.visible(0.375)  # 0.375 s at 5x: the run's first 1.875 s
    assert steps["step"].tolist() == [1, 2, 3] and epochs.empty
    steps, epochs = played.visible(0.5)  # 2.5 s: five steps and the first evaluation
    assert len(steps) == 5 and epochs["test_acc"].tolist() == [0.5]
    assert not played.done(0.75) and played.done(0.8)
    steps, epochs = played.visible(400.0)  # long after: everything, nothing more
    assert len(steps) == 8 and epochs["test_acc"].tolist() == [0.5, 0.7]
    # a moment at 20x shows as much as four times that long at 5x
    fast = replay.Replay.of(run_id, speed=20, started=0.0)
    assert fast.visible(0.09375)[0].equals(played.visible(0.375)[0])
    assert replay.Replay.of(run_id, speed=1, started=0.0).duration_s == 4.0


def test_only_ended_runs_replay_and_only_at_the_offered_speeds():
    running = make_run("still going", status="running")
    with pytest.raises(ValueError, match="only an ended run"):
        replay.Replay.of(running, speed=5, started=0.0)
    with pytest.raises(ValueError, match="1×, 5×, 20×"):
        replay.Replay.of(make_run("done"), speed=3, started=0.0)


def test_the_train_page_replays_a_run_its_curves_growing_then_ending(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(replay, "clock", lambda: now[0])
    run_id = make_run("baseline", test_acc=(0.5, 0.7), steps_per_epoch=4, wall_per_step=0.5)
    app = open_train_page()
    app.query_params["run"] = run_id
    run(app)
    assert not app.get("plotly_chart") or all("tr-replay" not in (c.proto.id or "") for c in app.get("plotly_chart"))
    app.button(key="tr-replay").click()  # at 5x, the default
    run(app)

    def replayed_points() -> int:
        charts = [c for c in app.get("plotly_chart") if c.proto.id.endswith(f"tr-replay-{run_id}-loss")]
        assert charts, "no replay chart"
        return sum(len(plotly_array(trace.get("x", []))) for trace in json.loads(charts[0].proto.spec)["data"])

    assert "Replay at 5×: 0 s of 4 s" in app.get("progress")[-1].proto.text
    now[0] += 0.375  # the run's first 1.875 s: three steps, no evaluation yet
    run(app)
    early = replayed_points()
    assert "of 4 s" in app.get("progress")[-1].proto.text
    now[0] += 0.25  # 3.125 s: six steps and the first evaluation
    run(app)
    assert replayed_points() > early
    now[0] += 1.0  # past the end: the replay ends by itself and says so
    run(app)
    assert any("Replay of baseline finished" in s.value for s in app.success)
    assert app.session_state["tr_replay"] is None
