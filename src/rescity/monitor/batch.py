"""Readings travel as columnar batches, never one Python object per reading.

A :class:`ReadingBatch` is three aligned NumPy arrays:

* ``sensor``: int32 index into a :class:`~rescity.monitor.registry.SensorRegistry`,
* ``ts``: int64 milliseconds since 1970-01-01 UTC,
* ``value``: float64 in the sensor's SI unit (see :mod:`rescity.model.units`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MS = 1
SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Aligned arrays of readings (see module docstring)."""

    sensor: np.ndarray  # int32
    ts: np.ndarray  # int64, ms since epoch UTC
    value: np.ndarray  # float64, SI

    def __post_init__(self) -> None:
        n = len(self.sensor)
        if len(self.ts) != n or len(self.value) != n:
            raise ValueError(
                f"batch arrays differ in length: sensor {n}, ts {len(self.ts)}, value {len(self.value)}"
            )

    @classmethod
    def of(cls, sensor: object, ts: object, value: object) -> ReadingBatch:
        """A batch from array-likes, cast to the canonical dtypes."""
        return cls(
            np.ascontiguousarray(sensor, dtype=np.int32),
            np.ascontiguousarray(ts, dtype=np.int64),
            np.ascontiguousarray(value, dtype=np.float64),
        )

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls.of([], [], [])

    def __len__(self) -> int:
        return len(self.sensor)

    def take(self, idx: np.ndarray) -> ReadingBatch:
        """The readings at positions (or mask) ``idx``."""
        return ReadingBatch(self.sensor[idx], self.ts[idx], self.value[idx])

    def sorted(self) -> ReadingBatch:
        """Sorted by time, then sensor (the order the engine evaluates in)."""
        order = np.lexsort((self.sensor, self.ts))
        return self.take(order)

    @staticmethod
    def concat(batches: list[ReadingBatch]) -> ReadingBatch:
        if not batches:
            return ReadingBatch.empty()
        return ReadingBatch(
            np.concatenate([b.sensor for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.value for b in batches]),
        )
