"""Online shape-novelty detector after adaptive resonance theory (fuzzy ART), many sensors at once.

A second, independent view for :mod:`rescity.monitor.models.anomaly`: instead of asking "is this
value far from the expected one?" it asks "has the *shape* of the last few readings been seen
before?". It keeps, per sensor, a small memory of shape categories learnt without supervision by
the fuzzy ART rule (Carpenter, Grossberg & Rosen 1991; the use of ART for streaming anomalies
follows the idea of M. Hampton's ARTime), and reports how badly the current shape fits the
best category, relative to the worst misfit seen so far.

How reading ``x_t`` of sensor ``s`` is scored (everything counted in readings of that sensor):

1. **Range.** ``lo``, ``hi``: the minimum and maximum of the readings so far (including ``x_t``).
2. **Shape.** ``W = window`` points, each the mean of ``step`` consecutive readings, the newest
   block first: ``p_k = mean(x_{t-k*step-step+1} .. x_{t-k*step})``, ``k = 0 .. W-1``, scaled to
   ``a_k = (p_k - lo) / (hi - lo)`` in [0, 1] and complement-coded: ``I = (a, 1 - a)``, so
   ``|I| = sum(I) = W`` for every input.
3. **Categories.** Up to ``categories`` weight vectors ``w_j`` (2W numbers each; a category is a
   box ``[u_j, v_j]`` in shape space with ``w_j = (u_j, 1 - v_j)``). The *match* of the input
   to category ``j`` is ``M_j = |I ^ w_j| / W`` (``^`` the element-wise minimum), which is
   ``1 - sum_k (max(a_k, v_jk) - min(a_k, u_jk)) / W``: one minus the total width of the
   smallest box that holds both the category's box and the shape.
4. **Misfit** ``m_t = 1 - max_j M_j`` (0 when the memory is empty): how much the best category
   would have to grow to hold the shape.
5. **Score** (the value :meth:`ShapeNoveltyDetector.step` returns): the *record ratio*
   ``q_t = m_t / max(m_i : start <= i < t)`` (readings counted from 0), reported from reading
   ``start + settle`` on (0 before: a maximum of only a few misfits says little). A ratio above
   1 is a shape that fits the memory worse than any shape since ``start`` did (the shape
   analogue of a new extreme value).
6. **Learning** (after scoring: causal), the fuzzy-ART rule with fast learning: among the
   categories with ``M_j >= vigilance``, the one with the largest choice value
   ``T_j = |I ^ w_j| / (choice_alpha + |w_j|)`` resonates and shrinks to ``w_j <- I ^ w_j``
   (its box grows just enough to hold the shape); when none passes the vigilance test the shape
   becomes a new category ``w = I``, a box of width 0 (in a free slot, otherwise in place of
   the category that resonated least recently). So a shape that once was novel (an anomaly) is
   known afterwards: one event, one record. A box never grows beyond a total width of
   ``W (1 - vigilance)``.

The first ``window * step - 1`` readings only fill the shape buffer (no category is made).
Non-finite values must be filtered out by the caller. ``misfit`` holds each sensor's latest
``m_t`` (for inspection).

State per sensor: ``categories * (2 * window + 2) + window * step + 5`` numbers (653 with the
defaults, about 5.2 kB).

Limitations: the range follows the readings, so after a new extreme the old categories sit in
a squeezed part of shape space and the misfit of ordinary shapes can grow until they are
relearnt; a slowly growing level keeps making new shapes; the worst misfit is never forgotten,
so after one very badly fitting shape the record rule is silent for a long time, and on
stationary noise it still fires, ever more rarely, on a record misfit (as the new-extreme rule
of the point view does on record values); memories count readings, not time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ShapeParams:
    """Hyper-parameters of :class:`ShapeNoveltyDetector` (see the module docstring)."""

    window: int = 4
    step: int = 2
    categories: int = 64
    vigilance: float = 0.9
    choice_alpha: float = 1e-3
    start: int = 250
    settle: int = 50

    def __post_init__(self) -> None:
        if self.window < 1 or self.step < 1 or self.categories < 1:
            raise ValueError(
                f"window, step and categories must be >= 1, found "
                f"{self.window}, {self.step}, {self.categories}"
            )
        if not 0.0 < self.vigilance <= 1.0:
            raise ValueError(f"vigilance must be in (0, 1], found {self.vigilance}")
        if self.choice_alpha <= 0 or self.start < 0 or self.settle < 1:
            raise ValueError(
                f"choice_alpha must be > 0, start >= 0 and settle >= 1, found "
                f"{self.choice_alpha}, {self.start} and {self.settle}"
            )


class ShapeNoveltyDetector:
    """Fuzzy-ART shape memory per sensor; :meth:`step` scores one reading per sensor.

    >>> det = ShapeNoveltyDetector(1, ShapeParams(window=2, step=1, start=0))
    >>> [float(det.step(np.array([0]), np.array([v]))[0]) for v in (0.0, 1.0, 0.0, 1.0)]
    [0.0, 0.0, 0.0, 0.0]
    """

    count: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    buf: np.ndarray
    w: np.ndarray
    used: np.ndarray
    last: np.ndarray
    worst: np.ndarray
    misfit: np.ndarray

    def __init__(self, n_sensors: int = 0, params: ShapeParams | None = None) -> None:
        self.params = params if params is not None else ShapeParams()
        self.n_sensors = 0
        self.alloc(max(int(n_sensors), 0))

    def alloc(self, n: int) -> None:
        """Grow (or set up) the state to ``n`` sensors, keeping the existing rows."""
        p = self.params
        shapes: dict[str, tuple[tuple[int, ...], type, float]] = {
            "count": ((), np.int64, 0),
            "lo": ((), np.float64, np.inf),
            "hi": ((), np.float64, -np.inf),
            "buf": ((p.window * p.step,), np.float64, 0.0),
            "w": ((p.categories, 2 * p.window), np.float64, 1.0),
            "used": ((p.categories,), np.bool_, False),
            "last": ((p.categories,), np.int64, -1),
            "worst": ((), np.float64, -np.inf),
            "misfit": ((), np.float64, 0.0),
        }
        old = self.n_sensors
        for name, (shape, dtype, fill) in shapes.items():
            arr: np.ndarray = np.full((n, *shape), fill, dtype=dtype)
            if old:
                arr[:old] = getattr(self, name)[:old]
            setattr(self, name, arr)
        self.n_sensors = n

    #: sensors handled per vector step: bounds the ``[rows, categories, 2 window]`` temporaries
    max_rows: int = 4096

    def step(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Learn one finite reading per sensor (``s`` without repeats) and return its record
        ratio ``q`` (module docstring, step 5)."""
        s = np.asarray(s, dtype=np.int64)
        x = np.asarray(x, dtype=np.float64)
        if len(s) <= self.max_rows:
            return self._step(s, x)
        return np.concatenate(
            [
                self._step(s[i : i + self.max_rows], x[i : i + self.max_rows])
                for i in range(0, len(s), self.max_rows)
            ]
        )

    def _step(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        p = self.params
        W, d = p.window, p.step
        n = self.count[s]
        lo = np.minimum(self.lo[s], x)
        hi = np.maximum(self.hi[s], x)
        self.lo[s], self.hi[s] = lo, hi
        buf = np.empty((len(s), W * d))
        buf[:, 0] = x
        buf[:, 1:] = self.buf[s, :-1]
        self.buf[s] = buf
        pts = buf.reshape(len(s), W, d).mean(axis=2) if d > 1 else buf
        rng = hi - lo
        a = np.clip((pts - lo[:, None]) / np.where(rng > 0, rng, 1.0)[:, None], 0.0, 1.0)
        inp = np.concatenate([a, 1.0 - a], axis=1)  # [m, 2W], sum W
        w = self.w[s]  # [m, K, 2W]
        used = self.used[s]
        overlap = np.minimum(inp[:, None, :], w).sum(axis=2)  # |I ^ w_j|
        match = np.where(used, overlap / W, -1.0)
        any_used = used.any(axis=1)
        misfit = np.where(any_used, 1.0 - match.max(axis=1), 0.0)
        self.misfit[s] = misfit

        worst = self.worst[s]
        scored = (n >= p.start + p.settle) & (worst > 0)
        q = np.where(scored, misfit / np.where(worst > 0, worst, 1.0), 0.0)
        self.worst[s] = np.where(n >= p.start, np.maximum(worst, misfit), worst)

        # fuzzy-ART learning: resonance with the best vigilant category, or a new category
        ready = n >= W * d - 1
        vigilant = match >= p.vigilance
        choice = np.where(vigilant, overlap / (p.choice_alpha + w.sum(axis=2)), -np.inf)
        j = choice.argmax(axis=1)
        res = np.flatnonzero(vigilant.any(axis=1) & ready)
        if len(res):
            sr, jr = s[res], j[res]
            self.w[sr, jr] = np.minimum(inp[res], self.w[sr, jr])
            self.last[sr, jr] = n[res]
        new = np.flatnonzero(~vigilant.any(axis=1) & ready)
        if len(new):
            sn = s[new]
            slot = self.last[sn].argmin(axis=1)  # a free slot (-1) first, else the stalest
            self.w[sn, slot] = inp[new]
            self.used[sn, slot] = True
            self.last[sn, slot] = n[new]
        self.count[s] = n + 1
        return q
