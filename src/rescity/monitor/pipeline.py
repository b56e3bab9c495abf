"""The ingestion pipeline: decoded batch -> validation -> readings store and dead letters
-> warning engine -> alarm transitions. Every source (replay, HTTP, MQTT, NATS) feeds it.

Order matters for at-least-once delivery: readings and dead letters are written before
the caller acknowledges the message, and the readings insert is idempotent, so a
message redelivered after a crash changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .batch import ReadingBatch
from .decode import Decoded
from .registry import SensorRegistry
from .validate import DeadLetter, Reason, Validator


class ReadingSink(Protocol):
    """Where accepted readings and dead letters go (``rescity.store.monitoring``)."""

    def insert_readings(self, sensor_uids: list[str], ts_ms: np.ndarray, values: np.ndarray) -> int: ...

    def add_dead_letters(self, dead: list[DeadLetter]) -> int: ...


class Engine(Protocol):
    """The warning engine as the pipeline sees it."""

    def process(self, batch: ReadingBatch) -> list[Any]: ...


@dataclass
class IngestResult:
    """What one call of :meth:`Pipeline.ingest` did."""

    accepted: int = 0
    stored: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    transitions: list[Any] = field(default_factory=list)


@dataclass
class Pipeline:
    """Glue of the walk of one reading (see module docstring)."""

    registry: SensorRegistry
    validator: Validator
    sink: ReadingSink | None = None
    engine: Engine | None = None
    on_transitions: Callable[[list[Any]], None] | None = None
    totals: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "stored": 0, "dead": 0})

    @classmethod
    def build(cls, registry: SensorRegistry, *, sink: ReadingSink | None = None,
              engine: Engine | None = None,
              on_transitions: Callable[[list[Any]], None] | None = None) -> Pipeline:
        return cls(registry, Validator(registry), sink, engine, on_transitions)

    def restore(self, sensor_uids: list[str], ts_ms: np.ndarray) -> None:
        """Seed validation state from stored readings after a restart."""
        idx = self.registry.lookup(sensor_uids)
        ok = idx >= 0
        self.validator.restore(idx[ok], np.asarray(ts_ms)[ok])

    def ingest(self, decoded: Decoded, now_ms: int, source: str = "pipeline") -> IngestResult:
        # the ordering state is committed only once the readings are stored, so a write
        # that fails can be retried in this process without its readings becoming duplicates
        accepted, rejected = self.validator.validate(decoded.batch, now_ms, commit=False)
        dead = list(decoded.dead)
        ids = self.registry.ids
        for r, detail, s, t, v in zip(rejected.reasons, rejected.details, rejected.batch.sensor.tolist(),
                                      rejected.batch.ts.tolist(), rejected.batch.value.tolist(),
                                      strict=True):
            dead.append(DeadLetter(Reason(r), detail, source, now_ms, ids[s], t, repr(v)))
        for d in decoded.dead:
            self.validator.counts[d.reason] += 1
        res = IngestResult(accepted=len(accepted), dead=dead)
        if self.sink is not None:
            if len(accepted):
                uids = [ids[i] for i in accepted.sensor.tolist()]
                res.stored = self.sink.insert_readings(uids, accepted.ts, accepted.value)
            if dead:
                self.sink.add_dead_letters(dead)
        self.validator.commit(accepted)
        if self.engine is not None and len(accepted):
            res.transitions = self.engine.process(accepted)
            if res.transitions and self.on_transitions is not None:
                self.on_transitions(res.transitions)
        self.totals["accepted"] += res.accepted
        self.totals["stored"] += res.stored
        self.totals["dead"] += len(dead)
        return res
