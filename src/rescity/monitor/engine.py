"""The warning engine: many warning models evaluated over whole batches of readings.

State lives in NumPy arrays, one entry per *slot* = (model, sensor). A batch of any
shape (one reading per sensor, many readings of few sensors, any order) is evaluated in
a fixed number of vectorised steps, independent of how many readings a sensor has in
the batch:

1. late and NaN readings are dropped in batch order (a reading older than the last
   evaluated reading of its sensor is late);
2. per graded kind, the readings that can change a slot are found without sorting:
   for thresholds, readings outside the slot's quiet interval of raw values (every
   reading of a slot in alarm is "outside"); every reading of such a slot is kept;
3. only those readings are ordered by (slot, time) (a stable sort: equal times keep
   their batch order) and run through the hysteresis / pending / firing machine as a
   *segmented scan*: per slot segment, the severity after each reading is the state of
   four set/reset latches (one per level), and the pending start and firing flag are
   forward-filled events, so the result of the whole segment comes from a constant
   number of array operations.

Kinds whose derived value needs the previous reading (rate, step) derive it for the
whole (sensor, time)-sorted batch with shifted arrays; kinds with a sequential derived
value (stuck, drift, accumulation, anomaly) derive it in *rounds* (round ``k`` holds
the ``k``-th reading of every slot), then share the same scan. The result is exactly
what evaluating the readings one by one gives (the tests check this against a plain
per-reading loop, :class:`ReferenceEngine`, for arbitrary batch splits and orders).

Levels: inside, severities 0..4 (0 normal, 1 blue .. 4 red) because they order
naturally; every :class:`Transition` speaks the national convention: ``level_before``
and ``level_after`` are 0 (normal), 4 (blue), 3 (yellow), 2 (orange), **1 (red, the
highest)**.

The graded state machine of one slot (for every graded kind):

* hysteresis: with thresholds ``T1 <= T2 <= T3 <= T4`` (blue..red, in "bad is larger"
  space) and dead band ``h``, the severity after a value ``x`` is
  ``max(#{k: x >= Tk}, min(previous, #{k: x > Tk - h}))``; equivalently, level ``k`` is
  set by ``x >= Tk``, reset by ``x <= Tk - h`` and otherwise kept (the latch the scan
  uses). A kind may grade one value per level (``x_k``, the accumulation over level
  ``k``'s window) as long as the levels' conditions are nested;
* pending -> firing: when the severity leaves 0 the condition starts (``pending``); it
  fires at the first reading (or :meth:`WarningEngine.tick`) at least ``for_s`` after the
  start; a level change while pending or firing is a ``level`` transition; back to 0 is
  ``resolved`` (from pending or firing). With ``for_s = 0`` the first transition is
  ``firing``.

Time: explicit only. ``process`` uses the readings' timestamps; ``tick(now_ms)`` fires
pending conditions whose duration elapsed without a new reading and evaluates the
time-driven models (silence, sliding accumulation windows). Readings older than the last
evaluated reading of the same sensor are dropped (counted in ``stats["late"]``); NaN
readings are dropped (``stats["nan"]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from rescity.monitor.batch import ReadingBatch
from rescity.monitor.specs import (
    AccumulationSpec,
    ClusterSpec,
    CompositeSpec,
    Condition,
    DriftSpec,
    GradedSpec,
    ModelSpec,
    RateSpec,
    SpecError,
    StuckSpec,
    ThresholdSpec,
)

if TYPE_CHECKING:
    from rescity.model import City
    from rescity.monitor.registry import SensorRegistry

__all__ = [
    "EVALUATORS",
    "AccumulationEvaluator",
    "BatchView",
    "Evaluator",
    "GradedEvaluator",
    "ReferenceEngine",
    "Transition",
    "TransitionKind",
    "WarningEngine",
    "register_evaluator",
]

NO_TS = np.iinfo(np.int64).min
_KIND_CODES = ("pending", "firing", "level", "resolved", "update")
_LEVEL = (0, 4, 3, 2, 1)  # severity -> national level


class TransitionKind(StrEnum):
    """What happened to the condition of one (model, sensor)."""

    PENDING = "pending"  # condition started, waiting for its minimum duration
    FIRING = "firing"  # condition held long enough (or for_s = 0): the alarm fires
    LEVEL = "level"  # level changed while pending or firing (escalation or de-escalation)
    RESOLVED = "resolved"  # condition ended (from pending or firing)
    UPDATE = "update"  # same level, new details (a cluster's members changed)


_NO_DETAILS: Mapping[str, Any] = MappingProxyType({})


class Transition(NamedTuple):
    """One change of a warning condition. Levels are national: 0 normal, 1 red .. 4 blue.

    ``value`` is the graded value (in the model's graded unit, see ``rescity models show``);
    ``reading`` the SI reading that caused it (NaN for tick-driven transitions);
    ``details``: extra facts (a cluster's ``members``), read-only.
    """

    model: str
    asset: str
    sensor: str
    ts_ms: int
    kind: TransitionKind
    level_before: int
    level_after: int
    value: float
    reading: float = math.nan
    network: str = ""
    lon: float = math.nan
    lat: float = math.nan
    details: Mapping[str, Any] = _NO_DETAILS

    @property
    def key(self) -> tuple[str, str]:
        """The alarm identity (model, asset)."""
        return (self.model, self.asset)


_KIND_ENUM = tuple(TransitionKind(c) for c in _KIND_CODES)


@dataclass
class _Out:
    """Transitions gathered during one call, columnar (plus evaluator-built objects)."""

    model: list[np.ndarray] = field(default_factory=list)
    sensor: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    before: list[np.ndarray] = field(default_factory=list)
    after: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)
    reading: list[np.ndarray] = field(default_factory=list)
    objects: list[Transition] = field(default_factory=list)

    def add(self, model: np.ndarray, sensor: np.ndarray, ts: np.ndarray, kind: np.ndarray,
            before: np.ndarray, after: np.ndarray, value: np.ndarray, reading: np.ndarray) -> None:
        if len(model):
            self.model.append(model)
            self.sensor.append(sensor)
            self.ts.append(ts)
            self.kind.append(kind)
            self.before.append(before)
            self.after.append(after)
            self.value.append(value)
            self.reading.append(reading)

    def __len__(self) -> int:
        return sum(len(m) for m in self.model) + len(self.objects)


# -- the batch as the evaluators see it -----------------------------------------------------------------
def _firsts(key: np.ndarray) -> np.ndarray:
    """``first[i]``: position ``i`` starts a run of equal ``key`` values (grouped input)."""
    first = np.empty(len(key), dtype=bool)
    if len(key):
        first[0] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
    return first


def _seg_start(first: np.ndarray) -> np.ndarray:
    """Index of the first position of each position's segment."""
    idx = np.arange(len(first))
    return np.maximum.accumulate(np.where(first, idx, 0))


def _latch(event: np.ndarray, value: np.ndarray, init: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Segmented forward fill: at each position the ``value`` of the latest ``event`` at or
    before it in its segment, else ``init`` (the state before the segment)."""
    idx = np.arange(len(event))
    last = np.maximum.accumulate(np.where(event, idx, -1))
    return np.where(last >= seg, value[np.maximum(last, 0)], init)


def _rounds(first: np.ndarray) -> list[np.ndarray]:
    """Positions of each round of grouped input: round ``k`` holds the ``k``-th position of
    every segment (so no segment appears twice in a round)."""
    n = len(first)
    if n == 0:
        return []
    if bool(first.all()):
        return [np.arange(n)]
    rank = np.arange(n) - _seg_start(first)
    small = rank.astype(np.int16) if int(rank.max()) < 32767 else rank
    order = np.argsort(small, kind="stable")
    r = rank[order]
    return np.split(order, np.searchsorted(r, np.arange(1, int(r[-1]) + 1)))


class BatchView:
    """The valid readings of one batch (late and NaN readings dropped), in batch order:
    ``s`` (int32 sensor), ``t`` (int64 ms UTC), ``v`` (float64 SI); ``span`` = (a, b) when
    ``s`` is exactly a, a+1, .., b-1. :attr:`sorted` orders them by (sensor, time), equal
    times keeping their batch order; it is built on first use only."""

    def __init__(self, s: np.ndarray, t: np.ndarray, v: np.ndarray, n_sensors: int,
                 span: tuple[int, int] | None, increasing: bool) -> None:
        self.s, self.t, self.v = s, t, v
        self.n_sensors = n_sensors
        self.span = span
        self.increasing = increasing  # s strictly increasing: each sensor at most once
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._unique: bool | None = True if increasing else None

    def __len__(self) -> int:
        return len(self.s)

    @property
    def unique(self) -> bool:
        """Each sensor at most once in the batch."""
        if self._unique is None:
            self._unique = bool(np.bincount(self.s, minlength=self.n_sensors).max() <= 1) if len(self.s) else True
        return self._unique

    @property
    def sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(s, t, v, first) ordered by (sensor, time); ``first`` marks each sensor's first reading."""
        if self._sorted is None:
            s, t, v = self.s, self.t, self.v
            n = len(s)
            if self.increasing:
                self._sorted = (s, t, v, np.ones(n, dtype=bool))
                return self._sorted
            first = _firsts(s)
            if n and bool(np.all(s[1:] >= s[:-1])) and bool(np.all((t[1:] >= t[:-1]) | first[1:])):
                self._sorted = (s, t, v, first)
                return self._sorted
            if self.unique and n * 4 >= self.n_sensors:
                # a permutation-like batch: place each reading at its sensor (O(n_sensors))
                pos = np.full(self.n_sensors, -1, dtype=np.int64)
                pos[s] = np.arange(n)
                order = pos[pos >= 0]
            else:
                # one int64 sort of (sensor, time since the batch's first, position) packed
                # into one key: the stable (sensor, time) order; lexsort when they do not fit
                t0 = int(t.min())
                ib = max(1, (n - 1).bit_length())
                tb = max(1, (int(t.max()) - t0).bit_length())
                sb = max(1, (self.n_sensors - 1).bit_length())
                if sb + tb + ib <= 63:
                    key = (s.astype(np.int64) << (tb + ib)) | ((t - t0) << ib) | np.arange(n, dtype=np.int64)
                    key.sort()
                    order = key & ((1 << ib) - 1)
                else:
                    order = np.lexsort((t, s))
            ss = s[order]
            self._sorted = (ss, t[order], v[order], _firsts(ss))
        return self._sorted

    def slabs(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int] | None]]:
        """Rounds of the sorted readings: (s, t, v, span) with each sensor at most once."""
        if self.increasing:
            return [(self.s, self.t, self.v, self.span)]
        s, t, v, first = self.sorted
        return [(s[p], t[p], v[p], None) for p in _rounds(first)]


# -- evaluators ------------------------------------------------------------------------------------
class Evaluator:
    """Evaluates all models of one kind. Subclasses register with :func:`register_evaluator`.

    Hooks, all optional: :meth:`process_view` (the whole batch; by default it calls
    :meth:`process_slab` once per round, each sensor at most once per round, readings of
    a round may have different times), :meth:`process_batch` (all valid readings of the
    batch in batch order), :meth:`after` (the transitions the other evaluators produced
    in this call, for models over alarms), :meth:`tick`.
    """

    kind: ClassVar[str] = ""
    phase: ClassVar[int] = 0  # 0: readings; 1: over other models' transitions

    def __init__(self, engine: WarningEngine, models: list[tuple[int, ModelSpec]]) -> None:
        self.engine = engine
        self.models = models

    def process_view(self, view: BatchView, out: _Out) -> None:
        if type(self).process_slab is Evaluator.process_slab:
            return
        for s, t, v, span in view.slabs():
            if len(s):
                self.process_slab(s, t, v, out, span)

    def process_slab(self, s: np.ndarray, t: np.ndarray, v: np.ndarray, out: _Out,
                     span: tuple[int, int] | None = None) -> None:
        """``span``: when not None, ``s`` is exactly ``arange(*span)`` (a contiguous run)."""
        return None

    def process_batch(self, s: np.ndarray, t: np.ndarray, v: np.ndarray, out: _Out) -> None:
        return None

    def after(self, transitions: list[Transition], out: _Out) -> None:
        return None

    def tick(self, now_ms: int, out: _Out) -> None:
        return None

    @property
    def n_slots(self) -> int:
        return 0


EVALUATORS: dict[str, type[Evaluator]] = {}
"""kind -> evaluator class. Other modules add kinds with :func:`register_evaluator`."""


def register_evaluator(kind: str) -> Any:
    """Class decorator: the evaluator of ``kind`` (a kind registered in ``specs``)."""

    def deco(cls: type[Evaluator]) -> type[Evaluator]:
        cls.kind = kind
        EVALUATORS[kind] = cls
        return cls

    return deco


@dataclass
class _Layer:
    """Slots of one evaluator with at most one slot per sensor: sensor -> slot map."""

    slot_of: np.ndarray | None  # int32 [n_sensors], -1 = none; None when slot == sensor
    full: bool  # every sensor has a slot in this layer


class GradedEvaluator(Evaluator):
    """Base of every kind that grades a derived value per (model, sensor) slot with the
    vectorised hysteresis / pending / firing machine. Subclasses implement :meth:`derive`
    (sign-adjusted so that larger is worse; NaN = nothing to grade) and may override
    :meth:`slot_setup` for per-slot parameters and state."""

    #: derive() needs every reading (state such as the previous value); else only readings
    #: that could change the state are derived (quiet readings are skipped).
    stateful: ClassVar[bool] = True

    def __init__(self, engine: WarningEngine, models: list[tuple[int, ModelSpec]]) -> None:
        super().__init__(engine, models)
        reg = engine.registry
        rows_model: list[int] = []
        rows_sensor: list[int] = []
        rows_T: list[np.ndarray] = []
        rows_H: list[float] = []
        rows_for: list[float] = []
        rows_xs: list[float] = []
        rows_abs: list[bool] = []
        self._extra_rows: list[dict[str, float]] = []
        for mi, spec in models:
            assert isinstance(spec, GradedSpec)
            sel = engine.selected(spec)
            xs = -1.0 if spec.direction == "low" else 1.0
            ts_ = -1.0 if spec.direction == "low" and not spec.magnitudes else 1.0
            absf = spec.direction == "both"
            over = _override_table(spec, reg, engine.city)
            compiled: dict[int, tuple[np.ndarray, float, float]] = {}  # per override (id) / none
            for si in sel.tolist():
                extra = self.slot_extra(spec, int(si))
                if extra is None:
                    continue
                o = over.get(int(si))
                ck = id(o)
                if ck not in compiled:
                    th = spec.si_thresholds(o.thresholds if o else None)
                    compiled[ck] = (
                        th.filled(ts_),
                        spec.si_hysteresis(o.hysteresis if o and o.hysteresis is not None else None),
                        o.for_s if o and o.for_s is not None else spec.for_s,
                    )
                Tf, h, fs = compiled[ck]
                rows_model.append(mi)
                rows_sensor.append(int(si))
                rows_T.append(Tf)
                rows_H.append(h)
                rows_for.append(fs)
                rows_xs.append(xs)
                rows_abs.append(absf)
                self._extra_rows.append(extra)
        n = len(rows_model)
        sensor = np.array(rows_sensor, dtype=np.int64)
        # slot order: layer (rank of the slot among its sensor's slots), then sensor
        rank = np.zeros(n, dtype=np.int64)
        if n:
            o = np.lexsort((np.arange(n), sensor))
            ss = sensor[o]
            first = np.r_[0, np.flatnonzero(ss[1:] != ss[:-1]) + 1]
            grp = np.repeat(first, np.diff(np.r_[first, n]))
            rank[o] = np.arange(n) - grp
        order = np.lexsort((sensor, rank)) if n else np.array([], dtype=np.int64)
        self.slot_model = np.array(rows_model, dtype=np.int32)[order] if n else np.zeros(0, np.int32)
        self.slot_sensor = sensor[order].astype(np.int32)
        T = np.array(rows_T, dtype=np.float64).reshape(n, 4)[order]
        H = np.array(rows_H, dtype=np.float64)[order]
        self.T = T  # [slot, 4] entry thresholds (sign space)
        self.TH = T - H[:, None]  # [slot, 4] exit thresholds
        self.T0 = np.ascontiguousarray(T[:, 0]) if n else np.zeros(0)
        self.for_ms = (np.array(rows_for, dtype=np.float64)[order] * 1000.0).round().astype(np.int64)
        self.xsign = np.array(rows_xs, dtype=np.float64)[order]
        self.absf = np.array(rows_abs, dtype=bool)[order]
        self.any_abs = bool(self.absf.any())
        self.extra = [self._extra_rows[i] for i in order.tolist()]
        del self._extra_rows
        # state
        self.cur = np.zeros(n, dtype=np.int8)
        self.firing = np.zeros(n, dtype=bool)
        self.since = np.zeros(n, dtype=np.int64)
        self.Q = self.T0.copy()  # quiet bound: x < Q and normal -> nothing to do
        # layers
        self.layers: list[_Layer] = []
        ranks = rank[order]
        N = len(reg)
        for r in range(int(ranks.max()) + 1 if n else 0):
            sl = np.flatnonzero(ranks == r)
            sens = self.slot_sensor[sl]
            if r == 0 and len(sl) == N and np.array_equal(sens, np.arange(N)):
                self.layers.append(_Layer(None, True))
                continue
            so = np.full(N, -1, dtype=np.int32)
            so[sens] = sl.astype(np.int32)
            self.layers.append(_Layer(so, len(sl) == N))
        self.setup_state()

    @property
    def n_slots(self) -> int:
        return len(self.slot_model)

    # -- hooks -----------------------------------------------------------------------------------
    def slot_extra(self, spec: GradedSpec, sensor: int) -> dict[str, float] | None:
        """Per-slot parameters of this kind (None leaves the sensor out)."""
        return {}

    def setup_state(self) -> None:
        """Allocate kind-specific state (after the slots are numbered)."""

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Sign-adjusted graded value x' of readings (v at t) on slots ``sl`` (unique)."""
        raise NotImplementedError

    def _signed(self, sl: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = y * self.xsign[sl]
        if self.any_abs:
            a = self.absf[sl]
            x[a] = np.abs(y[a])
        return x

    def value_of(self, sl: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The graded value in the model's own sign from x' (for transitions)."""
        return np.where(self.absf[sl], x, x * self.xsign[sl])

    def derive_sorted(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Graded values of readings grouped by slot, each slot's in time order (``first``
        marks a slot's first reading); leaves the kind's state at each slot's last reading.
        Default: :meth:`derive` in rounds (the ``k``-th reading of every slot at once)."""
        rounds = _rounds(first)
        if len(rounds) == 1:
            return self.derive(sl, t, v)
        x: np.ndarray | None = None
        for pos in rounds:
            y = self.derive(sl[pos], t[pos], v[pos])
            if x is None:
                x = np.empty((len(sl), *y.shape[1:]), dtype=np.float64)
            x[pos] = y
        assert x is not None
        return x

    def hot(self, sl: Any, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Stateless kinds: positions of the readings that could change their slot (a
        superset is fine). ``sl`` is an index array or a slice."""
        x = self.derive(np.asarray(sl) if not isinstance(sl, slice) else np.arange(sl.start, sl.stop), t, v)
        return np.flatnonzero(_lead(x) >= self.Q[sl])

    def after_grade(self, slots: np.ndarray) -> None:
        """Called with the (unique) slots whose state :meth:`grade_sorted` just set."""

    # -- evaluation --------------------------------------------------------------------------------
    def process_view(self, view: BatchView, out: _Out) -> None:
        for layer in self.layers:
            if self.stateful:
                self._process_stateful(layer, view, out)
            else:
                self._process_stateless(layer, view, out)

    def _process_stateless(self, layer: _Layer, view: BatchView, out: _Out) -> None:
        """Find the hot readings in batch order, keep every reading of their slots (and of
        slots in alarm: those are always hot), order only those by (slot, time), grade."""
        s, t, v, span = view.s, view.t, view.v, view.span
        sl: Any
        if layer.slot_of is None:
            sl = slice(*span) if span is not None else s
        else:
            sl = layer.slot_of[span[0]:span[1]] if span is not None else layer.slot_of[s]
            if not layer.full:
                keep = sl >= 0
                if not keep.all():
                    sl, t, v = sl[keep], t[keep], v[keep]
        if not len(t):
            return
        hot = self.hot(sl, t, v)
        if not len(hot):
            return
        if isinstance(sl, slice):  # sensor order, slot == sensor: each slot once, in order
            pos = hot
            ps = (hot + sl.start).astype(np.int32)
        else:
            if view.increasing:
                pos = hot  # each slot at most once: the hot readings are all their slots' readings
            else:
                flag = np.zeros(self.n_slots, dtype=bool)
                flag[sl[hot]] = True
                pos = np.flatnonzero(flag[sl])
            ps = sl[pos]
        pt, pv = t[pos], v[pos]
        if len(pos) > 1 and not bool(np.all(ps[1:] > ps[:-1])):
            o = np.lexsort((pt, ps))  # stable: equal times keep their batch order
            ps, pt, pv = ps[o], pt[o], pv[o]
        self.grade_sorted(ps, pt, self.derive(ps, pt, pv), pv, _firsts(ps), out)

    def _process_stateful(self, layer: _Layer, view: BatchView, out: _Out) -> None:
        """Derive every reading of the layer's slots in (slot, time) order, then grade the
        slots with a reading that could change them."""
        s, t, v, first = view.sorted
        if layer.slot_of is None:
            sl = s
        else:
            sl = layer.slot_of[s]
            if not layer.full:
                keep = sl >= 0
                if not keep.all():
                    sl, t, v = sl[keep], t[keep], v[keep]
                    first = _firsts(sl)
        if not len(sl):
            return
        x = self.derive_sorted(sl, t, v, first)
        lead = _lead(x)
        interest = lead >= self.Q[sl]  # NaN compares False
        if not interest.any():
            return
        if view.increasing:  # one reading per slot: the interesting readings are all there is
            hot = np.flatnonzero(interest)
            self.grade(sl[hot], t[hot], x[hot], v[hot], out)
            return
        flag = np.zeros(self.n_slots, dtype=bool)
        flag[sl[interest]] = True
        sel = flag[sl] & (lead == lead)
        if not sel.all():
            sl, t, x, v = sl[sel], t[sel], x[sel], v[sel]
            first = _firsts(sl)
        self.grade_sorted(sl, t, x, v, first, out)

    def grade(self, sl: np.ndarray, t: np.ndarray, x: np.ndarray, v: np.ndarray, out: _Out) -> None:
        """The machine on unique slots (one reading each)."""
        self.grade_sorted(sl, t, x, v, np.ones(len(sl), dtype=bool), out)

    def grade_sorted(self, sl: np.ndarray, t: np.ndarray, x: np.ndarray, v: np.ndarray,
                     first: np.ndarray, out: _Out) -> None:
        """The hysteresis / pending / firing machine over readings grouped by slot, each
        slot's in time order, as a segmented scan (see the module docstring). ``x``: the
        sign-adjusted graded value, one per reading, or ``[n, 4]`` one per level."""
        n = len(sl)
        if n == 0:
            return
        xc = x[:, None] if x.ndim == 1 else x
        e = (xc >= self.T[sl]).sum(axis=1, dtype=np.int8)  # levels entered
        m = (xc > self.TH[sl]).sum(axis=1, dtype=np.int8)  # levels not left
        c0 = self.cur[sl]
        f0 = self.firing[sl]
        s0 = self.since[sl]
        for_ms = self.for_ms[sl]
        if bool(first.all()):
            c = np.maximum(e, np.minimum(c0, m))
            cprev = c0
            on = c > 0
            start = (cprev == 0) & on
            since = np.where(start, t, s0)
            qual = on & (t - since >= for_ms)
            fb = f0
            fa = (f0 | qual) & on
            last = np.arange(n)
        else:
            seg = _seg_start(first)
            c = np.zeros(n, dtype=np.int8)
            for lvl in range(1, 5):
                up = e >= lvl
                c += _latch(up | (m < lvl), up, c0 >= lvl, seg)
            cprev = np.where(first, c0, np.roll(c, 1))
            on = c > 0
            start = (cprev == 0) & on
            idx = np.arange(n)
            ls = np.maximum.accumulate(np.where(start, idx, -1))
            since = np.where(ls >= seg, t[np.maximum(ls, 0)], s0)
            qual = on & (t - since >= for_ms)
            fa = _latch(~on | qual, qual, f0, seg)  # firing after each reading
            fb = np.where(first, f0, np.roll(fa, 1))  # firing before it
            last = np.flatnonzero(np.r_[first[1:], True])
        fire = qual & ~fb
        was = cprev > 0
        resolved = was & ~on
        pending = start & ~fire
        level = was & on & (c != cprev) & ~fire
        ss = sl[last]
        ol = on[last]
        self.cur[ss] = c[last]
        self.since[ss] = np.where(ol, since[last], 0)
        self.firing[ss] = fa[last]
        self.Q[ss] = np.where(ol, -np.inf, self.T0[ss])
        self.after_grade(ss)
        emit = np.flatnonzero(fire | resolved | pending | level)
        if len(emit):
            kind = np.select([pending[emit], fire[emit], level[emit], resolved[emit]], [0, 1, 2, 3], 4).astype(np.int8)
            se = sl[emit]
            out.add(self.slot_model[se], self.slot_sensor[se], t[emit].astype(np.int64), kind,
                    cprev[emit], c[emit], self.graded_value(se, x[emit], cprev[emit], c[emit]), v[emit])

    def graded_value(self, sl: np.ndarray, x: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        """The value a transition reports (the model's own sign), from x'."""
        return self.value_of(sl, x)

    def tick(self, now_ms: int, out: _Out) -> None:
        """Pending conditions whose duration elapsed fire at ``now_ms``."""
        due = np.flatnonzero((self.cur > 0) & ~self.firing & (now_ms - self.since >= self.for_ms))
        if len(due):
            self.firing[due] = True
            c = self.cur[due]
            n = len(due)
            out.add(self.slot_model[due], self.slot_sensor[due], np.full(n, now_ms, np.int64),
                    np.full(n, 1, np.int8), c, c, np.full(n, np.nan), np.full(n, np.nan))

    # -- the same machine, one reading at a time (ReferenceEngine) ------------------------------------
    def ref_init(self) -> list[dict[str, Any]]:
        return [{"cur": 0, "firing": False, "since": None} for _ in range(self.n_slots)]

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        raise NotImplementedError

    def ref_signed(self, slot: int, y: float) -> float:
        return abs(y) if self.absf[slot] else y * float(self.xsign[slot])


def _lead(x: np.ndarray) -> np.ndarray:
    """The blue-level value of a graded value (per-level values: the first column)."""
    return x if x.ndim == 1 else x[:, 0]


def _override_table(spec: GradedSpec, reg: SensorRegistry, city: City | None) -> dict[int, Any]:
    """sensor index -> first matching override."""
    out: dict[int, Any] = {}
    for o in spec.overrides:
        idx: set[int] = set()
        if o.sensors:
            ii = reg.lookup(o.sensors)
            idx |= {int(i) for i in ii if i >= 0}
        if o.asset_kind:
            if city is None:
                raise SpecError(f"model {spec.name!r}: overrides by asset_kind need the city model")
            kinds = set(o.asset_kind)
            for i, a in enumerate(reg.asset):
                e = city.asset(a)
                k = getattr(e, "kind", None)
                k = getattr(k, "value", k)
                if k in kinds:
                    idx.add(i)
        for i in idx:
            out.setdefault(i, o)
    return out


@register_evaluator("threshold")
class ThresholdEvaluator(GradedEvaluator):
    """Graded thresholds on ``a * reading + b`` (a = 1, b = 0 unless ``relative_to``).

    Fast path: while a slot is normal, the readings that cannot raise it form an interval of
    raw values, kept conservatively in ``qlo < v < qhi``; only readings outside it (and every
    reading of a slot in alarm) go through the machine."""

    stateful = False

    def slot_extra(self, spec: GradedSpec, sensor: int) -> dict[str, float] | None:
        assert isinstance(spec, ThresholdSpec)
        r = spec.relative_to
        if r is None:
            return {"a": 1.0, "b": 0.0}
        city = self.engine.city
        if city is None:
            raise SpecError(f"model {spec.name!r}: relative_to needs the city model")
        asset = self.engine.registry.asset[sensor]
        e = city.asset(asset)
        ref = e.attrs.get(r.attr) if e is not None else None
        if not isinstance(ref, int | float) or not math.isfinite(ref) or ref * r.scale == 0:
            self.engine.note(f"model {spec.name!r}: sensor {self.engine.registry.ids[sensor]} left out: "
                             f"its asset {asset} has no usable {r.attr!r}")
            return None
        base = float(ref) * r.scale
        if r.mode == "ratio":
            return {"a": 1.0 / base, "b": 0.0}
        return {"a": 100.0 / base, "b": -100.0}

    def setup_state(self) -> None:
        n = self.n_slots
        self.a = np.array([e["a"] for e in self.extra], dtype=np.float64)
        self.b = np.array([e["b"] for e in self.extra], dtype=np.float64)
        self.plain = bool(n == 0 or (np.all(self.a == 1.0) and np.all(self.b == 0.0)))
        # raw-value quiet interval of a normal slot (entry when x' >= T0), y = a v + b:
        # |y| >= t0 (both), y >= t0 (xsign +1) or -y >= t0 (xsign -1)
        t0 = self.T0
        fin = np.isfinite(t0)
        ylo = np.where(self.absf | (self.xsign < 0), -t0, -np.inf)
        yhi = np.where(self.absf | (self.xsign > 0), t0, np.inf)
        with np.errstate(invalid="ignore", divide="ignore"):
            vl = (ylo - self.b) / self.a
            vh = (yhi - self.b) / self.a
            neg = self.a < 0
            vl, vh = np.where(neg, vh, vl), np.where(neg, vl, vh)
            lo = np.where(fin & np.isfinite(vl), vl + 1e-9 * np.abs(vl) + 1e-12, -np.inf)
            hi = np.where(fin & np.isfinite(vh), vh - 1e-9 * np.abs(vh) - 1e-12, np.inf)
        self.qlo0, self.qhi0 = lo, hi
        # the quiet interval twice: contiguous columns for batches in sensor order (slices),
        # [slot, 2] side by side for the others (one gather per reading)
        self.qlo, self.qhi = lo.copy(), hi.copy()
        self.qb = np.ascontiguousarray(np.stack([lo, hi], axis=1)) if n else np.zeros((0, 2))

    def hot(self, sl: Any, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        if isinstance(sl, slice):
            return np.flatnonzero((v <= self.qlo[sl]) | (v >= self.qhi[sl]))
        q = np.take(self.qb, sl, axis=0)
        return np.flatnonzero((v <= q[:, 0]) | (v >= q[:, 1]))

    def after_grade(self, slots: np.ndarray) -> None:
        on = self.cur[slots] > 0
        lo = np.where(on, np.inf, self.qlo0[slots])
        hi = np.where(on, -np.inf, self.qhi0[slots])
        self.qlo[slots] = lo
        self.qhi[slots] = hi
        self.qb[slots, 0] = lo
        self.qb[slots, 1] = hi

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        y = v if self.plain else self.a[sl] * v + self.b[sl]
        return self._signed(sl, y)

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        return self.ref_signed(slot, float(self.a[slot]) * v + float(self.b[slot]))


class _PrevEvaluator(GradedEvaluator):
    """Kinds that need the previous reading of the slot (rate, step)."""

    def setup_state(self) -> None:
        self.pv = np.full(self.n_slots, np.nan)
        self.pt = np.full(self.n_slots, NO_TS, dtype=np.int64)

    def previous(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray,
                 first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(previous value, previous time) of each reading of grouped, time-ordered input;
        the stored state at each slot's first reading; the state moves to each slot's last."""
        if bool(first.all()):  # one reading per slot
            pv, pt = self.pv[sl], self.pt[sl]
            self.pv[sl] = v
            self.pt[sl] = t
            return pv, pt
        pv = np.where(first, self.pv[sl], np.roll(v, 1))
        pt = np.where(first, self.pt[sl], np.roll(t, 1))
        last = np.flatnonzero(np.r_[first[1:], True])
        self.pv[sl[last]] = v[last]
        self.pt[sl[last]] = t[last]
        return pv, pt

    def ref_init(self) -> list[dict[str, Any]]:
        return [{**d, "pv": math.nan, "pt": None} for d in super().ref_init()]


@register_evaluator("rate")
class RateEvaluator(_PrevEvaluator):
    """Rate of change between consecutive readings, in unit per ``per``."""

    def slot_extra(self, spec: GradedSpec, sensor: int) -> dict[str, float] | None:
        assert isinstance(spec, RateSpec)
        return {"per_s": {"s": 1.0, "min": 60.0, "h": 3600.0}[spec.per]}

    def setup_state(self) -> None:
        super().setup_state()
        self.per_ms = np.array([e["per_s"] * 1000.0 for e in self.extra], dtype=np.float64)

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.derive_sorted(sl, t, v, np.ones(len(sl), dtype=bool))

    def derive_sorted(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray, first: np.ndarray) -> np.ndarray:
        """(v - v_prev) / (t - t_prev) * per, in unit per ``per``; NaN without a previous
        reading or for equal times."""
        pv, pt = self.previous(sl, t, v, first)
        dt = (t - pt).astype(np.float64)
        dt[(pt == NO_TS) | (dt <= 0)] = np.nan
        return self._signed(sl, (v - pv) / dt * self.per_ms[sl])

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        pv, pt = st["pv"], st["pt"]
        st["pv"], st["pt"] = v, t
        if pt is None or t - pt <= 0:
            return math.nan
        return self.ref_signed(slot, (v - pv) / (t - pt) * float(self.per_ms[slot]))


@register_evaluator("step")
class StepEvaluator(_PrevEvaluator):
    """Step: reading minus the previous reading of the sensor."""

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.derive_sorted(sl, t, v, np.ones(len(sl), dtype=bool))

    def derive_sorted(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray, first: np.ndarray) -> np.ndarray:
        """v - v_prev in the quantity's unit (NaN without a previous reading)."""
        pv, _pt = self.previous(sl, t, v, first)
        return self._signed(sl, v - pv)

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        pv = st["pv"]
        st["pv"] = v
        return self.ref_signed(slot, v - pv)


@register_evaluator("stuck")
class StuckEvaluator(GradedEvaluator):
    """Seconds since the reading last moved by more than ``tolerance``."""

    def slot_extra(self, spec: GradedSpec, sensor: int) -> dict[str, float] | None:
        assert isinstance(spec, StuckSpec)
        return {"tol": spec.tolerance}

    def setup_state(self) -> None:
        self.tol = np.array([e["tol"] for e in self.extra], dtype=np.float64)
        self.rv = np.full(self.n_slots, np.nan)
        self.rt = np.zeros(self.n_slots, dtype=np.int64)

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        rv = self.rv[sl]
        moved = ~(np.abs(v - rv) <= self.tol[sl])  # NaN reference counts as moved
        rt = np.where(moved, t, self.rt[sl])
        self.rv[sl] = np.where(moved, v, rv)
        self.rt[sl] = rt
        return (t - rt) / 1000.0

    def ref_init(self) -> list[dict[str, Any]]:
        return [{**d, "rv": math.nan, "rt": 0} for d in super().ref_init()]

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        if not abs(v - st["rv"]) <= float(self.tol[slot]):
            st["rv"], st["rt"] = v, t
        return (t - st["rt"]) / 1000.0


@register_evaluator("drift")
class DriftEvaluator(GradedEvaluator):
    """Fast minus slow time-aware exponential moving average."""

    def slot_extra(self, spec: GradedSpec, sensor: int) -> dict[str, float] | None:
        assert isinstance(spec, DriftSpec)
        return {"tf": spec.fast_tau_s * 1000.0, "ts": spec.slow_tau_s * 1000.0}

    def setup_state(self) -> None:
        n = self.n_slots
        self.tf = np.array([e["tf"] for e in self.extra], dtype=np.float64)
        self.tsl = np.array([e["ts"] for e in self.extra], dtype=np.float64)
        self.fast = np.full(n, np.nan)
        self.slow = np.full(n, np.nan)
        self.pt = np.full(n, NO_TS, dtype=np.int64)

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        pt = self.pt[sl]
        first = pt == NO_TS
        dt = np.where(first, 0, t - pt).astype(np.float64)
        f = self.fast[sl]
        s = self.slow[sl]
        f = np.where(first, v, f + (1.0 - np.exp(-dt / self.tf[sl])) * (v - f))
        s = np.where(first, v, s + (1.0 - np.exp(-dt / self.tsl[sl])) * (v - s))
        self.fast[sl] = f
        self.slow[sl] = s
        self.pt[sl] = t
        return self._signed(sl, f - s)

    def ref_init(self) -> list[dict[str, Any]]:
        return [{**d, "f": math.nan, "s": math.nan, "pt": None} for d in super().ref_init()]

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        if st["pt"] is None:
            st["f"] = st["s"] = v
        else:
            dt = float(t - st["pt"])
            st["f"] = st["f"] + (1.0 - math.exp(-dt / float(self.tf[slot]))) * (v - st["f"])
            st["s"] = st["s"] + (1.0 - math.exp(-dt / float(self.tsl[slot]))) * (v - st["s"])
        st["pt"] = t
        return self.ref_signed(slot, st["f"] - st["s"])


@register_evaluator("silence")
class SilenceEvaluator(GradedEvaluator):
    """Seconds since the sensor's last reading, graded at :meth:`tick`; a reading resets it."""

    def derive_sorted(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray, first: np.ndarray) -> np.ndarray:
        # a reading grades 0 s of silence on a slot in alarm (resolving it); else nothing
        return np.where(self.cur[sl] > 0, 0.0, np.nan)

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.zeros(len(sl))

    def tick(self, now_ms: int, out: _Out) -> None:
        seen = self.engine.last_ts[self.slot_sensor]
        origin = self.engine.origin_ms if self.engine.origin_ms is not None else now_ms
        seen = np.where(seen == NO_TS, origin, seen)
        ok = np.flatnonzero(now_ms >= seen)
        age = (now_ms - seen[ok]) / 1000.0
        hot = np.flatnonzero(age >= self.Q[ok])
        if len(hot):
            sl = ok[hot].astype(np.int32)
            self.grade(sl, np.full(len(sl), now_ms, np.int64), age[hot], np.full(len(sl), np.nan), out)
        super().tick(now_ms, out)

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        return 0.0


@register_evaluator("accumulation")
class AccumulationEvaluator(GradedEvaluator):
    """Rolling accumulation per level's sliding window (see
    :class:`~rescity.monitor.specs.AccumulationSpec`), graded per level: the graded value
    of a reading is ``[A_W1, A_W2, A_W3, A_W4]`` (mm), ``A_W = C(t) - C(t - W)``.

    State per slot: the cumulative amount ``C`` (mm) at the slot's readings, a ring of
    (time, C) breakpoints per slot ([slot, K] arrays, K doubled when a ring is full)
    holding what the longest window still needs; ``C(q)`` between breakpoints is linear
    (the intensity is constant over an interval), found by a vectorised binary search."""

    def slot_extra(self, spec: GradedSpec, sensor: int) -> dict[str, float] | None:
        assert isinstance(spec, AccumulationSpec)
        w = spec.windows_ms()
        return {"w0": float(w[0]), "w1": float(w[1]), "w2": float(w[2]), "w3": float(w[3]),
                "gap": spec.max_gap_s * 1000.0}

    def setup_state(self) -> None:
        n = self.n_slots
        self.W = np.array([[e[f"w{k}"] for k in range(4)] for e in self.extra], dtype=np.int64).reshape(n, 4)
        self.gap_ms = np.array([e["gap"] for e in self.extra], dtype=np.float64)
        self.c_last = np.zeros(n)  # mm at the slot's last reading
        self.t_last = np.full(n, NO_TS, dtype=np.int64)
        self.K = 16
        self.bt = np.zeros((n, self.K), dtype=np.int64)  # ring of breakpoint times (ms)
        self.bc = np.zeros((n, self.K))  # ... and cumulative amounts there (mm)
        self.head = np.zeros(n, dtype=np.int64)  # ring index of the oldest breakpoint
        self.cnt = np.zeros(n, dtype=np.int64)  # breakpoints held

    def _grow(self) -> None:
        K = self.K
        idx = (self.head[:, None] + np.arange(K)[None, :]) % K
        bt = np.zeros((self.n_slots, 2 * K), dtype=np.int64)
        bc = np.zeros((self.n_slots, 2 * K))
        bt[:, :K] = np.take_along_axis(self.bt, idx, axis=1)
        bc[:, :K] = np.take_along_axis(self.bc, idx, axis=1)
        self.bt, self.bc, self.K = bt, bc, 2 * K
        self.head[:] = 0

    def _c_at(self, rows: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C at times ``q`` on slots ``rows`` (rows may repeat), logical index of the last
        breakpoint at or before q, -1 if none). Before the first breakpoint C is the
        first's (nothing known earlier); after the last, the last's (no rain added)."""
        K = self.K
        head = self.head[rows]
        cnt = self.cnt[rows]
        lo = np.zeros(len(rows), dtype=np.int64)
        hi = cnt.copy()
        for _ in range(K.bit_length() + 1):
            act = lo < hi
            if not act.any():
                break
            mid = (lo + hi) // 2
            right = act & (self.bt[rows, (head + mid) % K] <= q)
            lo = np.where(right, mid + 1, lo)
            hi = np.where(act & ~right, mid, hi)
        j = lo - 1
        jj = (head + np.clip(j, 0, cnt - 1)) % K
        jn = (head + np.clip(j + 1, 0, cnt - 1)) % K
        cj, tj = self.bc[rows, jj], self.bt[rows, jj]
        cn, tn = self.bc[rows, jn], self.bt[rows, jn]
        inside = (j >= 0) & (j + 1 < cnt)
        with np.errstate(invalid="ignore", divide="ignore"):
            mid_c = cj + (cn - cj) * (q - tj) / np.where(inside, tn - tj, 1)
        return np.where(inside, mid_c, cj), j

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Readings on unique slots -> [n, 4] accumulations (mm) over the four windows."""
        sl = np.asarray(sl, dtype=np.int64)
        tl = self.t_last[sl]
        new = tl == NO_TS
        dt = t - tl
        counted = ~new & (dt <= self.gap_ms[sl])
        inc = np.where(counted, np.maximum(v, 0.0) * np.where(counted, dt, 0) / 3_600_000.0, 0.0)
        c = self.c_last[sl] + inc
        add = np.flatnonzero(new | (dt > 0))  # equal times add no breakpoint (and no rain)
        if len(add):
            ra = sl[add]
            while bool(np.any(self.cnt[ra] >= self.K)):
                self._grow()
            pos = (self.head[ra] + self.cnt[ra]) % self.K
            self.bt[ra, pos] = t[add]
            self.bc[ra, pos] = c[add]
            self.cnt[ra] += 1
        self.t_last[sl] = t
        self.c_last[sl] = c
        n = len(sl)
        rows = np.repeat(sl, 4)
        q = np.repeat(t, 4) - self.W[sl].ravel()
        ca, j = self._c_at(rows, q)
        acc = c[:, None] - ca.reshape(n, 4)
        # drop breakpoints the longest window no longer needs (keep the one at or before it)
        drop = np.maximum(j.reshape(n, 4).min(axis=1), 0)
        if drop.any():
            self.head[sl] = (self.head[sl] + drop) % self.K
            self.cnt[sl] -= drop
        return acc

    def graded_value(self, sl: np.ndarray, x: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        """The accumulation over the window of the level after (or before, when resolved)."""
        k = np.clip(np.where(c1 > 0, c1, c0).astype(np.int64) - 1, 0, 3)
        return x[np.arange(len(x)), k]

    def tick(self, now_ms: int, out: _Out) -> None:
        """The windows slide on to ``now_ms`` (no rain after a slot's last reading): slots in
        alarm are graded again, then pending conditions whose duration elapsed fire."""
        sl = np.flatnonzero((self.cur > 0) & (self.t_last != NO_TS) & (self.t_last <= now_ms))
        if len(sl):
            n = len(sl)
            rows = np.repeat(sl, 4)
            ca, _ = self._c_at(rows, np.full(4 * n, now_ms, dtype=np.int64) - self.W[sl].ravel())
            acc = self.c_last[sl][:, None] - ca.reshape(n, 4)
            self.grade(sl.astype(np.int32), np.full(n, now_ms, np.int64), acc, np.full(n, np.nan), out)
        super().tick(now_ms, out)


# -- composite: coupling conditions (per event, over the few sensors involved) ---------------------------
def _hyst(T: Sequence[float], TH: Sequence[float], cur: int, x: float) -> int:
    e = sum(1 for k in range(4) if x >= T[k])
    m = sum(1 for k in range(4) if x > TH[k])
    return max(e, min(cur, m))


@dataclass
class _Machine:
    """Pending / firing on an integer severity, one slot (scalar twin of ``grade``)."""

    for_ms: int
    cur: int = 0
    firing: bool = False
    since: int | None = None

    def step(self, t: int, c1: int) -> tuple[int, int, int] | None:
        """-> (kind code, severity before, severity after) or None."""
        c0 = self.cur
        start = c0 == 0 and c1 > 0
        if start:
            self.since = t
        fire = c1 > 0 and not self.firing and self.since is not None and t - self.since >= self.for_ms
        self.cur = c1
        if c1 == 0:
            self.since = None
            self.firing = False
        elif fire:
            self.firing = True
        if fire:
            return (1, c0, c1)
        if start:
            return (0, c0, c1)
        if c0 > 0 and c1 == 0:
            return (3, c0, c1)
        if c0 > 0 and c1 != c0:
            return (2, c0, c1)
        return None

    def tick(self, now: int) -> tuple[int, int, int] | None:
        if self.cur > 0 and not self.firing and self.since is not None and now - self.since >= self.for_ms:
            self.firing = True
            return (1, self.cur, self.cur)
        return None


def _op(op: str, a: float, b: float) -> bool:
    return {">=": a >= b, ">": a > b, "<=": a <= b, "<": a < b}[op]


def _dist_m(lon1: float, lat1: float, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Equirectangular distance in metres (good to < 0.1 % over a city)."""
    k = math.pi / 180.0
    x = (lon2 - lon1) * k * np.cos(((lat1 + lat2) / 2.0) * k)
    y = (lat2 - lat1) * k
    return np.asarray(6371008.8 * np.hypot(x, y))


@dataclass
class _CompSlot:
    model: int
    spec: CompositeSpec
    sensor: int
    T: list[float]
    TH: list[float]
    xsign: float
    absf: bool
    machine: _Machine
    base: int = 0
    x: float = math.nan
    reading: float = math.nan
    require: list[list[int]] = field(default_factory=list)  # per condition: its sensors
    raise_: list[list[int]] = field(default_factory=list)


@register_evaluator("composite")
class CompositeEvaluator(Evaluator):
    """Graded thresholds whose level depends on conditions over related sensors. Evaluated
    per event (a reading of a base sensor or of a condition sensor) over the few sensors
    involved, in time order, so it is exact whatever the batch split."""

    def __init__(self, engine: WarningEngine, models: list[tuple[int, ModelSpec]]) -> None:
        super().__init__(engine, models)
        reg = engine.registry
        self.slots: list[_CompSlot] = []
        for mi, spec in models:
            assert isinstance(spec, CompositeSpec)
            over = _override_table(spec, reg, engine.city)
            for si in engine.selected(spec).tolist():
                o = over.get(si)
                th = spec.si_thresholds(o.thresholds if o else None)
                h = spec.si_hysteresis(o.hysteresis if o and o.hysteresis is not None else None)
                fs = o.for_s if o and o.for_s is not None else spec.for_s
                tsign = -1.0 if spec.direction == "low" else 1.0
                T = th.filled(tsign).tolist()
                slot = _CompSlot(mi, spec, si, T, [x - h for x in T], tsign, spec.direction == "both",
                                 _Machine(int(round(fs * 1000))))
                slot.require = [self._condition_sensors(c, si) for c in spec.require]
                slot.raise_ = [self._condition_sensors(r.when, si) for r in spec.raise_]
                self.slots.append(slot)
        n = len(reg)
        self.involved = np.zeros(n, dtype=bool)
        self.base_of: dict[int, list[int]] = {}
        self.cond_of: dict[int, list[int]] = {}
        for k, sl in enumerate(self.slots):
            self.involved[sl.sensor] = True
            self.base_of.setdefault(sl.sensor, []).append(k)
            for group in sl.require + sl.raise_:
                for cs in group:
                    self.involved[cs] = True
                    self.cond_of.setdefault(cs, []).append(k)
        self.last_v: dict[int, tuple[int, float]] = {}

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def _condition_sensors(self, c: Condition, si: int) -> list[int]:
        reg = self.engine.registry
        cand = reg.of_quantity(c.quantity)
        if c.scope == "same_asset":
            return [int(j) for j in cand if reg.asset[j] == reg.asset[si]]
        if c.scope == "any":
            return [int(j) for j in cand]
        if len(cand) == 0:
            return []
        d = _dist_m(float(reg.lon[si]), float(reg.lat[si]), reg.lon[cand], reg.lat[cand])
        if c.scope == "nearest":
            return [int(cand[int(np.argmin(d))])]
        return [int(j) for j in cand[d <= (c.within_m or 0.0)]]

    def _holds(self, c: Condition, sensors: list[int], t: int) -> bool:
        limit = c.max_age_s * 1000.0
        val = c.si_value()
        for s in sensors:
            lv = self.last_v.get(s)
            if lv is not None and t - lv[0] <= limit and _op(c.op, lv[1], val):
                return True
        return False

    def _output(self, sl: _CompSlot, t: int) -> int:
        if sl.base == 0:
            return 0
        for c, ss in zip(sl.spec.require, sl.require, strict=True):
            if not self._holds(c, ss, t):
                return 0
        up = sum(r.levels for r, ss in zip(sl.spec.raise_, sl.raise_, strict=True) if self._holds(r.when, ss, t))
        return min(4, sl.base + up)

    def _emit(self, sl: _CompSlot, t: int, r: tuple[int, int, int] | None, out: _Out) -> None:
        if r is None:
            return
        code, c0, c1 = r
        val = abs(sl.x) if sl.absf else sl.x * sl.xsign
        out.objects.append(self.engine.transition(sl.model, sl.sensor, t, code, c0, c1, val, sl.reading))

    def process_batch(self, s: np.ndarray, t: np.ndarray, v: np.ndarray, out: _Out) -> None:
        if not self.slots:
            return
        idx = np.flatnonzero(self.involved[s])
        if not len(idx):
            return
        idx = idx[np.argsort(t[idx], kind="stable")]
        ss, tt, vs = s[idx].tolist(), t[idx].tolist(), v[idx].tolist()
        i = 0
        while i < len(ss):  # readings with the same time are evaluated together
            ti = tt[i]
            touched: dict[int, None] = {}
            while i < len(ss) and tt[i] == ti:
                si, vi = ss[i], vs[i]
                self.last_v[si] = (ti, vi)
                for k in self.base_of.get(si, ()):
                    sl = self.slots[k]
                    x = abs(vi) if sl.absf else vi * sl.xsign
                    sl.x, sl.reading = x, vi
                    sl.base = _hyst(sl.T, sl.TH, sl.base, x)
                    touched[k] = None
                for k in self.cond_of.get(si, ()):
                    touched[k] = None
                i += 1
            for k in sorted(touched):
                sl = self.slots[k]
                self._emit(sl, ti, sl.machine.step(ti, self._output(sl, ti)), out)

    def tick(self, now_ms: int, out: _Out) -> None:
        for sl in self.slots:
            if sl.base > 0 or sl.machine.cur > 0:
                self._emit(sl, now_ms, sl.machine.step(now_ms, self._output(sl, now_ms)), out)
            self._emit(sl, now_ms, sl.machine.tick(now_ms), out)


# -- cluster: several adjacent alarms of another model folded into one ----------------------------------
@dataclass
class _Cluster:
    anchor: int  # sensor index: the alarm's asset is this sensor's asset
    members: set[int]
    machine: _Machine
    created: int


@register_evaluator("cluster")
class ClusterEvaluator(Evaluator):
    """Firing alarms of ``of_model`` whose sensors lie within ``within_m`` of each other
    (single linkage) form clusters graded on their member count. A cluster keeps its
    identity (its anchor's asset) while it overlaps its previous members; a new cluster is
    anchored on its most severe member (ties: lowest sensor index)."""

    phase = 1

    def __init__(self, engine: WarningEngine, models: list[tuple[int, ModelSpec]]) -> None:
        super().__init__(engine, models)
        self.specs: list[tuple[int, ClusterSpec, list[float], list[float]]] = []
        self.active: list[dict[int, int]] = []  # firing source sensors -> severity
        self.clusters: list[list[_Cluster]] = []
        self._made = 0
        for mi, spec in models:
            assert isinstance(spec, ClusterSpec)
            T = spec.si_thresholds().filled(1.0).tolist()
            h = spec.si_hysteresis()
            self.specs.append((mi, spec, T, [x - h for x in T]))
            self.active.append({})
            self.clusters.append([])

    @property
    def n_slots(self) -> int:
        return sum(len(c) for c in self.clusters)

    def after(self, transitions: list[Transition], out: _Out) -> None:
        index = self.engine.registry.index
        for k, (mi, spec, T, TH) in enumerate(self.specs):
            mine = [tr for tr in transitions if tr.model == spec.of_model]
            i = 0
            while i < len(mine):
                ts = mine[i].ts_ms
                while i < len(mine) and mine[i].ts_ms == ts:
                    tr = mine[i]
                    si = index[tr.sensor]
                    if tr.kind == TransitionKind.RESOLVED:
                        self.active[k].pop(si, None)
                    elif tr.kind == TransitionKind.FIRING or si in self.active[k]:
                        self.active[k][si] = 5 - tr.level_after if tr.level_after else 0
                    i += 1
                self._recluster(k, mi, spec, T, TH, ts, out)

    def _components(self, k: int, within_m: float) -> list[set[int]]:
        reg = self.engine.registry
        act = sorted(self.active[k])
        if not act:
            return []
        a = np.array(act)
        lon, lat = reg.lon[a], reg.lat[a]
        parent = list(range(len(act)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(len(act) - 1):
            d = _dist_m(float(lon[i]), float(lat[i]), lon[i + 1:], lat[i + 1:])
            for j in np.flatnonzero(d <= within_m).tolist():
                ri, rj = find(i), find(i + 1 + j)
                if ri != rj:
                    parent[rj] = ri
        groups: dict[int, set[int]] = {}
        for i, s in enumerate(act):
            groups.setdefault(find(i), set()).add(s)
        return sorted(groups.values(), key=lambda c: (-len(c), min(c)))

    def _recluster(self, k: int, mi: int, spec: ClusterSpec, T: list[float], TH: list[float],
                   ts: int, out: _Out) -> None:
        open_ = self.clusters[k]
        sev = self.active[k]
        taken: set[int] = set()  # indices into open_
        plan: list[tuple[_Cluster, set[int]]] = []
        for comp in self._components(k, spec.within_m):
            owners = [j for j, c in enumerate(open_) if j not in taken and c.members & comp]
            if owners:
                j = min(owners, key=lambda j: open_[j].created)
                taken.add(j)
                plan.append((open_[j], comp))
            elif len(comp) >= T[0]:
                anchors = {c.anchor for c in open_}
                free = [s for s in comp if s not in anchors]
                if free:
                    self._made += 1
                    anchor = min(free, key=lambda s: (-sev.get(s, 0), s))
                    plan.append((_Cluster(anchor, set(), _Machine(int(round(spec.for_s * 1000))), self._made), comp))
        plan += [(c, set()) for j, c in enumerate(open_) if j not in taken]
        keep: list[_Cluster] = []
        for cl, members in sorted(plan, key=lambda p: p[0].created):
            c1 = _hyst(T, TH, cl.machine.cur, float(len(members)))
            r = cl.machine.step(ts, c1)
            changed = members != cl.members
            cl.members = members
            if r is None and changed and cl.machine.cur > 0:
                r = (4, cl.machine.cur, cl.machine.cur)
            if r is not None:
                self._emit(mi, cl, ts, r, out)
            if cl.machine.cur > 0:
                keep.append(cl)
        self.clusters[k] = keep

    def _emit(self, mi: int, cl: _Cluster, ts: int, r: tuple[int, int, int], out: _Out) -> None:
        reg = self.engine.registry
        tr = self.engine.transition(mi, cl.anchor, ts, r[0], r[1], r[2], float(len(cl.members)), math.nan)
        details = {"members": sorted({reg.asset[s] for s in cl.members}),
                   "member_sensors": sorted(reg.ids[s] for s in cl.members)}
        out.objects.append(tr._replace(details=MappingProxyType(details)))

    def tick(self, now_ms: int, out: _Out) -> None:
        for k, (mi, _spec, _T, _TH) in enumerate(self.specs):
            for cl in self.clusters[k]:
                r = cl.machine.tick(now_ms)
                if r is not None:
                    self._emit(mi, cl, now_ms, r, out)


# -- the engine --------------------------------------------------------------------------------------------
class WarningEngine:
    """Evaluates warning models over batches of readings (see module docstring).

    ``specs``: model specs (disabled ones are skipped); ``registry``: the sensors;
    ``city``: needed by selections on asset kind / adjacency, relative thresholds and
    overrides by asset kind; ``start_ms``: the time silence is counted from for sensors
    never heard (default: the first time the engine sees).
    """

    def __init__(self, specs: Iterable[ModelSpec], registry: SensorRegistry, city: City | None = None,
                 *, start_ms: int | None = None) -> None:
        self.registry = registry
        self.city = city
        self.models: list[ModelSpec] = [s for s in specs if s.enabled]
        names = [m.name for m in self.models]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpecError(f"duplicate model names: {', '.join(sorted(dup))}")
        self.model_index = {m.name: i for i, m in enumerate(self.models)}
        self.notes: list[str] = []
        self.origin_ms = start_ms
        self.last_ts = np.full(len(registry), NO_TS, dtype=np.int64)
        self._watermark = int(NO_TS)  # latest reading time seen
        self.stats = {"readings": 0, "late": 0, "nan": 0, "transitions": 0}
        self._selected: dict[str, np.ndarray] = {}
        by_kind: dict[str, list[tuple[int, ModelSpec]]] = {}
        for i, m in enumerate(self.models):
            by_kind.setdefault(m.kind, []).append((i, m))
        self.evaluators: list[Evaluator] = []
        for kind, ms in by_kind.items():
            cls = EVALUATORS.get(kind)
            if cls is None:
                raise SpecError(f"no evaluator registered for kind {kind!r} (models {', '.join(m.name for _, m in ms)}); "
                                f"known: {', '.join(sorted(EVALUATORS))}")
            self.evaluators.append(cls(self, ms))
        self.evaluators.sort(key=lambda e: e.phase)
        for m in self.models:
            if not isinstance(m, ClusterSpec) and len(self.selected(m)) == 0:
                self.note(f"model {m.name!r} selects no sensor")
            if isinstance(m, ClusterSpec) and m.of_model not in self.model_index:
                raise SpecError(f"model {m.name!r}: of_model {m.of_model!r} is not among the engine's models")
        # per-sensor columns for transitions
        self._net = registry.network
        self._model_names = names

    # -- helpers for evaluators -----------------------------------------------------------------------
    def selected(self, spec: ModelSpec) -> np.ndarray:
        """Sensor indices the model watches (cached)."""
        got = self._selected.get(spec.name)
        if got is None:
            try:
                got = spec.select.resolve(self.registry, self.city)
            except SpecError as e:
                raise SpecError(f"model {spec.name!r} ({spec.origin}): {e}") from None
            self._selected[spec.name] = got
        return got

    def note(self, msg: str) -> None:
        self.notes.append(msg)

    def transition(self, model: int, sensor: int, ts: int, code: int, sev_before: int, sev_after: int,
                   value: float, reading: float) -> Transition:
        reg = self.registry
        return Transition(self._model_names[model], reg.asset[sensor], reg.ids[sensor], int(ts),
                          _KIND_ENUM[code], _LEVEL[sev_before], _LEVEL[sev_after], float(value),
                          float(reading), reg.network[sensor], float(reg.lon[sensor]), float(reg.lat[sensor]))

    @property
    def n_slots(self) -> int:
        return sum(e.n_slots for e in self.evaluators)

    # -- evaluation ----------------------------------------------------------------------------------
    def process(self, batch: ReadingBatch) -> list[Transition]:
        """Evaluate a batch; the transitions in time order (then model, then sensor)."""
        return self._collect(self._process(batch))

    def _process(self, batch: ReadingBatch) -> _Out:
        out = _Out()
        n = len(batch)
        if n == 0:
            return out
        s = np.asarray(batch.sensor)
        t = np.asarray(batch.ts)
        v = np.asarray(batch.value)
        if s.dtype != np.int32 or t.dtype != np.int64 or v.dtype != np.float64:
            s, t, v = s.astype(np.int32), t.astype(np.int64), v.astype(np.float64)
        N = len(self.registry)
        if int(s.min()) < 0 or int(s.max()) >= N:
            raise ValueError(f"batch has sensor indices outside 0..{N - 1}")
        if self.origin_ms is None:
            self.origin_ms = int(t.min())
        self.stats["readings"] += n
        # an in-order stream (no reading older than anything seen) without NaN: nothing to drop
        clean = int(t.min()) >= self._watermark and not bool(np.isnan(v).any())
        self._watermark = max(self._watermark, int(t.max()))
        if not clean:
            # late: older than the last evaluated reading of its sensor (a sensor's readings
            # within the batch are evaluated in time order, so never late to each other)
            ok = (t >= self.last_ts[s]) & (v == v)
            if not ok.all():
                nan = int(np.count_nonzero(v != v))
                self.stats["nan"] += nan
                self.stats["late"] += int(np.count_nonzero(~ok)) - nan
                s, t, v = s[ok], t[ok], v[ok]
        if len(s) == 0:
            return out
        increasing = len(s) == 1 or bool(np.all(s[1:] > s[:-1]))
        span = None
        if increasing:
            a, b = int(s[0]), int(s[-1]) + 1
            span = (a, b) if b - a == len(s) else None
        if span is not None:
            self.last_ts[span[0]:span[1]] = t
        elif increasing:
            self.last_ts[s] = t
        else:
            np.maximum.at(self.last_ts, s, t)
        view = BatchView(s, t, v, N, span, increasing)
        for ev in self.evaluators:
            if ev.phase == 0:
                ev.process_view(view, out)
        for ev in self.evaluators:
            if ev.phase == 0 and type(ev).process_batch is not Evaluator.process_batch:
                ev.process_batch(s, t, v, out)
        self._phase1(out)
        return out

    def _phase1(self, out: _Out) -> None:
        later = [e for e in self.evaluators if e.phase == 1]
        if later and len(out):
            so_far = self._collect(out, keep=True)
            for ev in later:
                ev.after(so_far, out)

    def tick(self, now_ms: int) -> list[Transition]:
        """Time-driven evaluation at ``now_ms``: pending conditions whose duration elapsed
        fire, silence models grade the time since each sensor's last reading."""
        out = _Out()
        if self.origin_ms is None:
            self.origin_ms = int(now_ms)
        for ev in self.evaluators:
            if ev.phase == 0:
                ev.tick(int(now_ms), out)
        self._phase1(out)
        for ev in self.evaluators:
            if ev.phase == 1:
                ev.tick(int(now_ms), out)
        return self._collect(out)

    def _collect(self, out: _Out, keep: bool = False) -> list[Transition]:
        trs: list[Transition] = []
        if out.model:
            model = np.concatenate(out.model)
            sensor = np.concatenate(out.sensor)
            ts = np.concatenate(out.ts)
            kind = np.concatenate(out.kind)
            before = np.concatenate(out.before)
            after = np.concatenate(out.after)
            value = np.concatenate(out.value)
            reading = np.concatenate(out.reading)
            o = np.lexsort((sensor, model, ts))
            reg = self.registry
            ids, assets, nets = reg.ids, reg.asset, reg.network
            names = self._model_names
            sl = sensor[o]
            lon = reg.lon[sl].tolist()
            lat = reg.lat[sl].tolist()
            for j, (m, s, t, k, b, a, val, rd) in enumerate(zip(
                    model[o].tolist(), sl.tolist(), ts[o].tolist(), kind[o].tolist(), before[o].tolist(),
                    after[o].tolist(), value[o].tolist(), reading[o].tolist(), strict=True)):
                trs.append(Transition(names[m], assets[s], ids[s], t, _KIND_ENUM[k], _LEVEL[b], _LEVEL[a],
                                      val, rd, nets[s], lon[j], lat[j]))
        if out.objects:
            trs.extend(out.objects)
            trs.sort(key=lambda tr: (tr.ts_ms, self.model_index[tr.model], tr.sensor))
        if not keep:
            self.stats["transitions"] += len(trs)
        return trs


# -- the plain per-reading loop -------------------------------------------------------------------------
class ReferenceEngine:
    """The same logic as :class:`WarningEngine`, one reading at a time in plain Python.

    For tests and for the bench's baseline; supports the graded per-sensor kinds
    (threshold, rate, step, stuck, drift, silence). It reuses the compiled slot
    parameters of a :class:`WarningEngine` but none of its evaluation code.
    """

    def __init__(self, specs: Iterable[ModelSpec], registry: SensorRegistry, city: City | None = None,
                 *, start_ms: int | None = None) -> None:
        specs = [s for s in specs if s.enabled]
        self.engine = WarningEngine(specs, registry, city, start_ms=start_ms)
        self.evs: list[GradedEvaluator] = []
        for ev in self.engine.evaluators:
            if not isinstance(ev, GradedEvaluator):
                raise NotImplementedError(f"ReferenceEngine does not evaluate kind {ev.kind!r}")
            self.evs.append(ev)
        self.origin_ms = start_ms
        # sensor -> [(evaluator, slot)] in slot order
        self.slots_of: dict[int, list[tuple[int, int]]] = {}
        self.params: list[list[tuple[list[float], list[float], int]]] = []
        self.state: list[list[dict[str, Any]]] = []
        for k, ev in enumerate(self.evs):
            for slot, s in enumerate(ev.slot_sensor.tolist()):
                self.slots_of.setdefault(s, []).append((k, slot))
            self.params.append([(ev.T[i].tolist(), ev.TH[i].tolist(), int(ev.for_ms[i])) for i in range(ev.n_slots)])
            self.state.append(ev.ref_init())
        self.last_ts: dict[int, int] = {}

    def process(self, batch: ReadingBatch) -> list[Transition]:
        out: list[tuple[int, int, int, int, int, int, int, float, float, int]] = []
        order = np.argsort(batch.ts, kind="stable")
        seq = 0
        for i in order.tolist():
            s, t, v = int(batch.sensor[i]), int(batch.ts[i]), float(batch.value[i])
            if self.origin_ms is None:
                self.origin_ms = int(batch.ts.min())
            if v != v or t < self.last_ts.get(s, t):
                continue
            self.last_ts[s] = t
            for k, slot in self.slots_of.get(s, ()):
                ev = self.evs[k]
                st = self.state[k][slot]
                if isinstance(ev, SilenceEvaluator):
                    x = 0.0
                else:
                    x = ev.ref_derive(slot, st, t, v)
                if x != x:
                    continue
                r = self._step(k, slot, st, t, x)
                if r is not None:
                    seq += 1
                    out.append((t, int(ev.slot_model[slot]), s, seq, *r, self._value(ev, slot, x), v, k))
        return self._finish(out)

    def _value(self, ev: GradedEvaluator, slot: int, x: float) -> float:
        return x if ev.absf[slot] else x * float(ev.xsign[slot])

    def _step(self, k: int, slot: int, st: dict[str, Any], t: int, x: float) -> tuple[int, int, int] | None:
        T, TH, for_ms = self.params[k][slot]
        c0 = st["cur"]
        c1 = _hyst(T, TH, c0, x)
        m = _Machine(for_ms, c0, st["firing"], st["since"])
        r = m.step(t, c1)
        st["cur"], st["firing"], st["since"] = m.cur, m.firing, m.since
        return r

    def tick(self, now_ms: int) -> list[Transition]:
        if self.origin_ms is None:
            self.origin_ms = now_ms
        out: list[tuple[int, int, int, int, int, int, int, float, float, int]] = []
        seq = 0
        for k, ev in enumerate(self.evs):
            for slot in range(ev.n_slots):
                st = self.state[k][slot]
                s = int(ev.slot_sensor[slot])
                if isinstance(ev, SilenceEvaluator):
                    seen = self.last_ts.get(s, self.origin_ms)
                    if now_ms >= seen:
                        x = (now_ms - seen) / 1000.0
                        if st["cur"] > 0 or x >= self.params[k][slot][0][0]:
                            r = self._step(k, slot, st, now_ms, x)
                            if r is not None:
                                seq += 1
                                out.append((now_ms, int(ev.slot_model[slot]), s, seq, *r, x, math.nan, k))
                T, TH, for_ms = self.params[k][slot]
                m = _Machine(for_ms, st["cur"], st["firing"], st["since"])
                r = m.tick(now_ms)
                st["firing"] = m.firing
                if r is not None:
                    seq += 1
                    out.append((now_ms, int(ev.slot_model[slot]), s, seq, *r, math.nan, math.nan, k))
        return self._finish(out)

    def _finish(self, out: list[tuple[int, int, int, int, int, int, int, float, float, int]]) -> list[Transition]:
        out.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
        return [self.engine.transition(m, s, t, code, c0, c1, val, rd) for t, m, s, _q, code, c0, c1, val, rd, _k in out]
