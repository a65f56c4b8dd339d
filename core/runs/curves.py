"""A run's step curve held in bounded memory: the rows folded into at most N bins, plus the last few.

A live chart never shows more than a few hundred points, and a live view that kept every step row
of a long run would grow with it (36,000 rows after an hour at ten steps a second, copied each
time rows are added). `StepCurve` folds rows into bins of `width` consecutive steps as they
arrive; when the bins would outnumber `capacity`, neighbouring pairs merge and the width doubles.
So memory is fixed by construction whatever the length of the run, each row is added once, and
the curve drawn from the bins is the same whether they were filled in one go (a finished run) or
a second at a time (a live one).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.i18n import _

DEFAULT_CAPACITY = 300  # points a drawn step curve has at most
DEFAULT_TAIL = 30  # last rows kept as they are: progress, pace and speed read them


class StepCurve:
    """Step rows (columns `step`, `epoch` and metrics, one row a step, steps from 1 up) as bin means."""

    def __init__(self, columns: list[str] | tuple[str, ...], capacity: int = DEFAULT_CAPACITY, tail: int = DEFAULT_TAIL) -> None:
        if capacity < 2:
            raise ValueError(_("capacity must be at least 2, not {capacity}").format(capacity=capacity))
        if "step" not in columns:
            raise ValueError(_("the rows need a 'step' column"))
        self.columns = list(columns)
        self.capacity = capacity
        self.width = 1  # steps per bin: a power of two
        self._sums = np.zeros((capacity, len(self.columns)))
        self._counts = np.zeros((capacity, len(self.columns)))  # values that were not NaN
        self._tail_size = tail
        self._tail = pd.DataFrame(columns=self.columns)
        self.rows = 0
        self.last_step: int | None = None

    @classmethod
    def of(cls, rows: pd.DataFrame, capacity: int = DEFAULT_CAPACITY, tail: int = DEFAULT_TAIL) -> StepCurve:
        curve = cls(list(rows.columns), capacity, tail)
        curve.add(rows)
        return curve

    def add(self, rows: pd.DataFrame) -> None:
        """Fold in rows of later steps than any added so far (earlier or repeated steps are skipped)."""
        if rows.empty:
            return
        rows = rows[self.columns]
        if self.last_step is not None:
            rows = rows[rows["step"] > self.last_step]
            if rows.empty:
                return
        values = rows.to_numpy(dtype=float)
        steps = values[:, self.columns.index("step")].astype(np.int64)
        while (int(steps.max()) - 1) // self.width >= self.capacity:
            self._merge_pairs()
        index = np.maximum(steps - 1, 0) // self.width
        present = ~np.isnan(values)
        np.add.at(self._sums, index, np.where(present, values, 0.0))
        np.add.at(self._counts, index, present)
        self.rows += len(rows)
        self.last_step = int(steps.max())
        kept = rows if self._tail.empty else pd.concat([self._tail, rows], ignore_index=True)
        self._tail = kept.tail(self._tail_size).reset_index(drop=True)

    def _merge_pairs(self) -> None:
        for name in ("_sums", "_counts"):
            bins = getattr(self, name)
            merged = np.zeros_like(bins)
            pairs = np.add.reduceat(bins, np.arange(0, len(bins), 2))  # bins 0+1, 2+3, ... (an odd last alone)
            merged[: len(pairs)] = pairs
            setattr(self, name, merged)
        self.width *= 2

    def frame(self) -> pd.DataFrame:
        """One row a non-empty bin: the mean of each column over the bin's rows (NaN where it had none)."""
        filled = self._counts[:, self.columns.index("step")] > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self._sums[filled] / self._counts[filled]
        return pd.DataFrame(means, columns=self.columns)

    def tail(self) -> pd.DataFrame:
        """The last rows added, unbinned (at most `tail` of them)."""
        return self._tail

    def window_in_bins(self, steps: int) -> int:
        """How many bins a rolling window of `steps` steps spans (at least one)."""
        return max(1, round(steps / self.width))

    def __len__(self) -> int:
        return int((self._counts[:, self.columns.index("step")] > 0).sum())
