"""Replay of telemetry files faster than real time, with an explicit clock.

A replay reads a long-format table (sensor, ts, value; CSV, Parquet or JSON lines),
orders it by time and hands it to the pipeline in slices of ``step_ms`` of simulated
time. The clock is the slice's end: validation ("too old", "in the future") and the
engine see simulated time, so a day replays in seconds with the same code that runs
live. ``speed`` > 0 paces the replay against the wall clock (``speed=60``: one simulated
minute per second); ``speed=None`` runs as fast as possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .batch import MINUTE_MS
from .decode import Decoder, read_table
from .pipeline import IngestResult, Pipeline


@dataclass
class ReplayStats:
    """Totals of a replay."""

    readings: int = 0
    accepted: int = 0
    dead: int = 0
    transitions: int = 0
    slices: int = 0
    first_ms: int = 0
    last_ms: int = 0
    wall_s: float = 0.0

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else float("inf")


def slices(ts_ms: np.ndarray, step_ms: int) -> Iterator[tuple[int, int, int]]:
    """(start index, end index, slice end time) over time-sorted ``ts_ms``."""
    if len(ts_ms) == 0:
        return
    t0 = int(ts_ms[0])
    edges = np.arange(t0 + step_ms, int(ts_ms[-1]) + step_ms + 1, step_ms, dtype=np.int64)
    ends = np.searchsorted(ts_ms, edges, side="left")
    start = 0
    for end, edge in zip(ends.tolist(), edges.tolist(), strict=True):
        if end > start:
            yield start, end, edge
        start = end


def replay_arrays(pipeline: Pipeline, sensors: list[str], ts_ms: np.ndarray, values: np.ndarray,
                  *, step_ms: int = MINUTE_MS, speed: float | None = None,
                  on_slice: Callable[[int, IngestResult], None] | None = None,
                  source: str = "replay") -> ReplayStats:
    """Replay aligned arrays (any order) through ``pipeline``."""
    order = np.argsort(ts_ms, kind="stable")
    ts_sorted = np.asarray(ts_ms)[order]
    v_sorted = np.asarray(values)[order]
    s_sorted = [sensors[i] for i in order.tolist()]
    decoder = Decoder(pipeline.registry, source=source)
    stats = ReplayStats(first_ms=int(ts_sorted[0]) if len(ts_sorted) else 0)
    wall0 = time.perf_counter()
    for a, b, now in slices(ts_sorted, step_ms):
        if speed:
            due = (now - stats.first_ms) / 1000.0 / speed
            lag = due - (time.perf_counter() - wall0)
            if lag > 0:
                time.sleep(lag)
        res = pipeline.ingest(decoder.columns(s_sorted[a:b], ts_sorted[a:b], v_sorted[a:b], now), now, source)
        stats.readings += b - a
        stats.accepted += res.accepted
        stats.dead += len(res.dead)
        stats.transitions += len(res.transitions)
        stats.slices += 1
        stats.last_ms = now
        if on_slice is not None:
            on_slice(now, res)
    stats.wall_s = time.perf_counter() - wall0
    return stats


def replay_file(pipeline: Pipeline, path: Path, **kwargs: object) -> ReplayStats:
    """Replay a telemetry file (see :func:`rescity.monitor.decode.read_table`)."""
    sensors, ts, values = read_table(path)
    return replay_arrays(pipeline, sensors, ts, values, **kwargs)  # type: ignore[arg-type]
