"""core.runs.curves: a step curve in bounded memory, the same whether filled at once or row by row."""
import numpy as np
import pandas as pd
import pytest

from core.runs.curves import StepCurve

COLUMNS = ["step", "epoch", "train_loss", "train_acc", "test_loss", "lr"]


def rows(first: int, last: int, seed: int = 0) -> pd.DataFrame:
    """Step rows first..last with noisy metrics; test_loss is NaN (step rows have no evaluation)
    and train_acc is NaN on every fifth step (a batch whose accuracy was not measured)."""
    steps = np.arange(first, last + 1)
    rng = np.random.default_rng(seed + first)
    acc = rng.random(len(steps))
    acc[steps % 5 == 0] = np.nan
    return pd.DataFrame({
        "step": steps, "epoch": steps / 50, "train_loss": 2.3 * np.exp(-steps / 500) + rng.normal(0, 0.1, len(steps)),
        "train_acc": acc, "test_loss": np.nan, "lr": 0.1 * np.cos(steps / 1000),
    })


def oracle(frame: pd.DataFrame, width: int) -> pd.DataFrame:
    """Means over bins of `width` consecutive steps, by pandas."""
    return frame.groupby((frame["step"] - 1) // width).mean().reset_index(drop=True)


def test_a_short_run_is_kept_row_for_row():
    frame = rows(1, 120)
    curve = StepCurve.of(frame, capacity=300)
    assert curve.width == 1 and len(curve) == 120 and curve.rows == 120
    pd.testing.assert_frame_equal(curve.frame(), frame.astype(float), check_dtype=False)


def test_a_long_run_is_folded_into_at_most_capacity_bins_of_equal_width():
    frame = rows(1, 10_000)
    curve = StepCurve.of(frame, capacity=300)
    assert len(curve) <= 300
    assert curve.width == 64  # the smallest power of two with ceil(10000 / width) <= 300
    assert len(curve) == -(-10_000 // 64)
    pd.testing.assert_frame_equal(curve.frame(), oracle(frame, 64), check_dtype=False)
    assert curve.frame()["test_loss"].isna().all()  # a column with no values stays empty, not 0


@pytest.mark.parametrize("chunk", [1, 7, 299, 1000])
def test_rows_added_a_few_at_a_time_give_the_curve_of_all_rows_at_once(chunk):
    frame = rows(1, 3_000, seed=chunk)
    live = StepCurve(COLUMNS, capacity=100)
    for start in range(0, len(frame), chunk):
        live.add(frame.iloc[start:start + chunk])
    whole = StepCurve.of(frame, capacity=100)
    assert live.width == whole.width == 32
    pd.testing.assert_frame_equal(live.frame(), whole.frame())
    pd.testing.assert_frame_equal(live.tail(), frame.tail(30).reset_index(drop=True))


def test_memory_does_not_grow_with_the_run():
    curve = StepCurve(COLUMNS, capacity=300, tail=30)
    sizes = set()
    for start in range(1, 200_001, 2_000):
        curve.add(rows(start, start + 1_999))
        sizes.add((curve._sums.nbytes, curve._counts.nbytes, len(curve.tail())))
        assert len(curve) <= 300
    assert sizes == {(300 * len(COLUMNS) * 8, 300 * len(COLUMNS) * 8, 30)}
    assert curve.rows == 200_000 and curve.last_step == 200_000


def test_rows_already_added_are_not_counted_twice():
    curve = StepCurve.of(rows(1, 50), capacity=300)
    before = curve.frame()
    curve.add(rows(40, 50))  # a re-read that overlaps what is held
    curve.add(rows(1, 10))
    pd.testing.assert_frame_equal(curve.frame(), before)
    assert curve.rows == 50


def test_a_rolling_window_in_steps_spans_bins_of_the_current_width():
    curve = StepCurve.of(rows(1, 10_000), capacity=300)
    assert curve.window_in_bins(256) == 4
    assert curve.window_in_bins(10) == 1  # never less than one bin
    assert StepCurve.of(rows(1, 10), capacity=300).window_in_bins(10) == 10


def test_an_empty_curve_and_bad_arguments():
    curve = StepCurve(COLUMNS)
    assert curve.rows == 0 and curve.last_step is None and curve.frame().empty and curve.tail().empty
    curve.add(rows(1, 0))  # no rows: nothing changes
    assert curve.rows == 0
    with pytest.raises(ValueError, match="capacity"):
        StepCurve(COLUMNS, capacity=1)
    with pytest.raises(ValueError, match="step"):
        StepCurve(["epoch", "loss"])
