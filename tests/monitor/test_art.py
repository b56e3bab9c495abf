"""The fuzzy-ART shape-novelty view: causal, vectorised, learns shapes, flags a new one once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescity.monitor.models.art import ShapeNoveltyDetector, ShapeParams


def _run(x: np.ndarray, params: ShapeParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Record ratios and misfits of one series, reading by reading."""
    det = ShapeNoveltyDetector(1, params)
    q, m = np.zeros(len(x)), np.zeros(len(x))
    s = np.array([0])
    for t, v in enumerate(x):
        q[t] = det.step(s, np.array([v]))[0]
        m[t] = det.misfit[0]
    return q, m


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=10, max_size=120),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40),
    st.integers(0, 119),
)
def test_a_score_does_not_change_when_later_data_change(values, other, cut) -> None:  # type: ignore[no-untyped-def]
    params = ShapeParams(window=3, step=2, categories=8, start=4, settle=2)
    x = np.array(values)
    cut = min(cut, len(x))
    y = np.r_[x[:cut], np.array(other)]  # same past, a different future
    qx, mx = _run(x, params)
    qy, my = _run(y, params)
    assert np.array_equal(qx[:cut], qy[:cut]) and np.array_equal(mx[:cut], my[:cut])
    assert np.all((mx >= 0) & (mx <= 1)) and np.all(qx >= 0)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=10, max_size=150))
def test_the_record_ratio_is_the_misfit_over_the_worst_earlier_misfit(values) -> None:  # type: ignore[no-untyped-def]
    params = ShapeParams(window=2, step=1, categories=4, start=3, settle=2)
    q, m = _run(np.array(values), params)
    for t in range(len(m)):
        earlier = m[params.start : t]
        worst = earlier.max() if len(earlier) else 0.0
        want = m[t] / worst if t >= params.start + params.settle and worst > 0 else 0.0
        assert q[t] == pytest.approx(want, rel=1e-12)


def test_categories_stay_boxes_in_the_unit_cube_and_within_the_vigilance_width() -> None:
    rng = np.random.default_rng(1)
    p = ShapeParams(window=4, step=1, categories=16, vigilance=0.8)
    det = ShapeNoveltyDetector(3, p)
    for _ in range(600):
        det.step(np.arange(3), rng.normal(size=3).cumsum())
    used = det.w[det.used]
    u, one_minus_v = used[:, : p.window], used[:, p.window :]
    assert np.all((used >= 0) & (used <= 1))
    width = (1.0 - one_minus_v) - u
    assert np.all(width >= -1e-12)
    assert np.all(width.sum(axis=1) <= p.window * (1.0 - p.vigilance) + 1e-9)
    assert det.used.sum(axis=1).max() <= p.categories


def test_a_learnt_cycle_fits_and_a_new_shape_is_a_record_once() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    x = np.tile([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0], n // 8) + 0.01 * rng.normal(size=n)
    x[1500:1516] = np.tile([3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0], 2)  # the cycle reversed
    x[1800:1816] = x[1500:1516]  # the same reversal again, later
    q, m = _run(x)
    # the ordinary cycle fits its boxes: misfits stay tiny and records barely creep up
    assert m[300:1500].max() < 0.05
    assert q[700:1500].max() < 1.05  # below the anomaly model's default record tolerance
    assert q[1500:1516].max() > 3.0  # the reversed ramp fits no learnt box
    assert m[1500:1516].max() > 0.2
    assert q[1800:1816].max() < 1.0  # ... and is known when it comes back


def test_many_sensors_in_one_step_equal_each_sensor_alone() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 400)).cumsum(axis=1)
    p = ShapeParams(window=3, step=2, categories=8, start=50)
    alone = [_run(row, p)[0] for row in x]
    det = ShapeNoveltyDetector(0, p)
    det.alloc(5)
    det.max_rows = 2  # several vector chunks per step
    together = np.array([det.step(np.array([4, 1, 3, 0, 2]), x[[4, 1, 3, 0, 2], t])
                         for t in range(x.shape[1])])
    for pos, k in enumerate([4, 1, 3, 0, 2]):
        np.testing.assert_array_equal(together[:, pos], alone[k])


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="window"):
        ShapeParams(window=0)
    with pytest.raises(ValueError, match="vigilance"):
        ShapeParams(vigilance=1.5)
    with pytest.raises(ValueError, match="start"):
        ShapeParams(start=-1)
    with pytest.raises(ValueError, match="settle"):
        ShapeParams(settle=0)
