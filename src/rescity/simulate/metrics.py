"""Resilience metrics (韧性评价) over service-level curves: pure functions on NumPy arrays.

A **service-level curve** Q(t) is the percentage (0..100) of a network's normal service
that is delivered at time t: customers with water, load served, population with road
access. Throughout this module **time is in hours** (``t_h``), measured from the scenario
start (the hazard at t = 0 in the scenarios of :mod:`rescity.simulate`); Q is in percent
(``q_pct``). Use :func:`hours` to convert a schedule's seconds.

Between samples Q is **linear** (the curve is the polyline through its points). Two
samples at the same time are a **step**: Q jumps there, and the curve is right-continuous
(its value at the step time is the later sample's). Before the first sample Q holds the
first value, after the last it holds the last. On that reading every metric below is
exact, not a numerical approximation:

=========================  ==================================================  ========
metric                     formula                                             unit
=========================  ==================================================  ========
robustness (打不垮)        min_t Q(t)                                          %
loss of resilience R       ∫_{t0}^{t1} (100 - Q(t)) dt  (Bruneau et al. 2003)  %·h
resilience index           ∫_{t0}^{t1} Q(t) dt / (100 (t1 - t0))               1
time to recover to L       inf{τ >= t_min : Q(t) >= L for all t in [τ, t1]}    h
                           (t0 if Q never falls below L)
time below threshold L     |{t in [t0, t1] : Q(t) < L}|                        h
=========================  ==================================================  ========

with [t0, t1] the curve's span (or a window given), and t_min the first time of the
minimum. R is the area of the "resilience triangle" of Bruneau et al. (2003), *A framework
to quantitatively assess and enhance the seismic resilience of communities*, Earthquake
Spectra 19(4): 733-752, computed by the trapezoidal rule over the curve's own points
(exact for a polyline). Recovery times are instants on the curve's clock (hours since the
scenario start); ``None`` when Q is still below the level at the end of the curve.

A **city** curve is a weighted mean of network curves, Q_city(t) = Σ w_n Q_n(t) / Σ w_n
(weights e.g. the population each network serves); jurisdictions (districts, streets)
are scored from their own curves with :func:`metrics_by`. **Ensembles** of realizations
are summarised by the mean and the p10/p90 band of Q(t) (:func:`ensemble_bands`) and by
the distribution of every metric (:func:`metric_distributions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

FULL = 100.0
"""Full service, in percent."""

_Q_TOL = 1e-9  # tolerance on the 0..100 range, in percent

Array = NDArray[np.float64]


class Curve(NamedTuple):
    """A service-level curve: times in hours (non-decreasing; a repeated time is a step)
    and the service level in percent (0..100) at those times. A plain tuple, so
    ``t_h, q_pct = curve`` works and every function here accepts either form."""

    t_h: Array
    q_pct: Array

    @classmethod
    def of(cls, t_h: ArrayLike, q_pct: ArrayLike) -> Curve:
        """A validated curve from times in hours and levels in percent."""
        t, q = as_curve(t_h, q_pct)
        return cls(t, q)

    @classmethod
    def from_seconds(cls, t_s: ArrayLike, q_pct: ArrayLike) -> Curve:
        """A validated curve from times in seconds (converted to hours: t_h = t_s / 3600)."""
        return cls.of(hours(t_s), q_pct)

    def at(self, t_h: ArrayLike) -> Array:
        """Q at the given times (hours), see :func:`evaluate`."""
        return evaluate(self.t_h, self.q_pct, t_h)


CurveLike = Curve | tuple[ArrayLike, ArrayLike]


def hours(t_s: ArrayLike) -> Array:
    """Seconds to hours: t_h = t_s / 3600."""
    return np.asarray(t_s, dtype=float) / 3600.0


def as_curve(t_h: ArrayLike, q_pct: ArrayLike) -> tuple[Array, Array]:
    """Check and convert a curve: 1-D arrays of equal length (at least one point), finite,
    times non-decreasing, Q within 0..100 %. Raises ``ValueError`` saying what was found."""
    t = np.asarray(t_h, dtype=float)
    q = np.asarray(q_pct, dtype=float)
    if t.ndim != 1 or q.ndim != 1:
        raise ValueError(f"a curve needs 1-D times and levels, got shapes {t.shape} and {q.shape}")
    if t.size != q.size:
        raise ValueError(f"a curve needs as many levels as times, got {q.size} levels for {t.size} times")
    if t.size == 0:
        raise ValueError("a curve needs at least one point, got none")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise ValueError("a curve's times and levels must be finite (found NaN or inf)")
    if np.any(np.diff(t) < 0):
        k = int(np.argmax(np.diff(t) < 0))
        raise ValueError(f"a curve's times must not decrease, found {t[k]} h then {t[k + 1]} h")
    if q.min() < -_Q_TOL or q.max() > FULL + _Q_TOL:
        raise ValueError(f"service levels are percentages in 0..100, found {q.min()}..{q.max()}")
    return t, np.clip(q, 0.0, FULL)


def _unpack(curve: CurveLike) -> tuple[Array, Array]:
    t, q = curve
    return as_curve(t, q)


# -- interpolation -------------------------------------------------------------------------------
def evaluate(t_h: ArrayLike, q_pct: ArrayLike, at_h: ArrayLike, *, side: str = "right") -> Array:
    """Q at the times ``at_h`` (hours): linear between samples, constant outside the span.

    At a step (two samples at one time) ``side="right"`` gives the value after the step
    (the curve is right-continuous), ``side="left"`` the limit from the left (the value
    before the step)."""
    t, q = as_curve(t_h, q_pct)
    x = np.atleast_1d(np.asarray(at_h, dtype=float))
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    n = t.size
    if side == "right":
        k = np.searchsorted(t, x, side="right") - 1  # the last sample with t <= x
        inner = (k >= 0) & (k < n - 1)
        out = np.where(k < 0, q[0], q[-1])
        ki = k[inner]
        t0, t1 = t[ki], t[ki + 1]  # t0 <= x < t1
        out[inner] = q[ki] + (q[ki + 1] - q[ki]) * (x[inner] - t0) / (t1 - t0)
    else:
        k = np.searchsorted(t, x, side="left")  # the first sample with t >= x
        kc = np.minimum(k, n - 1)
        exact = (k < n) & ((k == 0) | (t[kc] == x))
        inner = (k > 0) & (k < n) & ~exact
        out = np.where(k >= n, q[-1], q[kc])
        ki = k[inner]
        t0, t1 = t[ki - 1], t[ki]  # t0 < x < t1
        out[inner] = q[ki - 1] + (q[ki] - q[ki - 1]) * (x[inner] - t0) / (t1 - t0)
    out = out.astype(float)
    return out.reshape(np.shape(at_h))


def resample(curve: CurveLike, grid_h: ArrayLike) -> Curve:
    """The curve evaluated (right-continuously) on a grid of times in hours."""
    t, q = _unpack(curve)
    g = np.asarray(grid_h, dtype=float)
    return Curve.of(g, evaluate(t, q, g))


def clip(curve: CurveLike, t0_h: float | None = None, t1_h: float | None = None) -> Curve:
    """The part of the curve on the window [t0_h, t1_h] (hours), with points added at the
    window's ends (held constant beyond the curve's span); steps inside are kept."""
    t, q = _unpack(curve)
    a = float(t[0]) if t0_h is None else float(t0_h)
    b = float(t[-1]) if t1_h is None else float(t1_h)
    if b < a:
        raise ValueError(f"the window must not end before it starts, got {a} h .. {b} h")
    inside = (t > a) & (t < b)
    tt = np.concatenate(([a], t[inside], [b]))
    qq = np.concatenate((evaluate(t, q, [a], side="right"), q[inside], evaluate(t, q, [b], side="left")))
    return Curve.of(tt, qq)


def _window(t_h: ArrayLike, q_pct: ArrayLike, t0_h: float | None, t1_h: float | None) -> tuple[Array, Array]:
    if t0_h is None and t1_h is None:
        return as_curve(t_h, q_pct)
    return clip((t_h, q_pct), t0_h, t1_h)


def combine(curves: Mapping[str, CurveLike], weights: Mapping[str, float] | None = None) -> Curve:
    """The weighted mean of several curves: Q(t) = Σ w_n Q_n(t) / Σ w_n (w_n >= 0, Σ w_n > 0;
    equal weights if ``weights`` is None), e.g. the city from its networks weighted by the
    population each serves, or a district from its streets.

    Exact for polylines with steps: the result has a point at every time any curve has,
    and a step wherever any curve steps. Every curve must have a weight, and only those."""
    if not curves:
        raise ValueError("combine needs at least one curve, got none")
    names = list(curves)
    if weights is None:
        w = np.ones(len(names))
    else:
        missing = [n for n in names if n not in weights]
        extra = [n for n in weights if n not in curves]
        if missing or extra:
            raise ValueError(f"weights must name exactly the curves {sorted(names)}; "
                             f"missing {sorted(missing)}, unknown {sorted(extra)}")
        w = np.array([float(weights[n]) for n in names])
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all zero, got {dict(zip(names, w.tolist(), strict=True))}")
    w = w / w.sum()
    parts = [_unpack(curves[n]) for n in names]
    grid = np.unique(np.concatenate([t for t, _ in parts]))
    left = sum(wi * evaluate(t, q, grid, side="left") for wi, (t, q) in zip(w, parts, strict=True))
    right = sum(wi * evaluate(t, q, grid, side="right") for wi, (t, q) in zip(w, parts, strict=True))
    return _with_steps(grid, np.asarray(left), np.asarray(right), parts)


def _with_steps(grid: Array, left: Array, right: Array, parts: Sequence[tuple[Array, Array]]) -> Curve:
    """Points on ``grid``, doubled (left value, then right value) where any part steps."""
    steps = np.zeros(grid.size, dtype=bool)
    for t, _ in parts:
        dup = t[1:][np.diff(t) == 0]
        steps |= np.isin(grid, dup)
    tt: list[float] = []
    qq: list[float] = []
    for g, lo, hi, s in zip(grid, left, right, steps, strict=True):
        if s:
            tt += [g, g]
            qq += [lo, hi]
        else:
            tt.append(g)
            qq.append(hi)
    return Curve.of(np.array(tt), np.clip(np.array(qq), 0.0, FULL))


# -- the metrics -----------------------------------------------------------------------------------
def robustness(q_pct: ArrayLike) -> float:
    """Robustness (打不垮): the lowest service level, min_t Q(t), in percent. (On a polyline
    the minimum is at a sample, so the minimum of the samples is exact.)"""
    q = np.asarray(q_pct, dtype=float)
    if q.size == 0:
        raise ValueError("robustness needs at least one service level, got none")
    return float(q.min())


def loss_of_resilience(t_h: ArrayLike, q_pct: ArrayLike, t0_h: float | None = None,
                       t1_h: float | None = None) -> float:
    """Loss of resilience (Bruneau et al. 2003), in %·h:

        R = ∫_{t0}^{t1} (100 - Q(t)) dt = Σ_i (t_{i+1} - t_i) (200 - Q_i - Q_{i+1}) / 2

    (the trapezoidal rule over the curve's points, exact for a polyline; steps add
    nothing). The window defaults to the curve's span; a window beyond the span holds the
    end values. R >= 0, and R = 0 exactly when Q = 100 on the whole window."""
    t, q = _window(t_h, q_pct, t0_h, t1_h)
    return float(np.sum(np.diff(t) * ((FULL - q[:-1]) + (FULL - q[1:])) / 2.0))


def resilience_index(t_h: ArrayLike, q_pct: ArrayLike, t0_h: float | None = None,
                     t1_h: float | None = None) -> float:
    """The normalised resilience index, dimensionless in 0..1:

        RI = ∫_{t0}^{t1} Q(t) dt / (100 (t1 - t0)) = 1 - R / (100 (t1 - t0))

    (1 for full service throughout; the mean service level as a fraction). For a window
    of zero length it is Q / 100 at that instant."""
    t, q = _window(t_h, q_pct, t0_h, t1_h)
    span = float(t[-1] - t[0])
    if span == 0:
        return float(q[-1]) / FULL
    return 1.0 - loss_of_resilience(t, q) / (FULL * span)


def time_to_recover(t_h: ArrayLike, q_pct: ArrayLike, level: float = 95.0) -> float | None:
    """The time (hours, on the curve's clock) from which Q stays at or above ``level`` %
    until the end of the curve, searched from the (first) minimum on:

        τ_L = inf{τ >= t_min : Q(t) >= L for all t in [τ, t_end]}

    interpolated on the rising segment after the last sample below L. That last sample is
    never before the minimum (the minimum is itself below L), so the search needs no t_min
    and does not depend on which of several equal minima is taken. If Q never falls below
    L there is nothing to recover: τ_L = t_start (the curve's first time). ``None`` if Q is
    below L at the end of the curve (no recovery within it). τ_95 <= τ_100 whenever both
    exist. A level within 1e-9 percentage points of L counts as L (float rounding of
    computed curves, e.g. 99.99999999999999 after summing repairs)."""
    t, q = as_curve(t_h, q_pct)
    if not 0.0 <= level <= FULL:
        raise ValueError(f"the recovery level is a percentage in 0..100, got {level}")
    below = np.nonzero(q < level - _Q_TOL)[0]
    if below.size == 0:
        return float(t[0])
    i = int(below[-1])  # the last sample below the level
    if i == t.size - 1:
        return None
    t0, q0, t1, q1 = float(t[i]), float(q[i]), float(t[i + 1]), float(q[i + 1])
    if t1 == t0:
        return t0  # a step up across the level
    return min(t1, t0 + (level - q0) * (t1 - t0) / (q1 - q0))


def time_below(t_h: ArrayLike, q_pct: ArrayLike, threshold: float = 100.0,
               t0_h: float | None = None, t1_h: float | None = None) -> float:
    """The total time (hours) during which Q < ``threshold`` %, on the window (default the
    curve's span): |{t : Q(t) < L}|, exact on each linear segment (the part of the segment
    below L, found where the segment crosses L)."""
    t, q = _window(t_h, q_pct, t0_h, t1_h)
    total = 0.0
    for a, b, qa, qb in zip(t[:-1], t[1:], q[:-1], q[1:], strict=True):
        dt = float(b - a)
        if dt == 0:
            continue
        if qa < threshold and qb < threshold:
            total += dt
        elif qa < threshold <= qb:
            total += dt * (threshold - qa) / (qb - qa)
        elif qb < threshold <= qa:
            total += dt * (threshold - qb) / (qa - qb)
    return float(total)


@dataclass(frozen=True)
class ResilienceMetrics:
    """The metrics of one curve. Times in hours on the curve's clock, levels in percent,
    R in %·h; recovery times are ``None`` if the curve ends below the level."""

    robustness_pct: float
    loss_of_resilience_pct_h: float
    resilience_index: float
    t_recover_95_h: float | None
    t_recover_100_h: float | None
    time_below_threshold_h: float
    threshold_pct: float
    t_start_h: float
    t_end_h: float

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)


def summarize(curve: CurveLike, *, threshold: float = 100.0) -> ResilienceMetrics:
    """Every metric of one curve over its span (``threshold`` for :func:`time_below`)."""
    t, q = _unpack(curve)
    return ResilienceMetrics(
        robustness_pct=robustness(q),
        loss_of_resilience_pct_h=loss_of_resilience(t, q),
        resilience_index=resilience_index(t, q),
        t_recover_95_h=time_to_recover(t, q, 95.0),
        t_recover_100_h=time_to_recover(t, q, 100.0),
        time_below_threshold_h=time_below(t, q, threshold),
        threshold_pct=float(threshold),
        t_start_h=float(t[0]),
        t_end_h=float(t[-1]),
    )


def metrics_by(curves: Mapping[str, CurveLike], *, threshold: float = 100.0) -> dict[str, ResilienceMetrics]:
    """The metrics of each named curve: per network ("water", "power", ...) or per
    jurisdiction (district or street codes, from the per-jurisdiction curves)."""
    return {name: summarize(c, threshold=threshold) for name, c in curves.items()}


def city_metrics(curves: Mapping[str, CurveLike], weights: Mapping[str, float] | None = None, *,
                 threshold: float = 100.0) -> tuple[Curve, ResilienceMetrics]:
    """The city's curve, the weighted mean of the network curves (:func:`combine`), and its
    metrics. Weights e.g. the population served by each network; equal if None."""
    city = combine(curves, weights)
    return city, summarize(city, threshold=threshold)


# -- ensembles ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnsembleBands:
    """Q(t) over an ensemble of realizations on a common time grid (hours): the mean and
    the p10 and p90 bands (percentiles across realizations at each time, linear
    interpolation between order statistics), in percent."""

    t_h: Array
    mean: Array
    p10: Array
    p90: Array
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"t_h": self.t_h.tolist(), "mean": self.mean.tolist(), "p10": self.p10.tolist(),
                "p90": self.p90.tolist(), "n": self.n}


def ensemble_bands(curves: Sequence[CurveLike], grid_h: ArrayLike | None = None,
                   quantiles: tuple[float, float] = (10.0, 90.0)) -> EnsembleBands:
    """The mean and the p10/p90 band of Q(t) across realizations.

    Every curve is evaluated on ``grid_h`` (hours; right-continuous at steps) or, if None,
    on the union of all the curves' times, with a left and a right value at a step. The
    mean is then exact for polylines (a mean of polylines is the polyline through the
    means); the percentiles are exact at the grid's times."""
    if not curves:
        raise ValueError("an ensemble needs at least one realization, got none")
    parts = [_unpack(c) for c in curves]
    if grid_h is not None:
        g = np.asarray(grid_h, dtype=float)
        if g.ndim != 1 or g.size == 0 or np.any(np.diff(g) < 0):
            raise ValueError("the grid must be a non-empty, non-decreasing 1-D array of hours")
        table = np.vstack([evaluate(t, q, g) for t, q in parts])
    else:
        grid = np.unique(np.concatenate([t for t, _ in parts]))
        steps = np.zeros(grid.size, dtype=bool)
        for t, _ in parts:
            steps |= np.isin(grid, t[1:][np.diff(t) == 0])
        g = np.concatenate([[x, x] if s else [x] for x, s in zip(grid, steps, strict=True)])
        rows = []
        for t, q in parts:
            lo = evaluate(t, q, grid, side="left")
            hi = evaluate(t, q, grid, side="right")
            rows.append(np.concatenate([[a, b] if s else [b] for a, b, s in zip(lo, hi, steps, strict=True)]))
        table = np.vstack(rows)
    lo_q, hi_q = quantiles
    return EnsembleBands(t_h=g, mean=table.mean(axis=0), p10=np.percentile(table, lo_q, axis=0),
                         p90=np.percentile(table, hi_q, axis=0), n=len(parts))


METRIC_NAMES = ("robustness_pct", "loss_of_resilience_pct_h", "resilience_index",
                "t_recover_95_h", "t_recover_100_h", "time_below_threshold_h")


def metric_distributions(curves: Iterable[CurveLike], *, threshold: float = 100.0) -> dict[str, Array]:
    """Each metric over the realizations, one value per realization (in input order); a
    recovery that never happens is NaN."""
    rows = [summarize(c, threshold=threshold) for c in curves]
    if not rows:
        raise ValueError("an ensemble needs at least one realization, got none")
    out: dict[str, Array] = {}
    for name in METRIC_NAMES:
        vals = [getattr(r, name) for r in rows]
        out[name] = np.array([np.nan if v is None else float(v) for v in vals])
    return out


def describe(values: ArrayLike) -> dict[str, float | int]:
    """Summary of one metric's distribution: n, n_missing (NaN: e.g. never recovered),
    mean, std (population), min, p10, p50, p90, max of the present values (NaN if none)."""
    v = np.asarray(values, dtype=float)
    ok = v[~np.isnan(v)]
    stats: dict[str, float | int] = {"n": int(v.size), "n_missing": int(v.size - ok.size)}
    if ok.size == 0:
        stats.update({k: float("nan") for k in ("mean", "std", "min", "p10", "p50", "p90", "max")})
        return stats
    stats.update({"mean": float(ok.mean()), "std": float(ok.std()), "min": float(ok.min()),
                  "p10": float(np.percentile(ok, 10)), "p50": float(np.percentile(ok, 50)),
                  "p90": float(np.percentile(ok, 90)), "max": float(ok.max())})
    return stats


def ensemble_summary(curves: Sequence[CurveLike], *, threshold: float = 100.0) -> dict[str, dict[str, float | int]]:
    """:func:`describe` of every metric across the realizations."""
    return {k: describe(v) for k, v in metric_distributions(curves, threshold=threshold).items()}
