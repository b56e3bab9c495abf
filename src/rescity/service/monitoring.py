"""Use cases of monitoring: replay telemetry (the demo's scripted day, or a file) through
validation, the readings store and the warning engine; compose and run the ingestion
workers (MQTT, NATS JetStream); read dead letters and alarms."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rescity.model import City
from rescity.monitor.batch import MINUTE_MS
from rescity.monitor.pipeline import IngestResult, Pipeline
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.replay import ReplayStats, replay_arrays
from rescity.store.monitoring import MonitoringStore

SliceHook = Callable[[int, IngestResult], None]


@dataclass
class ReplayReport:
    """What a replay did: counts, dead letters by reason, the injected events (for a
    scripted day) and the alarm transitions the engine produced."""

    stats: ReplayStats
    dead_letters: dict[str, int]
    events: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)  # the warning stage's extra transition sources


SourcesFactory = Callable[[SensorRegistry], Sequence[Any]]


def make_pipeline(store: Any, city: City | None = None, *,
                  sources: SourcesFactory | None = None) -> Pipeline:
    """A pipeline over the store: registry from its sensors, and the warning engine with
    the default catalogue (its alarm book restored from the stored alarm events); each
    batch's readings, dead letters and alarm events go into the store in one transaction.

    ``sources``: given the registry, the extra transition sources of the warning stage
    (``ingest(batch, now_ms) -> list[Transition]``, e.g. :func:`rescity.service.leaks.demo_leak_source`),
    whose alarms go through the same alarm book and the same transaction."""
    sensors = list(city.sensors.values()) if city is not None else store.get_sensors()
    registry = SensorRegistry.from_sensors(sensors)
    mon = MonitoringStore(store.engine)
    engine = _engine(registry, city, mon, list(sources(registry)) if sources is not None else [])
    return Pipeline.build(registry, sink=mon, engine=engine)


RESTORE_PER_SENSOR = 16
"""Stored timestamps per sensor that seed a worker's validator (its ring of recent ones)."""


def worker_pipeline(store: Any, *, engine: bool = True,
                    restore_per_sensor: int = RESTORE_PER_SENSOR, leaks: bool | None = None,
                    cache_dir: Path | None = None) -> Pipeline:
    """The pipeline of an ingestion worker over ``store`` (a :class:`rescity.store.Store`).

    With ``engine``, :func:`make_pipeline` over the stored city (warning models select on
    asset kinds and places, so the city is loaded; a store with sensors but no city gets
    no engine, with a warning on stderr); without, registry and store only. The
    validator is seeded from the newest ``restore_per_sensor`` stored readings of every
    sensor (an indexed query), so a redelivered batch is recognised as duplicates.

    ``leaks`` (default: on unless ``$RESCITY_LEAK_MODEL`` is ``0``/``off``): with the
    engine, the model-based leak detector joins the warning stage when the city's water
    network has what it needs (:func:`rescity.service.leaks.worker_leak_source`; fitted
    on a simulated leak-free history, cached under ``cache_dir``), and is brought back
    to where the previous worker stopped: the open leak alarms of the restored alarm
    book are its known leaks and its 24 h window is re-primed from the stored readings
    (:func:`rescity.service.leaks.restore_leak_source`). The source is the warning
    stage's ``sources`` entry.
    """
    from rescity.store import NotFoundError

    pipe: Pipeline | None = None
    if engine:
        try:
            city = store.load_city()
        except NotFoundError as e:  # sensors and networks stored, no city: no engine
            print(f"warning: no warning engine: {e}", file=sys.stderr, flush=True)
        else:
            if leaks is None:
                leaks = os.environ.get("RESCITY_LEAK_MODEL", "1").strip().lower() not in ("0", "off", "no", "false")
            made: list[Any] = []

            def sources(registry: SensorRegistry) -> list[Any]:
                from .leaks import worker_leak_source

                src = worker_leak_source(city, registry, cache_dir=cache_dir) if leaks else None
                made.extend([src] if src is not None else [])
                return made

            pipe = make_pipeline(store, city, sources=sources)
            if made:
                from .leaks import restore_leak_source

                stage: Any = pipe.engine
                restore_leak_source(made[0], MonitoringStore(store.engine), stage.book.open_alarms(),
                                    pipe.registry)
    mon = MonitoringStore(store.engine)
    if pipe is None:
        pipe = Pipeline.build(SensorRegistry.from_sensors(store.get_sensors()), sink=mon)
    uids, ts = mon.latest(per_sensor=restore_per_sensor)
    pipe.restore(uids, ts)
    return pipe


@contextmanager
def open_worker_pipeline(db: str | None = None, engine: bool = True) -> Iterator[Pipeline]:
    """Open the store ``db`` (else ``$RESCITY_DATABASE_URL``, else the embedded SQLite
    file), yield :func:`worker_pipeline` over it, close the store on exit: the factory
    of :mod:`rescity.monitor.worker`."""
    from rescity.store import Store

    store = Store.open(db or os.environ.get("RESCITY_DATABASE_URL") or None)
    try:
        yield worker_pipeline(store, engine=engine)
    finally:
        store.close()


def ingest_main(argv: Sequence[str] | None = None) -> int:
    """``rescity ingest mqtt|nats|bridge ...``: run an ingestion worker with the pipeline
    composed here (:func:`open_worker_pipeline`); the exit status."""
    from rescity.monitor.worker import main

    return main(argv, factory=open_worker_pipeline)


def _engine(registry: SensorRegistry, city: City | None, mon: MonitoringStore,
            sources: Sequence[Any] = ()) -> Any:
    from rescity.monitor.warnings import warning_stage

    return warning_stage(registry, city=city, monitoring=mon, sources=sources)


def _replay(store: Any, pipe: Pipeline, sensors: list[str], ts: Any, values: Any,
            events: list[dict[str, Any]], on_slice: SliceHook | None, **kwargs: Any) -> ReplayReport:
    """Replay arrays through ``pipe``, collecting the engine's transitions."""
    transitions: list[Any] = []

    def hook(now: int, res: IngestResult) -> None:
        transitions.extend(res.transitions)
        if on_slice is not None:
            on_slice(now, res)

    stats = replay_arrays(pipe, sensors, ts, values, on_slice=hook, **kwargs)
    return ReplayReport(stats, MonitoringStore(store.engine).dead_letter_counts(), events, transitions)


def replay_scripted_day(store: Any, city: City, *, step_ms: int = 5 * MINUTE_MS,
                        on_slice: SliceHook | None = None, leaks: bool = True,
                        cache_dir: Path | None = None) -> ReplayReport:
    """Replay the demo city's scripted day (see :mod:`rescity.demo.day`).

    With ``leaks``, the model-based leak detector watches the water network as well
    (:func:`rescity.service.leaks.demo_leak_source`: fitted on a simulated leak-free
    history, cached under ``cache_dir``, default ``./.rescity/cache``); the source is
    in the report's ``sources``."""
    from rescity.demo.day import describe, scripted_day

    from .leaks import demo_leak_source

    day = scripted_day(city)
    events = sorted(describe(day), key=lambda e: e["start_ms"])
    made: list[Any] = []

    def sources(registry: SensorRegistry) -> list[Any]:
        made.extend([demo_leak_source(city, registry, cache_dir=cache_dir)] if leaks else [])
        return made

    rep = _replay(store, make_pipeline(store, city, sources=sources), day.sensors, day.ts_ms,
                  day.values, events, on_slice, step_ms=step_ms)
    rep.sources = made
    return rep


def replay_telemetry(store: Any, path: Path, *, step_ms: int = MINUTE_MS,
                     speed: float | None = None, on_slice: SliceHook | None = None) -> ReplayReport:
    """Replay a telemetry file (CSV, Parquet, JSON lines: sensor, ts, value)."""
    from rescity.monitor.decode import read_table

    sensors, ts, values = read_table(path)
    return _replay(store, make_pipeline(store), sensors, ts, values, [], on_slice,
                   step_ms=step_ms, speed=speed)


def dead_letters(store: Any, reason: str | None = None, limit: int = 50) -> dict[str, Any]:
    """Dead letters counted by reason, and the newest ones."""
    mon = MonitoringStore(store.engine)
    return {"counts": mon.dead_letter_counts(), "latest": mon.dead_letters(reason, limit)}
