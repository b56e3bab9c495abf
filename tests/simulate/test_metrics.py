"""Resilience metrics: hand-computed curves and the properties every curve must satisfy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescity.simulate.metrics import (
    Curve,
    city_metrics,
    clip,
    combine,
    describe,
    ensemble_bands,
    ensemble_summary,
    evaluate,
    hours,
    loss_of_resilience,
    metric_distributions,
    metrics_by,
    resample,
    resilience_index,
    robustness,
    summarize,
    time_below,
    time_to_recover,
)
from rescity.simulate.plots import plot_resilience_curves

# A drop from 100 % to 40 % at the hazard (t = 0), linear recovery to 100 % at 10 h.
TRIANGLE = Curve.of([0.0, 0.0, 10.0], [100.0, 40.0, 100.0])


# -- hand-computed ---------------------------------------------------------------------------------
def test_triangle_loss_of_resilience_is_the_triangles_area() -> None:
    # area = base x height / 2 = 10 h x 60 % / 2
    assert loss_of_resilience(*TRIANGLE) == pytest.approx(300.0)
    assert robustness(TRIANGLE.q_pct) == 40.0
    assert resilience_index(*TRIANGLE) == pytest.approx(1 - 300.0 / (100 * 10))


def test_triangle_recovery_times_and_time_below() -> None:
    # Q(t) = 40 + 6 t after the drop: 95 % at t = 55/6 h, 100 % at 10 h
    assert time_to_recover(*TRIANGLE, level=95.0) == pytest.approx(55 / 6)
    assert time_to_recover(*TRIANGLE, level=100.0) == pytest.approx(10.0)
    assert time_below(*TRIANGLE, threshold=100.0) == pytest.approx(10.0)
    assert time_below(*TRIANGLE, threshold=70.0) == pytest.approx(5.0)  # 40 + 6 t < 70 for t < 5
    assert time_below(*TRIANGLE, threshold=40.0) == 0.0


def test_trapezoid_with_a_plateau_hand_computed() -> None:
    # 100 until 1 h, down to 20 at 2 h, flat until 5 h, back to 100 at 9 h, flat to 12 h
    c = Curve.of([0, 1, 2, 5, 9, 12], [100, 100, 20, 20, 100, 100])
    # R = 80*1/2 + 80*3 + 80*4/2 = 40 + 240 + 160
    assert loss_of_resilience(*c) == pytest.approx(440.0)
    assert time_to_recover(*c, 95.0) == pytest.approx(5 + 4 * 75 / 80)
    assert time_to_recover(*c, 100.0) == pytest.approx(9.0)
    assert time_below(*c, 100.0) == pytest.approx(8.0)
    m = summarize(c, threshold=50.0)
    assert m.time_below_threshold_h == pytest.approx(30 / 80 + 3 + 30 / 80 * 4)
    assert (m.t_start_h, m.t_end_h, m.robustness_pct) == (0.0, 12.0, 20.0)
    assert m.to_dict()["loss_of_resilience_pct_h"] == pytest.approx(440.0)


def test_never_recovered_is_none_and_window_extends_the_last_level() -> None:
    c = Curve.of([0, 0, 4], [100, 30, 90])
    assert time_to_recover(*c, 95.0) is None
    assert time_to_recover(*c, 100.0) is None
    assert time_to_recover(*c, 80.0) == pytest.approx(4 * 50 / 60)
    # beyond the curve the last level (90 %) holds: 10 % over 6 more hours
    assert loss_of_resilience(*c, 0, 10) == pytest.approx(loss_of_resilience(*c) + 60.0)
    assert loss_of_resilience(*c, 1, 3) == pytest.approx((100 - 60) * 2)  # Q = 30 + 15 t: 60 at 2 h


def test_recovery_is_searched_after_the_minimum() -> None:
    # up to 100 at 2 h, down again to 10 at 4 h, back at 6 h: the recovery is the second one
    c = Curve.of([0, 0, 2, 4, 6], [100, 50, 100, 10, 100])
    assert time_to_recover(*c, 100.0) == pytest.approx(6.0)
    # a step straight up across the level recovers at the step
    s = Curve.of([0, 0, 3, 3, 5], [100, 20, 20, 100, 100])
    assert time_to_recover(*s, 95.0) == 3.0
    assert time_below(*s, 100.0) == pytest.approx(3.0)


def test_seconds_are_converted_to_hours() -> None:
    c = Curve.from_seconds([0, 0, 36000], [100, 40, 100])
    np.testing.assert_allclose(c.t_h, TRIANGLE.t_h)
    assert hours(7200) == 2.0


def test_evaluate_interpolates_and_steps_are_right_continuous() -> None:
    np.testing.assert_allclose(TRIANGLE.at([-1, 0, 5, 10, 20]), [100, 40, 70, 100, 100])
    assert evaluate(*TRIANGLE, [0.0], side="left")[0] == 100.0
    assert float(evaluate(*TRIANGLE, 2.5)) == pytest.approx(55.0)
    r = resample(TRIANGLE, [0, 2.5, 10])
    np.testing.assert_allclose(r.q_pct, [40, 55, 100])
    w = clip(TRIANGLE, 5, 20)
    np.testing.assert_allclose(w.t_h, [5, 10, 20])
    np.testing.assert_allclose(w.q_pct, [70, 100, 100])


@pytest.mark.parametrize(("t", "q", "message"), [
    ([0, 2, 1], [100, 50, 100], "must not decrease"),
    ([0, 1], [100, 101], "0..100"),
    ([0, 1], [100], "as many levels"),
    ([], [], "at least one point"),
    ([0, 1], [100, float("nan")], "finite"),
])
def test_bad_curves_are_rejected_with_what_was_found(t: list[float], q: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Curve.of(t, q)


def test_city_is_the_weighted_mean_of_its_networks() -> None:
    water = Curve.of([0, 0, 10], [100, 40, 100])      # R = 300
    power = Curve.of([0, 0, 2, 2, 10], [100, 0, 0, 100, 100])  # R = 200
    city, m = city_metrics({"water": water, "power": power}, {"water": 3.0, "power": 1.0})
    assert m.loss_of_resilience_pct_h == pytest.approx((3 * 300 + 1 * 200) / 4)
    assert city.at([0])[0] == pytest.approx((3 * 40 + 0) / 4)
    assert city.at([2])[0] == pytest.approx((3 * 52 + 100) / 4)     # after power's step
    assert evaluate(*city, [2.0], side="left")[0] == pytest.approx((3 * 52 + 0) / 4)
    assert m.robustness_pct == pytest.approx(30.0)
    eq = combine({"water": water, "power": power})
    assert loss_of_resilience(*eq) == pytest.approx(250.0)


def test_combine_names_missing_and_unknown_weights() -> None:
    with pytest.raises(ValueError, match=r"missing \['power'\], unknown \['gas'\]"):
        combine({"water": TRIANGLE, "power": TRIANGLE}, {"water": 1.0, "gas": 2.0})
    with pytest.raises(ValueError, match="not all zero"):
        combine({"water": TRIANGLE}, {"water": 0.0})


def test_metrics_per_jurisdiction() -> None:
    per = metrics_by({"D1": TRIANGLE, "D2": Curve.of([0, 10], [100, 100])})
    assert per["D1"].loss_of_resilience_pct_h == pytest.approx(300.0)
    assert per["D2"].loss_of_resilience_pct_h == 0.0
    assert per["D2"].t_recover_100_h == 0.0


def test_ensemble_bands_and_metric_distributions() -> None:
    curves = [Curve.of([0, 0, h], [100, low, 100]) for h, low in [(4, 50), (8, 30), (12, 10), (16, 40)]]
    b = ensemble_bands(curves)
    assert b.n == 4
    assert np.all(b.p10 <= b.p90)
    # the mean of the curves' R equals the R of the mean curve (R is linear in Q)
    rs = [loss_of_resilience(*c) for c in curves]
    assert loss_of_resilience(b.t_h, b.mean) == pytest.approx(np.mean(rs))
    # at t = 0 after the drop: levels 50, 30, 10, 40
    assert b.mean[1] == pytest.approx(32.5)
    assert b.p10[1] == pytest.approx(np.percentile([50, 30, 10, 40], 10))
    g = ensemble_bands(curves, grid_h=np.linspace(0, 16, 5))
    assert g.t_h.size == 5 and g.to_dict()["n"] == 4
    d = metric_distributions(curves)
    np.testing.assert_allclose(d["loss_of_resilience_pct_h"], rs)
    np.testing.assert_allclose(d["t_recover_100_h"], [4, 8, 12, 16])
    s = ensemble_summary(curves)
    assert s["robustness_pct"]["min"] == 10.0 and s["robustness_pct"]["max"] == 50.0


def test_describe_counts_realizations_that_never_recover() -> None:
    d = metric_distributions([TRIANGLE, Curve.of([0, 0, 5], [100, 20, 60])])
    assert math.isnan(d["t_recover_95_h"][1])
    stats = describe(d["t_recover_95_h"])
    assert stats["n"] == 2 and stats["n_missing"] == 1
    assert stats["mean"] == pytest.approx(55 / 6)
    assert math.isnan(describe([float("nan")])["mean"])


# -- properties ----------------------------------------------------------------------------------
@st.composite
def curves(draw: st.DrawFn, steps: bool = True) -> Curve:
    """Arbitrary curves: increasing times (zero gaps are steps when allowed), levels 0..100."""
    n = draw(st.integers(1, 12))
    gap = st.floats(0.01, 10.0)
    gaps = draw(st.lists(st.one_of(st.just(0.0), gap) if steps else gap, min_size=n - 1, max_size=n - 1))
    t0 = draw(st.floats(-5.0, 5.0))
    t = np.concatenate(([t0], t0 + np.cumsum(gaps))) if gaps else np.array([t0])
    level = st.one_of(st.just(100.0), st.floats(0.0, 100.0))
    q = draw(st.lists(level, min_size=n, max_size=n))
    return Curve.of(t, q)


@given(curves())
def test_loss_of_resilience_is_never_negative(c: Curve) -> None:
    assert loss_of_resilience(*c) >= 0.0
    assert 0.0 <= resilience_index(*c) <= 1.0 + 1e-12


@given(curves(steps=False))
def test_loss_is_zero_exactly_when_service_is_full(c: Curve) -> None:
    full = bool(np.all(c.q_pct == 100.0))
    if c.t_h.size == 1:
        assert loss_of_resilience(*c) == 0.0  # a single instant has no duration
    else:
        assert (loss_of_resilience(*c) == 0.0) == full
        assert (time_below(*c, 100.0) == 0.0) == full


@given(curves(), st.lists(st.floats(-10, 130), min_size=1, max_size=20))
def test_robustness_is_below_every_level(c: Curve, at: list[float]) -> None:
    r = robustness(c.q_pct)
    assert np.all(r <= c.q_pct)
    assert np.all(r <= c.at(at) + 1e-9)
    assert np.all(r <= evaluate(*c, at, side="left") + 1e-9)


@given(curves(), st.floats(0.0, 100.0))
def test_recovery_to_95_is_never_after_recovery_to_100(c: Curve, level: float) -> None:
    t95 = time_to_recover(*c, 95.0)
    t100 = time_to_recover(*c, 100.0)
    if t100 is not None:
        assert t95 is not None and t95 <= t100 + 1e-9
    tl = time_to_recover(*c, level)
    if tl is not None:
        assert tl <= c.t_h[-1]
        if c.q_pct.min() < level - 1e-9:  # recovered after the minimum (1e-9: rounding tolerance)
            assert c.t_h[int(np.argmin(c.q_pct))] <= tl
        else:  # nothing to recover
            assert tl == c.t_h[0]
        after = c.t_h[c.t_h > tl]
        assert np.all(c.at(after) >= level - 2e-9)  # it stays recovered


@given(curves(), st.data())
def test_metrics_do_not_change_with_redundant_points_on_a_segment(c: Curve, data: st.DataObject) -> None:
    segs = [i for i in range(c.t_h.size - 1) if c.t_h[i + 1] > c.t_h[i]]
    if not segs:
        return
    i = data.draw(st.sampled_from(segs))
    fs = sorted(data.draw(st.lists(st.floats(0.01, 0.99), min_size=1, max_size=3)))
    tn = [c.t_h[i] + f * (c.t_h[i + 1] - c.t_h[i]) for f in fs]
    qn = list(c.at(tn))
    t2 = np.concatenate((c.t_h[: i + 1], tn, c.t_h[i + 1:]))
    q2 = np.concatenate((c.q_pct[: i + 1], qn, c.q_pct[i + 1:]))
    a, b = summarize(c, threshold=60.0), summarize(Curve.of(t2, q2), threshold=60.0)
    assert b.loss_of_resilience_pct_h == pytest.approx(a.loss_of_resilience_pct_h, rel=1e-9, abs=1e-7)
    assert b.resilience_index == pytest.approx(a.resilience_index, rel=1e-9, abs=1e-7)
    assert b.robustness_pct == pytest.approx(a.robustness_pct, rel=1e-9, abs=1e-7)
    assert b.time_below_threshold_h == pytest.approx(a.time_below_threshold_h, rel=1e-9, abs=1e-7)
    for x, y in [(a.t_recover_95_h, b.t_recover_95_h), (a.t_recover_100_h, b.t_recover_100_h)]:
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert y == pytest.approx(x, rel=1e-9, abs=1e-7)


@settings(max_examples=50)
@given(st.lists(curves(), min_size=1, max_size=4), st.data())
def test_combined_loss_is_the_weighted_mean_of_losses_on_a_common_span(cs: list[Curve], data: st.DataObject) -> None:
    # put every curve on the same span so that R is linear in the weights
    t0 = min(c.t_h[0] for c in cs)
    t1 = max(c.t_h[-1] for c in cs)
    spanned = {f"n{k}": clip(c, t0, t1) for k, c in enumerate(cs)}
    w = {k: data.draw(st.floats(0.0, 10.0)) for k in spanned}
    if sum(w.values()) == 0:
        w["n0"] = 1.0
    city = combine(spanned, w)
    total = sum(w.values())  # normalised first: w * R would underflow for subnormal weights
    expected = sum(w[k] / total * loss_of_resilience(*c) for k, c in spanned.items())
    assert loss_of_resilience(*city) == pytest.approx(expected, rel=1e-9, abs=1e-7)
    assert robustness(city.q_pct) >= min(robustness(c.q_pct) for c in spanned.values()) - 1e-9


@settings(max_examples=50)
@given(st.lists(curves(), min_size=1, max_size=5))
def test_ensemble_band_brackets_and_mean_loss(cs: list[Curve]) -> None:
    b = ensemble_bands(cs)
    lo = np.min([np.minimum(evaluate(*c, b.t_h), evaluate(*c, b.t_h, side="left")) for c in cs], axis=0)
    assert np.all(b.p10 <= b.p90 + 1e-9)
    assert np.all(lo <= b.p10 + 1e-9)
    assert np.all(lo <= b.mean + 1e-9)


# -- the figure -------------------------------------------------------------------------------------
def test_plot_writes_png_and_svg_with_labelled_axes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    water = Curve.of([0, 0, 10], [100, 40, 100])
    power = Curve.of([0, 0, 2, 2, 10], [100, 0, 0, 100, 100])
    city, _ = city_metrics({"water": water, "power": power}, {"water": 3, "power": 1})
    bands = ensemble_bands([water, Curve.of([0, 0, 14], [100, 20, 100])])
    png = tmp_path / "curves.png"
    fig = plot_resilience_curves({"water": water, "power": power}, city=city,
                                 bands={"water ensemble": bands}, path=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time since the scenario start (h)"
    assert ax.get_ylabel() == "service level Q (%)"
    labels = ax.get_legend_handles_labels()[1]
    assert {"water", "power", "city", "water ensemble p10-p90"} <= set(labels)
    svg = tmp_path / "curves.svg"
    plot_resilience_curves(bands={"w": bands}, path=svg)
    assert "<svg" in svg.read_text()[:1000]
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_resilience_curves({"water": water}, path=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_resilience_curves()
