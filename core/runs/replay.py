"""Replay: an ended run's curves grow again as if it were training, at 1x, 5x or 20x, with no training.

Every metric row keeps the wall time at which the run recorded it (seconds since its start), so a
replay shows, `elapsed` seconds after it began at `speed`, exactly the rows recorded in the first
`elapsed * speed` seconds of the run:

    replay = Replay.of(run_id, speed=5, started=clock())
    steps, epochs = replay.visible(clock())      # what a live view would have shown by then
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from core.i18n import _
from core.runs import store

SPEEDS = (1, 5, 20)
clock = time.monotonic  # the replay's clock (a test moves it by hand)


def _timed(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with a wall time each: a row recorded without one takes the last known before it."""
    rows = rows.copy()
    rows["wall"] = rows["wall"].ffill().fillna(0.0)
    return rows


@dataclass(frozen=True)
class Replay:
    run_id: str
    speed: float
    started: float  # clock() when the replay began
    steps: pd.DataFrame
    epochs: pd.DataFrame

    @classmethod
    def of(cls, run_id: str, speed: float, started: float) -> Replay:
        if speed not in SPEEDS:
            raise ValueError(_("a replay runs at {speeds}, not {speed}").format(
                speeds=", ".join(f"{s}×" for s in SPEEDS), speed=speed))
        record = store.get_run(run_id)
        if not record.is_final:
            raise ValueError(_("only an ended run can be replayed; {name} is {status}").format(
                name=record.name, status=record.status))
        return cls(run_id, speed, started, _timed(store.metrics(run_id, "step")), _timed(store.metrics(run_id, "epoch")))

    @property
    def recorded_s(self) -> float:
        """How long the run took, from its first to its last recorded row."""
        walls = pd.concat([self.steps["wall"], self.epochs["wall"]])
        return float(walls.max()) if len(walls) else 0.0

    @property
    def duration_s(self) -> float:
        return self.recorded_s / self.speed

    def run_time(self, now: float) -> float:
        """The run's own time shown at `now`: elapsed replay time times the speed, up to the end."""
        return min(max(0.0, now - self.started) * self.speed, self.recorded_s)

    def visible(self, now: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(step rows, evaluation rows) recorded by the run time shown at `now`."""
        t = self.run_time(now)
        return self.steps[self.steps["wall"] <= t], self.epochs[self.epochs["wall"] <= t]

    def done(self, now: float) -> bool:
        return now - self.started >= self.duration_s
