"""The leak detector, live: columnar readings in, graded leak warnings out.

``LeakWatch`` wraps a fitted :class:`~rescity.monitor.models.leak.LeakDetector` (residual
regression + EPANET leak signatures, calibrated offline, e.g. on a year of SCADA with
its known leaks) and runs the same rule incrementally on
:class:`~rescity.monitor.batch.ReadingBatch` es, with the time passed in (``now_ms``),
never read from the clock:

1. Readings are binned to the detector's step (``step_s``, 300 s): the row of step k
   holds, per watched sensor, the reading with timestamp in [k step, (k + 1) step)
   (``binning="last"``: the last one to arrive wins, as a SCADA logger that samples at
   the step; ``"mean"``: the mean of the step's readings, as a logger that averages
   over its interval, which divides white sensor noise by sqrt(readings per step): with
   1-min readings and 5-min rows the demo's residual noise halves). The detector must
   have been calibrated on rows binned the same way. Values are SI as in the readings
   store: pressure head in m, flow in m3/s (converted to the detector's m3/h, x 3600),
   tank level in m.
2. A row is closed when ``now_ms`` >= (k + 1) step + ``grace_s`` (late readings of a
   closed row are dropped and counted in ``stats["late"]``); an incomplete row counts as
   missing, as a NaN row does in ``LeakDetector.run``. A closed complete row gives one
   residual per pressure sensor (m); the last ``window_h`` hours of them are kept in a
   ring buffer (``window_h x 3600 / step_s`` rows x n_pressure floats).
3. At each row that completes a ``check_h`` period of the UTC clock (the 5-min row
   stamped hh:55 for hourly checks), with at least ``min_window_h`` hours of complete
   rows in the window, the window's mean residual goes through
   :class:`~rescity.monitor.models.leak.LeakTracker`, the same code as the batch
   ``LeakDetector.run``: fed the same rows, it raises the same detections at the same
   times.

Warnings are :class:`~rescity.monitor.engine.Transition` s, the alarm book's input
(``AlarmBook.ingest``), for model ``leak_model`` and asset = the suspected pipe: one
alarm per leak found. Levels are national (1 red .. 4 blue), graded on the leak's fitted
size q (m3/h) at each check (an assumption, like the utilities' practice of ranking
leaks by lost volume: BattLeDIM's leaks are 5-35 m3/h)::

    blue 4: q < 5,   yellow 3: 5 <= q < 10,   orange 2: 10 <= q < 20,   red 1: q >= 20

A new detection is ``firing`` at its level; a known leak whose re-fitted size crosses a
level boundary gives a ``level`` transition (an incipient leak escalates as it grows);
one whose size falls below max(``resolve_m3h``, ``resolve_share`` x its largest fitted
size) on ``resolve_checks`` consecutive checks (repaired) is ``resolved``. ``details``: candidate ``area`` (pipes, best first),
``q_m3h``, the detection statistic ``score`` (T, in noise units), the ``misfit`` and
``carried`` (a leak known to run at the start, ``LeakDetector.running``: reported at the
first check, blue, and neither graded nor resolved until its fitted size is seen).
A found leak the detector forgets (``LeakDetector.forget_checks``) reads as size 0 from
then on, so it resolves if it has not already.

**Burst view** (``burst_m3h`` > 0; off by default): a main break is an abrupt leak, so
at every closed row the change of the mean residual over the last ``burst_rows`` rows
against the ``burst_base_rows`` rows before them, ``d`` (m per sensor), is localised by
the same signatures (``localise``: one non-negative leak, fitted size q_fit, misfit J).
When the network inflow (the sum of the ``inflow`` flow sensors) stepped up between the
same rows by q >= ``burst_m3h`` (m3/h: the flow meters' step, the break's size) and the
pressures show it at one place (J <= ``burst_misfit`` and q_fit >= ``burst_inflow_share``
x q: a demand surge that the regression on the inflow explains leaves no residual step),
that pipe is a suspected main break: a transition of model ``burst_model``
(``main_break``), graded on q (an assumption, like the leak levels)::

    yellow 3: q < 180 (50 L/s),   orange 2: 180 <= q < 360,   red 1: q >= 360 (100 L/s)

Its transitions carry row k's time, like the leak checks' (they are raised when the row
closes, ``grace_s`` after it ends). One within ``burst_suppress_m`` (along pipes) of an
open one is the same break (its size and level follow the largest step seen while the
step is in the window); the opposite step at the same place (the inflow down by at least half the break's size,
``-d`` localised within ``burst_suppress_m``: the main closed or repaired) resolves it.
Pipes that touch a tank or a reservoir are not candidates (storage dynamics, pump
switching). Rows in ``gated_steps`` (set by the caller when the inflow is outside the
calibrated range, ``rescity.service.leaks.LeakSource``) count as missing for the leak
checks but are read by the burst view. q_fit is a linear-signature estimate (signatures
at 5 m3/h; a large break drops pressures more than linearly), so the size is the
inflow step and the signature gives the place.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .batch import ReadingBatch
from .engine import Transition, TransitionKind
from .models.leak import LeakDetection, LeakDetector, LeakSignatures, LeakTracker, localise

__all__ = ["BURST_BOUNDS_M3H", "LEVEL_BOUNDS_M3H", "LeakWatch", "burst_level", "leak_level"]

MODEL = "leak_model"
# (lower bound of q in m3/h, level): red 1 .. blue 4, first match wins
LEVEL_BOUNDS_M3H: tuple[tuple[float, int], ...] = ((20.0, 1), (10.0, 2), (5.0, 3), (0.0, 4))


# main breaks found by the burst view: (lower bound of q in m3/h, level)
BURST_BOUNDS_M3H: tuple[tuple[float, int], ...] = ((360.0, 1), (180.0, 2), (0.0, 3))


def burst_level(q_m3h: float) -> int:
    """National level of a suspected main break of ``q_m3h`` (see module docstring)."""
    return next(level for lo, level in BURST_BOUNDS_M3H if q_m3h >= lo)


def leak_level(q_m3h: float) -> int:
    """National level (1 red .. 4 blue) of a leak of ``q_m3h`` (see module docstring)."""
    for lo, level in LEVEL_BOUNDS_M3H:
        if q_m3h >= lo:
            return level
    return 4


def _without_storage(det: LeakDetector) -> LeakSignatures:
    """The detector's pipe signatures without the pipes that touch a tank or a reservoir:
    the burst view's candidates. Next to storage, a step in the residuals is as likely the
    tank's own dynamics (a pump switching, the tank filling) as a break, and a regressor
    (tank level, pump flow) already carries it."""
    sig = det.signatures
    assert sig is not None
    wn = det.wn
    storage = set(wn.tank_name_list) | set(wn.reservoir_name_list)
    keep = [i for i, p in enumerate(sig.pipes)
            if not ({wn.get_link(p).start_node_name, wn.get_link(p).end_node_name} & storage)]
    return LeakSignatures(sig.nodes, sig.node_g, tuple(sig.pipes[i] for i in keep),
                          sig.pipe_g[keep], sig.pipe_ends[keep])


@dataclass
class _Leak:
    pipe: str
    index: int  # into the signatures' pipes
    level: int
    peak_m3h: float = 0.0
    low_checks: int = 0
    open: bool = True
    carried: bool = False  # known to run at the start (``LeakDetector.running``)


@dataclass
class LeakWatch:
    """Incremental leak detection over reading batches (module docstring).

    ``detector``: a fitted ``LeakDetector``. ``sensor_index``: the registry index of every
    sensor the detector needs, keyed by its name in the detector's ``SensorPlacement``
    (pressure nodes, flow links, level nodes); readings of other sensors are ignored.
    ``flow_scale``: factor from the readings' flow unit to m3/h (3600 for SI m3/s).
    ``binning``: ``"last"`` or ``"mean"`` (step 1 of the module docstring).
    ``asset_of``: alarm asset for a pipe id (default: the pipe id); ``place_of``: its
    (lon, lat) for the alarm's place (default: none, NaN). ``grace_s``: how long
    after a step ends its row stays open for late readings (s).
    """

    detector: LeakDetector
    sensor_index: Mapping[str, int]
    flow_scale: float = 3600.0
    grace_s: float = 600.0
    resolve_m3h: float = 1.0
    resolve_share: float = 0.25
    resolve_checks: int = 6
    network: str = "water"
    asset_of: Callable[[str], str] = str
    binning: str = "last"
    burst_m3h: float = 0.0  # the burst view (module docstring); 0: off
    burst_rows: int = 2
    burst_base_rows: int = 6
    burst_misfit: float = 0.5
    burst_inflow_share: float = 0.5
    burst_suppress_m: float = 600.0
    burst_model: str = "main_break"
    gated_steps: set[int] = field(default_factory=set)  # rows kept out of the leak checks
    place_of: Callable[[str], tuple[float, float]] | None = None  # pipe -> (lon, lat)
    stats: dict[str, int] = field(default_factory=lambda: {"late": 0, "ignored": 0, "rows": 0,
                                                            "incomplete": 0, "checks": 0,
                                                            "gated": 0})

    def __post_init__(self) -> None:
        det = self.detector
        pl = det.placement
        self._cols = list(pl.pressure) + list(pl.flow) + list(pl.level)
        if self.binning not in ("last", "mean"):
            raise ValueError(f"LeakWatch: binning must be 'last' or 'mean', got {self.binning!r}")
        missing = [c for c in self._cols if c not in self.sensor_index]
        if missing:
            raise ValueError(f"LeakWatch: no sensor index for {missing}")
        self._tracker = LeakTracker(det)
        n_idx = max(int(i) for i in self.sensor_index.values()) + 1
        self._col_of = np.full(n_idx, -1, dtype=np.int64)
        for j, c in enumerate(self._cols):
            self._col_of[int(self.sensor_index[c])] = j
        self._scale = np.ones(len(self._cols))
        for j, c in enumerate(self._cols):
            if c in pl.flow:
                self._scale[j] = self.flow_scale
        self._step_ms = det.step_s * 1000
        per_h = 3600 // det.step_s
        self._win = int(det.window_h * per_h)
        self._every = max(int(det.check_h * per_h), 1)
        self._min_rows = det.min_window_h * per_h
        n_p = len(pl.pressure)
        self._ring = np.zeros((self._win, n_p))
        self._ring_ok = np.zeros(self._win, dtype=bool)
        self._open: dict[int, np.ndarray] = {}  # step -> row being filled (sums for "mean")
        self._count: dict[int, np.ndarray] = {}  # step -> readings per column ("mean")
        self._next: int | None = None  # the oldest step not closed yet
        self._leaks: dict[int, _Leak] = {}  # by signature pipe index
        self.detections: list[LeakDetection] = []
        # the burst view: residuals of the last rows (None: incomplete), open bursts
        self._recent: deque[np.ndarray | None] = deque(maxlen=self.burst_rows + self.burst_base_rows)
        self._bursts: dict[int, _Leak] = {}
        self._inflow_cols = [j for j, c in enumerate(self._cols) if c in pl.inflow]
        self._burst_sig: LeakSignatures | None = None
        if self.burst_m3h > 0:
            self._burst_sig = _without_storage(det)

    # -- input ---------------------------------------------------------------------------
    def ingest(self, batch: ReadingBatch, now_ms: int) -> list[Transition]:
        """Take a batch of readings, close the rows that ``now_ms`` completes, run the
        checks they reach; returns the warning transitions in time order."""
        if len(batch):
            s = batch.sensor.astype(np.int64)
            inside = (s >= 0) & (s < len(self._col_of))
            col = np.full(len(s), -1, dtype=np.int64)
            col[inside] = self._col_of[s[inside]]
            keep = col >= 0
            self.stats["ignored"] += int((~keep).sum())
            steps = batch.ts[keep] // self._step_ms
            cols, vals = col[keep], batch.value[keep]
            if self._next is None and len(steps):
                self._next = int(steps.min())
            mean = self.binning == "mean"
            for k, c, v in zip(steps.tolist(), cols.tolist(), vals.tolist(), strict=True):
                if self._next is not None and k < self._next:
                    self.stats["late"] += 1
                    continue
                row = self._open.get(k)
                if row is None:
                    row = self._open[k] = np.full(len(self._cols), np.nan)
                    if mean:
                        self._count[k] = np.zeros(len(self._cols), dtype=np.int64)
                if mean:
                    n = self._count[k]
                    row[c] = v * self._scale[c] if n[c] == 0 else row[c] + v * self._scale[c]
                    n[c] += 1
                else:
                    row[c] = v * self._scale[c]
        return self.advance(now_ms)

    def advance(self, now_ms: int) -> list[Transition]:
        """Close every row whose step ended ``grace_s`` before ``now_ms``; run the checks."""
        out: list[Transition] = []
        if self._next is None:
            return out
        last = (int(now_ms) - int(self.grace_s * 1000)) // self._step_ms - 1  # newest closable
        while self._next <= last:
            if not self._open and last - self._next >= self._win:
                # a whole window without data: the ring empties, no check can pass
                self._ring_ok[:] = False
                self._recent.clear()
                self.stats["rows"] += last + 1 - self._next
                self.stats["incomplete"] += last + 1 - self._next
                self._next = last + 1
                break
            k = self._next
            row = self._open.pop(k, None)
            n = self._count.pop(k, None)
            if row is not None and n is not None:
                row = row / np.maximum(n, 1)
            e = self._close(k, row)
            self._next = k + 1
            if self.burst_m3h > 0:
                self._recent.append(None if e is None or row is None else
                                    np.append(e, row[self._inflow_cols].sum()))
                out += self._burst(k)
            if (k + 1) % self._every == 0:
                out += self._check(k)
        return out

    # -- internals -----------------------------------------------------------------------
    def _close(self, k: int, row: np.ndarray | None) -> np.ndarray | None:
        """Put row k's residuals in the ring (gated rows as missing); its residuals."""
        slot = k % self._win
        self.stats["rows"] += 1
        if row is None or not np.isfinite(row).all():
            self.stats["incomplete"] += 1
            self._ring_ok[slot] = False
            return None
        df = pd.DataFrame(row[None, :], columns=self._cols)
        assert self.detector.residual_model is not None
        e = self.detector.residual_model.residuals(df)[0]
        ok = bool(np.isfinite(e).all())
        if ok and k in self.gated_steps:
            self.stats["gated"] += 1
            self._ring_ok[slot] = False
            return e
        self._ring[slot] = e if ok else 0.0
        self._ring_ok[slot] = ok
        return e if ok else None

    def _burst(self, k: int) -> list[Transition]:
        """The burst view at row k (module docstring)."""
        rows = list(self._recent)
        if len(rows) < self._recent.maxlen or any(e is None for e in rows):  # type: ignore[operator]
            return []
        e = np.asarray(rows)
        d_all = e[-self.burst_rows:].mean(axis=0) - e[:-self.burst_rows].mean(axis=0)
        d, d_in = d_all[:-1], float(d_all[-1])  # residual step (m), inflow step (m3/h)
        tr = self._tracker
        ts_ms = k * self._step_ms  # the row's time, as the leak checks' (known grace_s after it ends)
        out: list[Transition] = []
        # a repair or closure: the opposite step at an open break
        sig = self._burst_sig
        assert sig is not None
        back = localise(-d, sig, tr.w)
        for idx, b in list(self._bursts.items()):
            if (-d_in >= 0.5 * b.peak_m3h and back.misfit <= self.burst_misfit
                    and back.q_m3h >= self.burst_inflow_share * -d_in
                    and self._near(back.pipe, b.pipe)):
                del self._bursts[idx]
                out.append(self._tr(b, ts_ms, TransitionKind.RESOLVED, 0, -d_in,
                                    {"view": "burst"}, model=self.burst_model))
        if d_in < self.burst_m3h:
            return out
        loc = localise(d, sig, tr.w)
        if loc.misfit > self.burst_misfit or loc.q_m3h < self.burst_inflow_share * d_in:
            return out
        same = [b for b in self._bursts.values() if self._near(loc.pipe, b.pipe)]
        if same:  # the same break, still in the step's window: its size as the step grows
            b = same[0]
            if d_in > b.peak_m3h:
                b.peak_m3h = d_in
                level = burst_level(d_in)
                if level != b.level:
                    out.append(self._tr(b, ts_ms, TransitionKind.LEVEL, level, d_in,
                                        {"view": "burst"}, model=self.burst_model))
                    b.level = level
            return out
        b = _Leak(loc.pipe, sig.pipes.index(loc.pipe), burst_level(d_in), d_in)
        self._bursts[b.index] = b
        out.append(self._tr(b, ts_ms, TransitionKind.FIRING, b.level, d_in,
                            {"area": list(loc.area[:20]), "misfit": round(loc.misfit, 4),
                             "q_fit_m3h": round(loc.q_m3h, 1), "view": "burst"},
                            before=0, model=self.burst_model))
        return out

    def _near(self, a: str, b: str) -> bool:
        """Pipes ``a`` and ``b`` within ``burst_suppress_m`` along pipes."""
        import networkx as nx

        from .models.leak import pipe_graph

        if self.detector._graph is None:
            self.detector._graph = pipe_graph(self.detector.wn)
        wn = self.detector.wn
        la, lb = wn.get_link(a), wn.get_link(b)
        near = nx.multi_source_dijkstra_path_length(
            self.detector._graph, {la.start_node_name, la.end_node_name},
            cutoff=self.burst_suppress_m, weight="length")
        return a == b or lb.start_node_name in near or lb.end_node_name in near

    def _check(self, k: int) -> list[Transition]:
        n = int(self._ring_ok.sum())
        if n < self._min_rows:
            return []
        self.stats["checks"] += 1
        m = self._ring[self._ring_ok].sum(axis=0) / n
        ts_ms = k * self._step_ms
        time_ = pd.Timestamp(ts_ms, unit="ms")
        tr = self._tracker
        new = tr.check(m, time_)
        out: list[Transition] = []
        sizes = dict(zip(tr.known, tr.q_known.tolist(), strict=False))
        fresh = {tr.pos[d.pipe] for d in new}
        # known leaks: level changes and repairs
        for idx, lk in self._leaks.items():
            if not lk.open or idx in fresh:
                continue
            q = float(sizes.get(idx, 0.0))
            lk.peak_m3h = max(lk.peak_m3h, q)
            if lk.carried and lk.peak_m3h < self.resolve_m3h:
                continue  # in the baseline, size not measured: no grading, no repair seen
            if q < max(self.resolve_m3h, self.resolve_share * lk.peak_m3h):
                lk.low_checks += 1
                if lk.low_checks >= self.resolve_checks:
                    lk.open = False
                    out.append(self._tr(lk, ts_ms, TransitionKind.RESOLVED, 0, q, {}))
                continue
            lk.low_checks = 0
            level = leak_level(q)
            if level != lk.level:
                out.append(self._tr(lk, ts_ms, TransitionKind.LEVEL, level, q, {}))
                lk.level = level
        for d in new:
            idx = tr.pos[d.pipe]
            lk = _Leak(d.pipe, idx, leak_level(d.q_m3h), d.q_m3h, carried=d.carried)
            self._leaks[idx] = lk
            self.detections.append(d)
            out.append(self._tr(lk, ts_ms, TransitionKind.FIRING, lk.level, d.q_m3h,
                                {"area": list(d.area[:20]), "score": round(d.score, 3),
                                 "misfit": round(d.misfit, 4), "carried": d.carried},
                                before=0))
        return out

    def _tr(self, lk: _Leak, ts_ms: int, kind: TransitionKind, level: int, q: float,
            extra: dict[str, object], before: int | None = None, model: str = MODEL) -> Transition:
        lon, lat = self.place_of(lk.pipe) if self.place_of is not None else (math.nan, math.nan)
        return Transition(
            model=model, asset=self.asset_of(lk.pipe), sensor=lk.pipe, ts_ms=int(ts_ms),
            kind=kind, level_before=lk.level if before is None else before, level_after=level,
            value=float(q), network=self.network, lon=float(lon), lat=float(lat),
            details={"pipe": lk.pipe, "q_m3h": round(float(q), 3), **extra})

    # -- state ---------------------------------------------------------------------------
    def restore_leaks(self, open_leaks: Mapping[str, int]) -> int:
        """After a restart: take the open leak alarms of the (restored) alarm book as
        known, ``open_leaks`` pipe -> current level. Each joins the tracker's known
        leaks (re-fitted at every check, so it is graded, resolved and suppresses new
        alarms near it, but is not reported again) unless the watch already knows it
        (e.g. from re-priming). Call before feeding new readings; returns how many were
        added. Pipes the detector's signatures do not have are ignored."""
        tr = self._tracker
        added = 0
        for pipe, level in open_leaks.items():
            idx = tr.pos.get(pipe)
            if idx is None or (idx in self._leaks and self._leaks[idx].open):
                continue
            if idx not in tr.known and idx not in tr.held:
                tr.known.append(idx)
                tr.q_known = np.append(tr.q_known, 0.0)
            self._leaks[idx] = _Leak(pipe, idx, int(level))
            added += 1
        return added

    def restore_bursts(self, open_bursts: Mapping[str, tuple[int, float]]) -> int:
        """After a restart: the burst view's open main breaks from the alarm book,
        ``open_bursts`` pipe -> (level, size m3/h), so a break still in the step's window
        is not reported again. Pipes that are not burst candidates are ignored (e.g. the
        low-pressure cluster's main breaks, whose assets are nodes). Returns how many."""
        sig = self._burst_sig
        if sig is None:
            return 0
        pos = {p: i for i, p in enumerate(sig.pipes)}
        n = 0
        for pipe, (level, q) in open_bursts.items():
            if pipe in pos and pos[pipe] not in self._bursts:
                self._bursts[pos[pipe]] = _Leak(pipe, pos[pipe], int(level), float(q))
                n += 1
        return n

    @property
    def open_bursts(self) -> dict[str, int]:
        """Suspected main breaks of the burst view still open: pipe -> level."""
        return {b.pipe: b.level for b in self._bursts.values()}

    @property
    def open_leaks(self) -> dict[str, int]:
        """Suspected leaks still open: pipe -> current level (1 red .. 4 blue)."""
        return {lk.pipe: lk.level for lk in self._leaks.values() if lk.open}
