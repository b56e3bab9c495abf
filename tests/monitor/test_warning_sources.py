"""Extra transition sources of the warning stage: their transitions go through the same
alarm book (and its sink) as the engine's, judged on the pipeline's ingest clock."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Point

from rescity.model import Sensor
from rescity.monitor.alarms import AlarmBook
from rescity.monitor.batch import ReadingBatch
from rescity.monitor.decode import Decoded
from rescity.monitor.engine import Transition, TransitionKind, WarningEngine
from rescity.monitor.pipeline import Pipeline
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.warnings import WarningStage


class FakeSource:
    """Fires one alarm at the first ingest whose clock is past ``at_ms``."""

    def __init__(self, at_ms: int) -> None:
        self.at_ms, self.calls, self.done = at_ms, [], False

    def ingest(self, batch: ReadingBatch, now_ms: int) -> list[Transition]:
        self.calls.append((len(batch), now_ms))
        if self.done or now_ms < self.at_ms:
            return []
        self.done = True
        return [Transition("leak_model", "water:p1", "p1", self.at_ms, TransitionKind.FIRING, 0, 3, 7.5,
                           network="water", details={"pipe": "p1", "q_m3h": 7.5})]


class Sink:
    def __init__(self) -> None:
        self.events: list = []

    def write(self, ids, sensor, ts_ms, values, dead=(), events=(), alarms=()) -> int:
        self.events.extend(events)
        return len(sensor)


def test_a_source_s_transitions_go_through_the_alarm_book_in_the_batch_s_write():
    registry = SensorRegistry.from_sensors([Sensor(id="water.n1.pressure", asset="water:n1",
                                                   quantity="pressure", geometry=Point(0, 0))])
    src = FakeSource(at_ms=1_000_000)
    stage = WarningStage(WarningEngine([], registry), AlarmBook(), sources=[src])
    sink = Sink()
    pipe = Pipeline.build(registry, sink=sink, engine=stage)
    for k, now in enumerate((900_000, 1_200_000)):
        batch = ReadingBatch.of([0], [now - 60_000], [30.0 + k])
        res = pipe.ingest(Decoded(batch, []), now)
        assert src.calls[-1] == (1, now)  # the pipeline's clock, not the batch's newest reading
    assert [t.model for t in res.transitions] == ["leak_model"]
    kinds = [e.kind.value for e in sink.events if e.model == "leak_model"]
    assert kinds[0] == "opened" and "grouped" in kinds  # stored with the batch, grouped
    alarm, = [a for a in stage.book.alarms.values() if a.model == "leak_model"]
    assert alarm.asset == "water:p1" and alarm.level == 3


def test_without_a_clock_the_source_gets_the_batch_s_newest_timestamp():
    registry = SensorRegistry.from_sensors([Sensor(id="water.n1.pressure", asset="water:n1",
                                                   quantity="pressure", geometry=Point(0, 0))])
    src = FakeSource(at_ms=0)
    stage = WarningStage(WarningEngine([], registry), AlarmBook(), sources=[src])
    stage.process(ReadingBatch.of(np.array([0, 0]), np.array([5_000, 9_000]), np.array([1.0, 2.0])))
    assert src.calls == [(2, 9_000)]
