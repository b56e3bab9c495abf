"""The warning stage of the pipeline: the engine's transitions, and those of extra
transition sources (e.g. the leak detector's live face, :class:`~rescity.monitor.leakwatch.LeakWatch`),
go through the alarm book (lifecycle, dedup, grouping, inhibition, silences) and every
alarm event to a sink."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rescity.model import City

from .alarms import AlarmBook, AlarmEvent, EventKind, city_locator
from .batch import ReadingBatch
from .engine import Transition, WarningEngine
from .registry import SensorRegistry
from .specs import Catalogue, load_catalogue


class TransitionSource(Protocol):
    """A model outside the vectorised engine that turns reading batches into alarm
    transitions, with its own state and clock handling (e.g. ``LeakWatch``).

    ``ingest(batch, now_ms)``: the batch's readings (SI, registry indices) and the
    ingest clock ``now_ms`` (ms UTC); returns the transitions it produced, any
    ``ts_ms`` (a source may report a condition found in rows it closed only now)."""

    def ingest(self, batch: ReadingBatch, now_ms: int) -> list[Transition]: ...


class WarningStage:
    """Engine + extra transition sources + alarm book, as the pipeline's ``engine``.

    ``process`` evaluates a batch, then ticks the time-driven models (silence, pending
    durations) at the batch's newest timestamp, then feeds the batch to every
    ``sources`` entry (:class:`TransitionSource`) at ``now_ms`` (the pipeline's ingest
    clock; without one, the batch's newest timestamp), and hands all the transitions to
    the alarm book in one call, so a source's alarms get the same dedup, inhibition,
    grouping into incident candidates and storage (in the batch's transaction) as the
    engine's; ``sink`` receives the alarm events and the alarms they touched.
    """

    wants_now = True  # the pipeline passes its ingest clock to process(batch, now_ms=...)

    def __init__(self, engine: WarningEngine, book: AlarmBook,
                 sink: Callable[[list[AlarmEvent], list[Any]], None] | None = None,
                 sources: Sequence[TransitionSource] = ()) -> None:
        self.engine = engine
        self.book = book
        self.sink = sink
        self.sources = list(sources)
        self.events: list[AlarmEvent] = []

    def process(self, batch: ReadingBatch, now_ms: int | None = None) -> list[Transition]:
        """Evaluate ``batch``; ``now_ms`` (ms UTC) is the clock the sources judge by."""
        trs = self.engine.process(batch)
        if len(batch):
            trs += self.engine.tick(int(batch.ts.max()))
        now = now_ms if now_ms is not None else (int(batch.ts.max()) if len(batch) else None)
        if now is not None:
            for src in self.sources:
                trs += src.ingest(batch, int(now))
        events = self.book.ingest(trs)
        if events:
            self.events.extend(events)
            if self.sink is not None:
                touched = {e.alarm_id for e in events}
                self.sink(events, [self.book.get(a) for a in sorted(touched)])
        return trs


def warning_stage(registry: SensorRegistry, *, city: City | None = None,
                  catalogue: Catalogue | None = None, monitoring: Any = None,
                  sources: Sequence[TransitionSource] = ()) -> WarningStage:
    """The default catalogue's engine, the extra transition ``sources`` and an alarm book
    persisting to ``monitoring`` (a :class:`rescity.store.monitoring.MonitoringStore`),
    restored from its events."""
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
    return WarningStage(engine, book, sink, sources)


def stored_events(monitoring: Any) -> list[AlarmEvent]:
    """The alarm events kept in the store, in order, as :class:`AlarmEvent`."""
    return [AlarmEvent(alarm_id=r["alarm_id"], ts_ms=int(r["ts_ms"]), kind=EventKind(r["kind"]),
                       level_before=int(r["level_before"] or 0), level_after=int(r["level_after"] or 0),
                       value=float("nan") if r["value"] is None else float(r["value"]),
                       details=r["details"] or {}, model=r["model"], asset=r["asset_uid"])
            for r in monitoring.alarm_events()]
