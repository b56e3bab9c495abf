"""Validation of incoming readings: what is valid goes on, everything else goes to the
dead-letter store with its reason. Nothing valid is ever dropped.

Reasons (:class:`Reason`): the sensor is unknown; the value is not a number, NaN or
infinite; the value is outside the sensor's physical range; the timestamp is too far in
the future or too old (relative to an explicit ``now``); the reading duplicates one
already accepted (same sensor and timestamp: at-least-once delivery never double-counts);
the reading is older than the newest accepted for its sensor (out of order).

State per sensor lives in arrays: the newest accepted timestamp and a ring of the last
``ring`` accepted timestamps, so a redelivered reading is recognised as a duplicate
rather than as out of order. Within one batch, readings are taken in time order per
sensor, so a batch is a set: its internal order does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .batch import DAY_MS, MINUTE_MS, ReadingBatch
from .registry import SensorRegistry


class Reason(StrEnum):
    """Why a reading or message went to the dead-letter store."""

    MALFORMED = "malformed"  # the message could not be decoded
    UNKNOWN_SENSOR = "unknown_sensor"
    NOT_NUMERIC = "not_numeric"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    FUTURE = "future"
    TOO_OLD = "too_old"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected message or reading, kept with its reason.

    ``sensor`` and ``ts_ms`` are what the message said (None when it did not say or
    could not be read); ``value`` is the raw value as text; ``payload`` the raw message
    (decode failures) or None.
    """

    reason: Reason
    detail: str
    source: str
    received_ms: int
    sensor: str | None = None
    ts_ms: int | None = None
    value: str | None = None
    payload: str | None = None


@dataclass
class Rejected:
    """Readings rejected from a decoded batch: positions and reasons, aligned."""

    batch: ReadingBatch
    reasons: list[Reason] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


@dataclass
class ValidationPolicy:
    """Limits for timestamps, relative to the explicit ``now`` (milliseconds)."""

    max_future_ms: int = 5 * MINUTE_MS
    max_age_ms: int = 7 * DAY_MS


class Validator:
    """Vectorised validation with per-sensor ordering state (see module docstring)."""

    def __init__(self, registry: SensorRegistry, policy: ValidationPolicy | None = None,
                 *, ring: int = 16) -> None:
        self.registry = registry
        self.policy = policy or ValidationPolicy()
        n = len(registry)
        self.last_ts = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self.recent = np.full((n, ring), np.iinfo(np.int64).min, dtype=np.int64)
        self._ring_pos = np.zeros(n, dtype=np.int64)
        self.counts: dict[Reason, int] = dict.fromkeys(Reason, 0)
        self.accepted = 0

    def restore(self, sensor: np.ndarray, ts: np.ndarray) -> None:
        """Seed the ordering state from readings already stored (after a restart):
        ``sensor``/``ts`` are the most recent accepted readings, any order."""
        self._remember(ReadingBatch.of(sensor, ts, np.zeros(len(ts))).sorted())

    def validate(self, batch: ReadingBatch, now_ms: int, *,
                 commit: bool = True) -> tuple[ReadingBatch, Rejected]:
        """Split ``batch`` (sensor indices must be valid) into accepted readings
        (sorted by time, then sensor) and rejected ones with reasons.

        With ``commit=False`` the ordering state is not updated: call :meth:`commit` with
        the accepted readings once they are safely stored, so a failed write can be
        retried without its readings being taken for duplicates."""
        b = batch.sorted()
        reason = np.zeros(len(b), dtype=np.int8)  # 0 = ok, else index+1 into _CODES
        v = b.value
        lo, hi = self.registry.low[b.sensor], self.registry.high[b.sensor]
        finite = np.isfinite(v)
        _mark(reason, ~finite, Reason.NOT_FINITE)
        _mark(reason, finite & ((v < lo) | (v > hi)), Reason.OUT_OF_RANGE)
        _mark(reason, b.ts > now_ms + self.policy.max_future_ms, Reason.FUTURE)
        _mark(reason, b.ts < now_ms - self.policy.max_age_ms, Reason.TOO_OLD)

        # against what was accepted before
        last = self.last_ts[b.sensor]
        older = b.ts <= last
        if older.any():
            idx = np.flatnonzero(older & (reason == 0))
            seen = (self.recent[b.sensor[idx]] == b.ts[idx, None]).any(axis=1)
            _mark_at(reason, idx[seen], Reason.DUPLICATE)
            _mark_at(reason, idx[~seen], Reason.OUT_OF_ORDER)

        # duplicates within the batch: same (sensor, ts) as an earlier row that is itself
        # valid (a bad row must not shadow a good one with the same key)
        cand = np.flatnonzero(reason == 0)
        order = cand[np.lexsort((b.ts[cand], b.sensor[cand]))]
        s_sorted, t_sorted = b.sensor[order], b.ts[order]
        if len(order) > 1:
            same = (s_sorted[1:] == s_sorted[:-1]) & (t_sorted[1:] == t_sorted[:-1])
            _mark_at(reason, order[1:][same], Reason.DUPLICATE)

        ok = reason == 0
        accepted = b.take(ok)
        if commit:
            self._remember(accepted)
        bad = ~ok
        rej = Rejected(b.take(bad))
        codes = reason[bad]
        for code in codes.tolist():
            r = _CODES[code - 1]
            rej.reasons.append(r)
            self.counts[r] += 1
        rej.details = [_detail(r, s, t, val, self.registry, now_ms)
                       for r, s, t, val in zip(rej.reasons, rej.batch.sensor.tolist(),
                                               rej.batch.ts.tolist(), rej.batch.value.tolist(),
                                               strict=True)]
        self.accepted += len(accepted)
        return accepted, rej

    def commit(self, accepted: ReadingBatch) -> None:
        """Record accepted readings in the ordering state (after they were stored)."""
        self._remember(accepted)

    def _remember(self, accepted: ReadingBatch) -> None:
        if not len(accepted):
            return
        # batch is sorted by time: the last occurrence per sensor is its newest
        np.maximum.at(self.last_ts, accepted.sensor, accepted.ts)
        ring = self.recent.shape[1]
        # per-sensor running position for each accepted reading, in time order
        order = np.argsort(accepted.sensor, kind="stable")
        s = accepted.sensor[order]
        starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
        rank = np.arange(len(s)) - np.repeat(starts, np.diff(np.r_[starts, len(s)]))
        pos = (self._ring_pos[s] + rank) % ring
        self.recent[s, pos] = accepted.ts[order]
        counts = np.bincount(s, minlength=len(self._ring_pos))
        self._ring_pos = (self._ring_pos + counts) % ring

    def stats(self) -> dict[str, Any]:
        """Accepted count and rejected counts per reason."""
        return {"accepted": self.accepted, "rejected": {r.value: c for r, c in self.counts.items() if c}}


_CODES = [Reason.NOT_FINITE, Reason.OUT_OF_RANGE, Reason.FUTURE, Reason.TOO_OLD,
          Reason.DUPLICATE, Reason.OUT_OF_ORDER]


def _mark(reason: np.ndarray, mask: np.ndarray, r: Reason) -> None:
    """First reason wins: set ``r`` where ``mask`` and no reason yet."""
    reason[mask & (reason == 0)] = _CODES.index(r) + 1


def _mark_at(reason: np.ndarray, idx: np.ndarray, r: Reason) -> None:
    reason[idx] = _CODES.index(r) + 1


def _detail(r: Reason, s: int, ts: int, v: float, reg: SensorRegistry, now_ms: int) -> str:
    sid = reg.ids[s]
    if r == Reason.OUT_OF_RANGE:
        q = reg.quantities[reg.quantity[s]]
        return f"{sid}: {q} {v!r} outside the physical range [{reg.low[s]}, {reg.high[s]}]"
    if r == Reason.NOT_FINITE:
        return f"{sid}: value {v!r} is not finite"
    if r == Reason.FUTURE:
        return f"{sid}: timestamp {ts} ms is {(ts - now_ms) / 1000:.0f} s in the future"
    if r == Reason.TOO_OLD:
        return f"{sid}: timestamp {ts} ms is {(now_ms - ts) / 3_600_000:.1f} h old"
    if r == Reason.DUPLICATE:
        return f"{sid}: a reading at {ts} ms was already accepted"
    return f"{sid}: {ts} ms is older than the newest accepted reading"
