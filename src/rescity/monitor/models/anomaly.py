"""Online statistical anomaly model: learns each sensor's normal daily and weekly pattern.

:class:`SeasonalAnomalyDetector` keeps its whole state in NumPy arrays indexed by sensor
(shape ``[n_sensors, ...]``) and scores readings as they arrive, never looking ahead.
One call of :meth:`SeasonalAnomalyDetector.update` takes aligned arrays
(sensor index, time in ms, value) of any length; readings of a sensor must come in time
order, within and across calls. The readings of different sensors are processed together,
so a city's worth of sensors costs little more than one.

How a reading ``x`` of sensor ``s`` at local time ``t`` is scored (values in the sensor's
unit; every memory is counted in readings of that sensor, ``alpha`` = weight of the newest):

1. **Expected value, two ways.**
   *Local*: ``m``, an exponentially weighted mean of recent values (``alpha_level``).
   *Seasonal*: ``m' + P[s, bin(t)]``: the learnt offset of the time-of-week bin
   (``bins_per_day`` bins a day x 7 days; until that bin has been seen ``min_visits`` times,
   the time-of-day bin) on top of ``m'``, the same local mean of the deseasonalised series
   ``x - P``. Offsets are exponentially weighted means (``alpha_profile`` per visit) of
   ``x - b``, ``b`` a slow baseline (``alpha_base``), so the pattern is relearnt when it
   changes.
2. **Deviation.** Each residual is divided by its own robust scale, ``1.2533`` times an
   exponentially weighted mean absolute residual (``alpha_scale``; ``sqrt(pi/2) = 1.2533``
   makes it a standard deviation for Gaussian noise), floored at ``scale_floor`` times the
   range seen so far. ``z`` is the deviation under whichever model has the smaller mean
   absolute residual for this sensor so far (the seasonal one for sensors with a daily or
   weekly rhythm, the local one otherwise).
3. **Surprise.** ``u = -log10(2 Q(z))`` (``Q`` the Gaussian tail), capped at ``u_cap``.
4. **Anomaly likelihood** (the idea of Numenta's HTM detector, Ahmad et al. 2017): the mean
   ``a`` of the last ``short_window`` surprises is compared with its own long-run
   distribution (exponentially weighted mean ``mu`` and variance ``v``, ``alpha_long``):
   ``L = Q((a - mu) / sqrt(v))``. A sensor that is always noisy raises no alarm; a change of
   its behaviour does.
5. **Transition surprise** (a second, contextual view: is this *sequence* of values
   usual?). The value is quantised into ``trans_bins`` equal bins of the range seen so far;
   an exponentially forgetting table (``alpha_trans`` per departure from a bin) counts the
   transitions bin -> bin, and the reading's surprise is
   ``u2 = -log10((c[q_prev, q] + trans_prior) / (sum_j c[q_prev, j] + trans_bins * trans_prior))``
   (decades). As in step 4, the mean of the last ``trans_window`` values of ``u2`` is compared
   with its long-run mean and variance (same ``alpha_long``): ``L2 = Q((a2 - mu2) / sqrt(v2))``.
6. **Score** ``= clip((-log10 L - trans_weight * log10 L2) / decades, 0, 1)``: evidence in
   decades of likelihood adds up, the transition view counting ``trans_weight`` as much
   (``trans_weight = 0`` turns it off). A reading outside the range seen so far, widened by
   ``range_tolerance`` of that range, scores at least ``range_score`` (new extremes,
   Numenta's "spatial anomaly").
7. **Shape view** (a second, independent detector: has the *shape* of the last few readings
   been seen before? :mod:`rescity.monitor.models.art`). A fuzzy-ART memory of shape
   categories (the last ``shape_window`` means of ``shape_step`` readings each, scaled to the
   range seen so far; vigilance ``shape_vigilance``, at most ``shape_categories`` boxes) gives
   the misfit ``m`` of the current shape to its best category and the record ratio
   ``q = m / max(m since reading shape_start)`` (reported after ``shape_settle`` readings of
   that maximum). A shape that fits worse than any shape before it,
   ``q > 1 + shape_tolerance``, scores at least
   ``min(shape_score + shape_slope * (q - 1 - shape_tolerance), 1)``; the combination is the
   maximum of that and the score of step 6, plus the evidence of a near record,
   ``shape_near_weight * max(min(q, 1 + shape_tolerance) - shape_near, 0)``, clipped to 1
   (``shape_score = 0`` turns the view off). As the shape is learnt at once, a repeat of the
   same anomalous shape is no record.
8. **Refractory period.** After a reading scores ``>= alarm_level``, the scores of the next
   ``refractory`` readings of that sensor are multiplied by
   ``f + (1 - f) * refractory_ramp * (1 - h / refractory)`` with ``f = refractory_factor``
   and ``h`` the readings of the period still to run: right after an alarm only ``f`` of the
   score is left, and with ``refractory_ramp = 1`` the factor climbs linearly back to 1, so
   one event gives one warning while a much stronger event soon after an alarm still gets
   through (a false alarm does not blind the sensor for the whole period).

The first ``warmup`` readings of a sensor score 0 (the model is learning). Scores map to the
national four-level grade with :func:`grade`.

Limitations: memories count readings, not time, so a sensor whose sampling rate changes
changes its memories; the new-extreme rule (step 6) also fires on a rare record value of
stationary heavy- or Gaussian-tailed noise; the refractory period hides a worsening within
an ongoing event (escalation belongs to the incident layer); the weekly profile needs a few
weeks before it takes over from the daily one; a reading whose timestamp goes backwards
(clock adjustment) is accepted and binned by its own time; the transition bins follow the
range seen so far, so a new extreme re-maps them and the transition view (step 5) relearns
for a while (it is only a part of the evidence); the shape view (step 7) fires, ever more
rarely, on a record misfit of stationary noise, and after one very badly fitting shape it is
silent for a long time (its worst misfit is never forgotten).

The defaults were chosen on the NAB corpus (a handful of global values, the same for every
series, as NAB's own detectors were tuned; ``bench/bench_nab.py`` prints the grid searched
and a 2-fold held-out figure next to the full-corpus one).

State per sensor: ``16 * bins_per_day + trans_bins ** 2 + trans_bins + short_window +
trans_window + 18`` numbers, plus ``shape_categories * (2 * shape_window + 2) + shape_window *
shape_step + 5`` for the shape view (490 + 653 with the defaults, about 9.1 kB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy.special import log_ndtr

from .art import ShapeNoveltyDetector, ShapeParams

DAY_MS = 86_400_000
CST_OFFSET_MS = 8 * 3_600_000  # China Standard Time, UTC+8, no daylight saving
_LOG10E = 1.0 / math.log(10.0)

# Grades of GB/T and the national emergency-warning system: 1 = red (highest), 2 = orange,
# 3 = yellow, 4 = blue; 0 here means "no warning".
GRADE_NONE, GRADE_RED, GRADE_ORANGE, GRADE_YELLOW, GRADE_BLUE = 0, 1, 2, 3, 4

#: Default lowest scores of the blue, yellow, orange and red grades. Blue is the detector's
#: alarm level (0.3, the operating point NAB's threshold optimisation finds for the default
#: parameters); a score ``s`` below 1 stands for a likelihood of ``10 ** (-30 s)`` under a
#: Gaussian model of the sensor's recent surprise, so each step up is 4.5 more decades of
#: evidence (yellow 0.45, orange 0.6, red 0.8). A new extreme beyond the range ever seen
#: scores at least 0.5 (yellow) by itself; a record misfit of the shape view about 0.3 (blue).
DEFAULT_GRADE_THRESHOLDS: tuple[float, float, float, float] = (0.3, 0.45, 0.6, 0.8)


def grade(
    score: np.ndarray | float,
    thresholds: tuple[float, float, float, float] = DEFAULT_GRADE_THRESHOLDS,
) -> np.ndarray:
    """The four-level warning grade of anomaly scores.

    ``thresholds`` are the lowest scores of (blue, yellow, orange, red), increasing.
    Returns int8: 0 no warning, 4 blue, 3 yellow, 2 orange, 1 red (level 1 = red is highest).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (4,) or np.any(np.diff(t) < 0):
        raise ValueError(
            f"expected 4 increasing thresholds (blue, yellow, orange, red), found {thresholds!r}"
        )
    n_passed = np.searchsorted(t, np.asarray(score, dtype=np.float64), side="right")
    return np.where(n_passed == 0, GRADE_NONE, 5 - n_passed).astype(np.int8)


@dataclass(frozen=True, slots=True)
class AnomalyParams:
    """Hyper-parameters (memories in readings; see the module docstring for each step)."""

    bins_per_day: int = 24
    utc_offset_ms: int = 0
    alpha_level: float = 0.03
    alpha_profile: float = 0.1
    alpha_base: float = 0.01
    min_visits: int = 2
    alpha_scale: float = 0.001
    scale_floor: float = 1e-3
    u_cap: float = 30.0
    short_window: int = 8
    alpha_long: float = 0.003
    decades: float = 30.0
    range_tolerance: float = 0.05
    range_score: float = 0.5
    alarm_level: float = 0.3
    refractory: int = 200
    refractory_factor: float = 0.0
    refractory_ramp: float = 1.0
    warmup: int = 100
    trans_bins: int = 8
    alpha_trans: float = 0.01
    trans_prior: float = 0.1
    trans_weight: float = 0.0
    trans_window: int = 8
    shape_score: float = 0.3
    shape_slope: float = 0.5
    shape_tolerance: float = 0.05
    shape_window: int = 4
    shape_step: int = 2
    shape_categories: int = 64
    shape_vigilance: float = 0.9
    shape_start: int = 250
    shape_settle: int = 50
    shape_near: float = 0.85
    shape_near_weight: float = 0.2

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("alpha_") and not 0.0 < v <= 1.0:
                raise ValueError(f"{f.name} must be in (0, 1], found {v}")
        if self.bins_per_day < 1 or DAY_MS % self.bins_per_day:
            raise ValueError(
                f"bins_per_day must divide a day in whole ms, found {self.bins_per_day}"
            )
        if self.short_window < 1:
            raise ValueError(f"short_window must be >= 1, found {self.short_window}")
        if self.trans_bins < 2 or self.trans_window < 1:
            raise ValueError(
                f"trans_bins must be >= 2 and trans_window >= 1, found "
                f"{self.trans_bins} and {self.trans_window}"
            )
        if self.trans_weight < 0 or self.trans_prior <= 0:
            raise ValueError(
                f"trans_weight must be >= 0 and trans_prior > 0, found "
                f"{self.trans_weight} and {self.trans_prior}"
            )
        if not 0.0 <= self.refractory_ramp <= 1.0:
            raise ValueError(f"refractory_ramp must be in [0, 1], found {self.refractory_ramp}")
        if min(self.shape_score, self.shape_slope, self.shape_tolerance,
               self.shape_near, self.shape_near_weight) < 0:
            raise ValueError(
                "shape_score, shape_slope, shape_tolerance, shape_near and shape_near_weight "
                f"must be >= 0, found {self.shape_score}, {self.shape_slope}, "
                f"{self.shape_tolerance}, {self.shape_near} and {self.shape_near_weight}"
            )
        self.shape_params()  # validates the shape detector's values

    def shape_params(self) -> ShapeParams:
        """The parameters of the shape-novelty view (step 7), as :class:`ShapeParams`."""
        return ShapeParams(
            window=self.shape_window,
            step=self.shape_step,
            categories=self.shape_categories,
            vigilance=self.shape_vigilance,
            start=self.shape_start,
            settle=self.shape_settle,
        )


class SeasonalAnomalyDetector:
    """Online, causal, vectorised anomaly scorer over many sensors (see module docstring).

    >>> det = SeasonalAnomalyDetector(n_sensors=2)
    >>> det.update(np.array([0, 1]), np.array([0, 0]), np.array([1.0, 5.0]))
    array([0., 0.])
    """

    # state, one row per sensor (allocated in _alloc)
    count: np.ndarray
    last_ts: np.ndarray
    level: np.ndarray
    base: np.ndarray
    level_d: np.ndarray
    mad_local: np.ndarray
    mad_seasonal: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    week_off: np.ndarray
    week_n: np.ndarray
    day_off: np.ndarray
    day_n: np.ndarray
    ring: np.ndarray
    ring_sum: np.ndarray
    long_mu: np.ndarray
    long_var: np.ndarray
    long_n: np.ndarray
    hold: np.ndarray
    q_prev: np.ndarray
    trans: np.ndarray
    trans_row: np.ndarray
    ring2: np.ndarray
    ring2_sum: np.ndarray
    long2_mu: np.ndarray
    long2_var: np.ndarray

    def __init__(self, n_sensors: int = 0, params: AnomalyParams | None = None) -> None:
        self.params = params if params is not None else AnomalyParams()
        self.n_sensors = 0
        self.shape: ShapeNoveltyDetector | None = (
            ShapeNoveltyDetector(0, self.params.shape_params())
            if self.params.shape_score > 0
            else None
        )
        self._alloc(max(int(n_sensors), 0))

    # ------------------------------------------------------------------ state

    def _alloc(self, n: int) -> None:
        p = self.params
        nb = p.bins_per_day
        shapes: dict[str, tuple[tuple[int, ...], type, float]] = {
            "count": ((), np.int64, 0),
            "last_ts": ((), np.int64, np.iinfo(np.int64).min),
            "level": ((), np.float64, 0.0),
            "base": ((), np.float64, 0.0),
            "level_d": ((), np.float64, 0.0),
            "mad_local": ((), np.float64, 0.0),
            "mad_seasonal": ((), np.float64, 0.0),
            "vmin": ((), np.float64, np.inf),
            "vmax": ((), np.float64, -np.inf),
            "week_off": ((7 * nb,), np.float64, 0.0),
            "week_n": ((7 * nb,), np.int32, 0),
            "day_off": ((nb,), np.float64, 0.0),
            "day_n": ((nb,), np.int32, 0),
            "ring": ((p.short_window,), np.float64, 0.0),
            "ring_sum": ((), np.float64, 0.0),
            "long_mu": ((), np.float64, 0.0),
            "long_var": ((), np.float64, 0.0),
            "long_n": ((), np.int64, 0),
            "hold": ((), np.int64, 0),
            "q_prev": ((), np.int64, 0),
            "trans": ((p.trans_bins, p.trans_bins), np.float64, 0.0),
            "trans_row": ((p.trans_bins,), np.float64, 0.0),
            "ring2": ((p.trans_window,), np.float64, 0.0),
            "ring2_sum": ((), np.float64, 0.0),
            "long2_mu": ((), np.float64, 0.0),
            "long2_var": ((), np.float64, 0.0),
        }
        old = self.n_sensors
        for name, (shape, dtype, fill) in shapes.items():
            arr: np.ndarray = np.full((n, *shape), fill, dtype=dtype)
            if old:
                arr[:old] = getattr(self, name)[:old]
            setattr(self, name, arr)
        if self.shape is not None:
            self.shape.alloc(n)
        self.n_sensors = n

    def _ensure(self, max_idx: int) -> None:
        if max_idx >= self.n_sensors:
            self._alloc(max(max_idx + 1, 2 * self.n_sensors))

    # ------------------------------------------------------------------ scoring

    def update(self, sensor_idx: np.ndarray, ts_ms: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Learn from readings and return their anomaly scores in [0, 1] (same order).

        ``sensor_idx`` int (>= 0; the state grows as new indices appear), ``ts_ms`` int64 ms
        since the epoch (UTC; local time is ``ts + params.utc_offset_ms``), ``value`` float.
        Each sensor's readings must be in non-decreasing time order, also across calls.
        Non-finite values score 0 and are not learnt.
        """
        s = np.asarray(sensor_idx, dtype=np.int64).ravel()
        t = np.asarray(ts_ms, dtype=np.int64).ravel()
        x = np.asarray(value, dtype=np.float64).ravel()
        if not (len(s) == len(t) == len(x)):
            raise ValueError(
                f"arrays differ in length: sensor {len(s)}, ts {len(t)}, value {len(x)}"
            )
        out = np.zeros(len(s))
        if len(s) == 0:
            return out
        if s.min() < 0:
            raise ValueError("sensor indices must be >= 0")
        self._ensure(int(s.max()))
        # occurrence rank of each reading within its sensor: round r holds the r-th readings
        order = np.argsort(s, kind="stable")
        ss = s[order]
        first = np.r_[0, np.flatnonzero(np.diff(ss)) + 1]
        run_len = np.diff(np.r_[first, len(ss)])
        rank = np.empty(len(s), dtype=np.int64)
        rank[order] = np.arange(len(ss)) - np.repeat(first, run_len)
        n_rounds = int(run_len.max())
        if n_rounds == 1:
            out[:] = self._step(s, t, x)
        else:
            # positions of round r: the readings of each sensor in arrival order
            by_rank = np.argsort(rank, kind="stable")
            bounds = np.r_[0, np.cumsum(np.bincount(rank, minlength=n_rounds))]
            for r in range(n_rounds):
                idx = by_rank[bounds[r] : bounds[r + 1]]
                out[idx] = self._step(s[idx], t[idx], x[idx])
        return out

    def _step(self, s: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Score one reading per sensor (``s`` has no repeated index)."""
        p = self.params
        ok = np.isfinite(x)
        if not ok.all():
            s, t, x = s[ok], t[ok], x[ok]
        score = np.zeros(len(ok))
        if len(s) == 0:
            return score
        self.last_ts[s] = np.maximum(self.last_ts[s], t)
        n = self.count[s]
        new = n == 0
        nb = p.bins_per_day
        local = t + p.utc_offset_ms
        day = np.floor_divide(local, DAY_MS)
        dbin = (np.floor_divide(local - day * DAY_MS, DAY_MS // nb)).astype(np.int64)
        wbin = ((day + 3) % 7) * nb + dbin  # 1970-01-01 was a Thursday: Monday = 0

        level = np.where(new, x, self.level[s])
        base = np.where(new, x, self.base[s])
        vmin, vmax = self.vmin[s], self.vmax[s]
        rng = np.where(np.isfinite(vmax - vmin), vmax - vmin, 0.0)
        floor = p.scale_floor * rng + 1e-9 * (np.abs(level) + 1.0)

        w_n = self.week_n[s, wbin]
        d_n = self.day_n[s, dbin]
        off = np.where(
            w_n >= p.min_visits,
            self.week_off[s, wbin],
            np.where(d_n >= p.min_visits, self.day_off[s, dbin], 0.0),
        )
        e_local = x - level
        level_d = np.where(new, x, self.level_d[s])
        e_seas = x - (level_d + off)
        sd_local = 1.2533 * self.mad_local[s] + floor
        sd_seas = 1.2533 * self.mad_seasonal[s] + floor
        z_local = np.abs(e_local) / sd_local
        z_seas = np.abs(e_seas) / sd_seas
        # the model that has predicted this sensor better so far judges the reading
        z = np.where(self.mad_seasonal[s] < self.mad_local[s], z_seas, z_local)
        # u = -log10(2 Q(z)) = -log10(erfc(z / sqrt 2)), stable for large z
        u = np.minimum(-(math.log(2.0) + np.asarray(log_ndtr(-z))) * _LOG10E, p.u_cap)
        u = np.maximum(u, 0.0)

        # short mean of the surprise vs its long-run distribution
        k = p.short_window
        pos = n % k
        old_u = self.ring[s, pos]
        ring_sum = self.ring_sum[s] + u - old_u
        self.ring[s, pos] = u
        self.ring_sum[s] = ring_sum
        a = ring_sum / np.minimum(n + 1, k)
        mu, var, ln = self.long_mu[s], self.long_var[s], self.long_n[s]
        sd = np.sqrt(var) + 1e-6
        zl = (a - mu) / sd
        log10_l = -np.asarray(log_ndtr(-zl)) * _LOG10E  # -log10 Q(zl)
        sc = np.clip(log10_l / p.decades, 0.0, 1.0)
        # long-run stats: plain mean while young, then exponential forgetting
        al = np.maximum(1.0 / (ln + 1.0), p.alpha_long)
        d = a - mu
        self.long_mu[s] = mu + al * d
        self.long_var[s] = (1.0 - al) * (var + al * d * d)
        self.long_n[s] = ln + 1

        if p.trans_weight > 0:
            nq = p.trans_bins
            q = np.where(rng > 0, np.floor(nq * (x - vmin) / np.where(rng > 0, rng, 1.0)), 0.0)
            q = np.clip(q, 0, nq - 1).astype(np.int64)
            qp = self.q_prev[s]
            cnt = self.trans[s, qp, q]
            row = self.trans_row[s, qp]
            u2 = -np.log10((cnt + p.trans_prior) / (row + nq * p.trans_prior))
            k2 = p.trans_window
            pos2 = n % k2
            r2 = self.ring2_sum[s] + u2 - self.ring2[s, pos2]
            self.ring2[s, pos2] = u2
            self.ring2_sum[s] = r2
            a2 = r2 / np.minimum(n + 1, k2)
            mu2, var2 = self.long2_mu[s], self.long2_var[s]
            zl2 = (a2 - mu2) / (np.sqrt(var2) + 1e-6)
            l2 = -np.asarray(log_ndtr(-zl2)) * _LOG10E  # -log10 Q(zl2)
            # evidence of both surprises adds up (in decades of likelihood)
            sc = np.clip((log10_l + p.trans_weight * l2) / p.decades, 0.0, 1.0)
            d2 = a2 - mu2
            self.long2_mu[s] = mu2 + al * d2
            self.long2_var[s] = (1.0 - al) * (var2 + al * d2 * d2)
            dec = 1.0 - p.alpha_trans
            self.trans[s, qp, :] *= dec
            self.trans[s, qp, q] += 1.0
            self.trans_row[s, qp] = row * dec + 1.0
            self.q_prev[s] = q

        if p.range_tolerance >= 0:
            tol = p.range_tolerance * rng
            outside = (rng > 0) & ((x > vmax + tol) | (x < vmin - tol))
            sc = np.where(outside, np.maximum(sc, p.range_score), sc)

        if self.shape is not None:
            # shape view: a shape that fits the learnt categories worse than any since
            # shape_start (record ratio q > 1 + tolerance) scores at least shape_score
            q = self.shape.step(s, x)
            top = 1.0 + p.shape_tolerance
            rec = np.minimum(p.shape_score + p.shape_slope * (q - top), 1.0)
            sc = np.where(q > top, np.maximum(sc, rec), sc)
            # a near-record misfit adds a little evidence of its own
            near = np.maximum(np.minimum(q, top) - p.shape_near, 0.0)
            sc = np.minimum(sc + p.shape_near_weight * near, 1.0)

        # refractory: one event, one warning
        hold = self.hold[s]
        # factor f + (1 - f) * ramp * (1 - hold / refractory): f right after an alarm,
        # recovering linearly towards 1 when ramp = 1
        factor = p.refractory_factor + (1.0 - p.refractory_factor) * p.refractory_ramp * (
            1.0 - hold / max(p.refractory, 1)
        )
        sc = np.where(hold > 0, sc * factor, sc)
        sc = np.where(n < p.warmup, 0.0, sc)
        fired = sc >= p.alarm_level
        self.hold[s] = np.where(fired, p.refractory, np.maximum(hold - 1, 0))

        # learn (after scoring: causal)
        ab = np.where(new, 1.0, np.maximum(1.0 / (n + 1.0), p.alpha_base))
        al_s = np.maximum(1.0 / (n + 1.0), p.alpha_scale)
        self.mad_local[s] = np.where(
            new, 0.0, self.mad_local[s] + al_s * (np.abs(e_local) - self.mad_local[s])
        )
        self.mad_seasonal[s] = np.where(
            new, 0.0, self.mad_seasonal[s] + al_s * (np.abs(e_seas) - self.mad_seasonal[s])
        )
        self.level[s] = level + p.alpha_level * (x - level)
        self.level_d[s] = level_d + p.alpha_level * (x - off - level_d)
        new_base = base + ab * (x - base)
        self.base[s] = new_base
        dev = x - new_base
        aw = np.maximum(1.0 / (w_n + 1.0), p.alpha_profile)
        self.week_off[s, wbin] += aw * (dev - self.week_off[s, wbin])
        self.week_n[s, wbin] = w_n + 1
        ad = np.maximum(1.0 / (d_n + 1.0), p.alpha_profile)
        self.day_off[s, dbin] += ad * (dev - self.day_off[s, dbin])
        self.day_n[s, dbin] = d_n + 1
        self.vmin[s] = np.minimum(vmin, x)
        self.vmax[s] = np.maximum(vmax, x)
        self.count[s] = n + 1

        score[ok] = sc
        return score


def score_series(
    ts_ms: np.ndarray, value: np.ndarray, params: AnomalyParams | None = None
) -> np.ndarray:
    """Scores of one series, read in order by a fresh detector (convenience for tests/benches)."""
    det = SeasonalAnomalyDetector(1, params)
    return det.update(np.zeros(len(value), dtype=np.int64), ts_ms, value)


def score_many(
    series: list[tuple[np.ndarray, np.ndarray]], params: AnomalyParams | None = None
) -> list[np.ndarray]:
    """Scores of several independent series, fed in parallel as sensors 0..n-1.

    Reading ``k`` of every series goes into the ``k``-th call, so the work is vectorised
    across series while each one stays causal.
    """
    det = SeasonalAnomalyDetector(len(series), params)
    lengths = np.array([len(v) for _, v in series], dtype=np.int64)
    ts = np.zeros((len(series), int(lengths.max(initial=0))), dtype=np.int64)
    vals = np.full(ts.shape, np.nan)
    for i, (t, v) in enumerate(series):
        ts[i, : len(v)] = t
        vals[i, : len(v)] = v
    scores = np.zeros(ts.shape)
    for k in range(ts.shape[1]):
        live = np.flatnonzero(lengths > k)
        scores[live, k] = det._step(live, ts[live, k], vals[live, k])
    return [scores[i, :n].copy() for i, n in enumerate(lengths)]
