"""The warning stage of the pipeline: the engine's transitions go through the alarm book
(lifecycle, dedup, grouping, inhibition, silences) and every alarm event to a sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rescity.model import City

from .alarms import AlarmBook, AlarmEvent, EventKind, city_locator
from .batch import ReadingBatch
from .engine import Transition, WarningEngine
from .registry import SensorRegistry
from .specs import Catalogue, load_catalogue


class WarningStage:
    """Engine + alarm book, as the pipeline's ``engine``.

    ``process`` evaluates a batch, then ticks the time-driven models (silence, pending
    durations) at the batch's newest timestamp, and hands every transition to the alarm
    book; ``sink`` receives the alarm events and the alarms they touched.
    """

    def __init__(self, engine: WarningEngine, book: AlarmBook,
                 sink: Callable[[list[AlarmEvent], list[Any]], None] | None = None) -> None:
        self.engine = engine
        self.book = book
        self.sink = sink
        self.events: list[AlarmEvent] = []

    def process(self, batch: ReadingBatch) -> list[Transition]:
        trs = self.engine.process(batch)
        if len(batch):
            trs += self.engine.tick(int(batch.ts.max()))
        events = self.book.ingest(trs)
        if events:
            self.events.extend(events)
            if self.sink is not None:
                touched = {e.alarm_id for e in events}
                self.sink(events, [self.book.get(a) for a in sorted(touched)])
        return trs


def warning_stage(registry: SensorRegistry, *, city: City | None = None,
                  catalogue: Catalogue | None = None, monitoring: Any = None) -> WarningStage:
    """The default catalogue's engine and an alarm book persisting to ``monitoring``
    (a :class:`rescity.store.monitoring.MonitoringStore`), restored from its events."""
    cat = catalogue or load_catalogue()
    engine = WarningEngine(cat.enabled(), registry, city)
    kwargs: dict[str, Any] = {"inhibit": cat.inhibit, "grouping": cat.grouping}
    if city is not None:
        kwargs["locate"] = city_locator(city)
    sink = None
    if monitoring is not None:
        sink = monitoring.append_alarm_events
        # a restarted worker continues the alarms it had: rebuild the book from its events
        book = AlarmBook.restore(stored_events(monitoring), **kwargs)
    else:
        book = AlarmBook(**kwargs)
    return WarningStage(engine, book, sink)


def stored_events(monitoring: Any) -> list[AlarmEvent]:
    """The alarm events kept in the store, in order, as :class:`AlarmEvent`."""
    return [AlarmEvent(alarm_id=r["alarm_id"], ts_ms=int(r["ts_ms"]), kind=EventKind(r["kind"]),
                       level_before=int(r["level_before"] or 0), level_after=int(r["level_after"] or 0),
                       value=float("nan") if r["value"] is None else float(r["value"]),
                       details=r["details"] or {}, model=r["model"], asset=r["asset_uid"])
            for r in monitoring.alarm_events()]
