"""Use cases of monitoring: replay telemetry (the demo's scripted day, or a file) through
validation, the readings store and the warning engine; read dead letters and alarms."""

from __future__ import annotations

from collections.abc import Callable
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


def make_pipeline(store: Any, city: City | None = None) -> Pipeline:
    """A pipeline over the store: registry from its sensors, readings and dead letters
    into it, and the warning engine with the default catalogue when it is available."""
    sensors = list(city.sensors.values()) if city is not None else store.get_sensors()
    registry = SensorRegistry.from_sensors(sensors)
    mon = MonitoringStore(store.engine)
    engine = _engine(registry, city, mon)
    return Pipeline.build(registry, sink=mon, engine=engine)


def _engine(registry: SensorRegistry, city: City | None, mon: MonitoringStore) -> Any:
    from rescity.monitor.warnings import warning_stage

    return warning_stage(registry, city=city, monitoring=mon)


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
                        on_slice: SliceHook | None = None) -> ReplayReport:
    """Replay the demo city's scripted day (see :mod:`rescity.demo.day`)."""
    from rescity.demo.day import describe, scripted_day

    day = scripted_day(city)
    events = sorted(describe(day), key=lambda e: e["start_ms"])
    return _replay(store, make_pipeline(store, city), day.sensors, day.ts_ms, day.values, events,
                   on_slice, step_ms=step_ms)


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
