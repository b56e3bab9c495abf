"""The ingestion pipeline: decoded batch -> validation -> readings store and dead letters
-> warning engine -> alarm transitions. Every source (replay, HTTP, MQTT, NATS) feeds it.

Order matters for at-least-once delivery. One call of :meth:`Pipeline.ingest` validates
the batch, runs the warning engine on what was accepted (its alarm events are collected,
not written), then hands readings, dead letters and alarm events to the sink in **one**
call that the store commits as one transaction; only then does the caller acknowledge
the messages. A crash before the commit leaves nothing of the batch stored, and the
broker redelivers it; a crash after the commit and before the acknowledgement makes the
broker redeliver a batch whose readings are stored already: the validator (seeded from
the store) and the idempotent readings insert turn the copies into duplicates, and the
alarm book (rebuilt from the stored events) has their events already.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .batch import ReadingBatch
from .decode import Decoded
from .registry import SensorRegistry
from .validate import DeadLetter, Reason, Validator


class ReadingSink(Protocol):
    """Where an ingested batch goes (:class:`rescity.store.monitoring.MonitoringStore`)."""

    def write(self, ids: Sequence[str], sensor: np.ndarray, ts_ms: np.ndarray, values: np.ndarray,
              dead: Sequence[DeadLetter] = (), events: Sequence[Any] = (),
              alarms: Sequence[Any] = ()) -> int:
        """Store in one transaction: readings (sensor ``ids[sensor[i]]``, ``ts_ms[i]`` ms
        UTC, ``values[i]`` SI; already stored ones ignored), dead letters, alarm events
        and the alarms they touched; return how many readings were new."""
        ...


class Engine(Protocol):
    """The warning engine as the pipeline sees it. An engine with an attribute ``sink``
    (the :class:`~rescity.monitor.warnings.WarningStage`: a callable taking alarm
    events and the alarms they touched) gets it pointed at the pipeline, which writes
    them in the batch's transaction. One with a true attribute ``wants_now`` gets the
    ingest clock as well: ``process(batch, now_ms=now_ms)`` (ms UTC)."""

    def process(self, batch: ReadingBatch) -> list[Any]: ...


class PipelineStale(RuntimeError):
    """A store write failed after the warning engine had processed the batch: the
    engine's state is ahead of the store. Rebuild the pipeline from the store (what a
    worker does after an error) instead of ingesting more with this one."""


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
    _events: list[Any] = field(default_factory=list, repr=False)
    _alarms: dict[str, Any] = field(default_factory=dict, repr=False)
    _stale: bool = False

    def __post_init__(self) -> None:
        if self.sink is not None and self.engine is not None and hasattr(self.engine, "sink"):
            self.engine.sink = self._collect_alarms

    @classmethod
    def build(cls, registry: SensorRegistry, *, sink: ReadingSink | None = None,
              engine: Engine | None = None,
              on_transitions: Callable[[list[Any]], None] | None = None) -> Pipeline:
        return cls(registry, Validator(registry), sink, engine, on_transitions)

    def _collect_alarms(self, events: list[Any], alarms: list[Any]) -> None:
        """The warning stage's alarm-event sink: kept until the batch's store write."""
        self._events.extend(events)
        for a in alarms:
            self._alarms[str(a.id)] = a

    def restore(self, sensor_uids: list[str], ts_ms: np.ndarray) -> None:
        """Seed validation state from stored readings after a restart."""
        idx = self.registry.lookup(sensor_uids)
        ok = idx >= 0
        self.validator.restore(idx[ok], np.asarray(ts_ms)[ok])

    def ingest(self, decoded: Decoded, now_ms: int, source: str = "pipeline") -> IngestResult:
        """Validate, evaluate and store one decoded batch (``now_ms``: ms UTC, the clock
        validation judges timestamps against). Raises what the store raises, with nothing
        of the batch stored; then, if an engine ran, :class:`PipelineStale` on every
        later call."""
        if self._stale:
            raise PipelineStale("a store write failed after the engine had processed its batch; "
                                "rebuild the pipeline from the store")
        # the ordering state is committed only once the readings are stored, so a write
        # that fails can be retried in this process without its readings becoming duplicates
        accepted, rejected = self.validator.validate(decoded.batch, now_ms, commit=False)
        dead = list(decoded.dead)
        ids = self.registry.ids
        for r, detail, s, t, v in zip(rejected.reasons, rejected.details, rejected.batch.sensor.tolist(),
                                      rejected.batch.ts.tolist(), rejected.batch.value.tolist(),
                                      strict=True):
            dead.append(DeadLetter(Reason(r), detail, source, now_ms, ids[s], t, repr(v)))
        res = IngestResult(accepted=len(accepted), dead=dead)
        if self.engine is not None and len(accepted):
            self._events, self._alarms = [], {}
            if getattr(self.engine, "wants_now", False):
                res.transitions = self.engine.process(accepted, now_ms=now_ms)  # type: ignore[call-arg]
            else:
                res.transitions = self.engine.process(accepted)
        if self.sink is not None and (len(accepted) or dead or self._events):
            try:
                res.stored = self.sink.write(ids, accepted.sensor, accepted.ts, accepted.value, dead,
                                             self._events, list(self._alarms.values()))
            except BaseException:
                self._stale = self.engine is not None and len(accepted) > 0
                raise
            finally:
                self._events, self._alarms = [], {}
        for d in decoded.dead:
            self.validator.counts[d.reason] += 1
        self.validator.commit(accepted)
        if res.transitions and self.on_transitions is not None:
            self.on_transitions(res.transitions)
        self.totals["accepted"] += res.accepted
        self.totals["stored"] += res.stored
        self.totals["dead"] += len(dead)
        return res
