"""Alarm lifecycle: identity, dedupe, escalation, acknowledgement, silences, inhibition,
grouping into incident candidates, and restoring from events."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rescity.monitor.alarms import AlarmBook, AlarmEvent, AlarmState, EventKind, IllegalTransition
from rescity.monitor.engine import Transition, TransitionKind
from rescity.monitor.specs import GroupingRule, InhibitRule, SilenceRule

C = (24.9443, 60.1716)
LV = (0, 4, 3, 2, 1)


def tr(model: str, asset: str, ts: int, kind: str, before: int, after: int, *, sensor: str | None = None,
       network: str = "water", dx_m: float = 0.0, details: dict | None = None) -> Transition:
    return Transition(model, asset, sensor or f"{asset}.s", ts, TransitionKind(kind), before, after, 1.0, 1.0,
                      network, C[0] + dx_m / 55_600.0, C[1], details or {})


def test_a_repeated_trigger_updates_the_alarm_and_never_creates_another():
    book = AlarmBook()
    book.ingest([tr("p_low", "w:1", 0, "pending", 0, 4)])
    book.ingest([tr("p_low", "w:1", 60_000, "firing", 4, 3)])
    book.ingest([tr("p_low", "w:1", 120_000, "level", 3, 1)])
    book.ingest([tr("p_low", "w:1", 180_000, "level", 1, 2)])
    assert len(book.alarms) == 1
    a = book.open_alarm("p_low", "w:1")
    assert a is not None and a.state == AlarmState.FIRING and a.level == 2
    kinds = [e.kind for e in book.events if e.alarm_id == a.id]
    assert kinds == [EventKind.OPENED, EventKind.FIRED, EventKind.GROUPED, EventKind.ESCALATED, EventKind.DEESCALATED]
    book.ingest([tr("p_low", "w:1", 240_000, "resolved", 2, 0)])
    assert a.state == AlarmState.RESOLVED and book.open_alarm("p_low", "w:1") is None


def test_a_trigger_soon_after_resolution_reopens_later_ones_open_a_new_alarm():
    book = AlarmBook(reopen_window_s=600)
    book.ingest([tr("m", "w:1", 0, "firing", 0, 3), tr("m", "w:1", 60_000, "resolved", 3, 0)])
    book.ingest([tr("m", "w:1", 120_000, "firing", 0, 2)])
    assert len(book.alarms) == 1 and book.events[-1].kind in (EventKind.REOPENED, EventKind.GROUPED)
    book.ingest([tr("m", "w:1", 180_000, "resolved", 2, 0), tr("m", "w:1", 2_000_000, "firing", 0, 4)])
    assert len(book.alarms) == 2


def test_acknowledgement_is_recorded_refused_twice_and_cleared_by_escalation():
    seen: list[AlarmEvent] = []
    book = AlarmBook(sink=seen.extend)
    book.ingest([tr("m", "w:1", 0, "firing", 0, 4)])
    a = book.open_alarm("m", "w:1")
    assert a is not None
    book.acknowledge(a.id, "duty officer Li", 10_000, "checking")
    assert (a.acknowledged_by, a.acknowledged_ms) == ("duty officer Li", 10_000)
    with pytest.raises(IllegalTransition, match="already acknowledged"):
        book.acknowledge(a.id, "someone", 11_000)
    book.ingest([tr("m", "w:1", 20_000, "level", 4, 2)])
    assert a.acknowledged_by is None  # the more severe alarm needs a new acknowledgement
    book.acknowledge(a.id, "duty officer Li", 30_000)
    book.ingest([tr("m", "w:1", 40_000, "resolved", 2, 0)])
    with pytest.raises(IllegalTransition, match="resolved"):
        book.acknowledge(a.id, "late", 50_000)
    assert seen == book.events


def test_main_break_inhibits_the_low_pressure_alarms_of_its_members():
    book = AlarmBook(inhibit=[InhibitRule(source="main_break", target="p_low", scope="members")])
    book.ingest([tr("p_low", "w:1", 0, "firing", 0, 3), tr("p_low", "w:2", 0, "firing", 0, 3),
                 tr("p_low", "w:9", 0, "firing", 0, 3, dx_m=5000)])
    book.ingest([tr("main_break", "w:1", 60_000, "firing", 0, 2, sensor="w:1.s",
                    details={"members": ["w:1", "w:2"]})])
    muted = {a.asset for a in book.open_alarms() if a.muted}
    assert muted == {"w:1", "w:2"}
    book.ingest([tr("main_break", "w:1", 120_000, "resolved", 2, 0, sensor="w:1.s")])
    assert not any(a.muted for a in book.open_alarms())
    reasons = [(e.kind, e.details["reason"].split("@")[0]) for e in book.events if e.kind in (EventKind.MUTED, EventKind.UNMUTED)]
    assert reasons == [(EventKind.MUTED, "inhibit:main_break")] * 2 + [(EventKind.UNMUTED, "inhibit:main_break")] * 2


def test_silences_and_maintenance_windows_mute_matching_alarms_for_their_time():
    book = AlarmBook()
    book.add_silence(SilenceRule(id="works-1", kind="maintenance", matchers=[{"network": "gas*"}],
                                 start_ms=0, end_ms=3_600_000, created_by="gas co."), 0)
    book.ingest([tr("methane", "gas:v1", 1_000, "firing", 0, 3, network="gas"),
                 tr("p_low", "w:1", 1_000, "firing", 0, 3)])
    gas = book.open_alarm("methane", "gas:v1")
    water = book.open_alarm("p_low", "w:1")
    assert gas is not None and water is not None
    assert gas.muted_by == {"maintenance:works-1"} and not water.muted
    assert gas.incident is None and water.incident is not None  # muted alarms make no incident
    book.tick(3_600_000)
    assert not gas.muted and gas.incident is not None
    with pytest.raises(IllegalTransition):
        book.remove_silence("nope", 0)


def test_firing_alarms_close_in_place_time_and_network_fold_into_one_incident_candidate():
    book = AlarmBook(grouping=GroupingRule(window_s=1800, distance_m=500, same_network=True, same_jurisdiction=False))
    book.ingest([tr("p_low", "w:1", 0, "firing", 0, 3),
                 tr("p_low", "w:2", 60_000, "firing", 0, 2, dx_m=300),
                 tr("p_low", "w:3", 60_000, "firing", 0, 2, dx_m=5000),
                 tr("methane", "d:1", 60_000, "firing", 0, 2, network="drainage", dx_m=100),
                 tr("p_low", "w:4", 4_000_000, "firing", 0, 2, dx_m=200)])
    inc = {a.asset: a.incident for a in book.open_alarms()}
    assert inc["w:1"] == inc["w:2"]
    assert len({inc["w:1"], inc["w:3"], inc["d:1"], inc["w:4"]}) == 4
    assert book.incidents[inc["w:1"]].level == 2


def test_a_restored_book_continues_the_same_alarms():
    book = AlarmBook(inhibit=[InhibitRule(source="main_break", target="p_low")])
    book.add_silence(SilenceRule(id="s1", matchers=[{"model": "p_*", "asset": "w:7"}], start_ms=0, end_ms=10**9), 0)
    book.ingest([tr("p_low", "w:1", 0, "pending", 0, 4), tr("p_low", "w:7", 0, "firing", 0, 4)])
    book.ingest([tr("p_low", "w:1", 60_000, "firing", 4, 3)])
    book.acknowledge(book.open_alarms()[0].id, "op", 70_000)
    again = AlarmBook.restore(book.events, inhibit=book.inhibit)
    assert snapshot(again) == snapshot(book)
    again.ingest([tr("p_low", "w:1", 120_000, "level", 3, 4), tr("p_low", "w:1", 180_000, "resolved", 4, 0)])
    assert len(again.alarms) == 2 and again.open_alarm("p_low", "w:1") is None


def snapshot(book: AlarmBook) -> dict:
    return {
        aid: (a.state, a.level, a.acknowledged_by, sorted(a.muted_by), a.incident, a.sources, a.fired_ms)
        for aid, a in book.alarms.items()
    } | {"silences": sorted(book.silences), "incidents": {k: sorted(v.alarm_ids) for k, v in book.incidents.items()}}


# -- the lifecycle as a state machine ---------------------------------------------------------------------
MODELS = ["p_low", "main_break"]
ASSETS = ["w:1", "w:2"]
SENSORS = ["a", "b"]  # two sensors of one model may sit on one asset


class Lifecycle(RuleBasedStateMachine):
    """Random legal engine streams plus random human actions; illegal actions are refused."""

    def __init__(self) -> None:
        super().__init__()
        self.book = AlarmBook(inhibit=[InhibitRule(source="main_break", target="p_low", scope="same_asset")],
                              reopen_window_s=120)
        self.now = 0
        self.src: dict[tuple[str, str, str], tuple[str, int]] = {}  # (model, asset, sensor) -> (state, sev)

    @rule(m=st.sampled_from(MODELS), a=st.sampled_from(ASSETS), s=st.sampled_from(SENSORS),
          sev=st.integers(0, 4), fire=st.booleans(), dt=st.integers(0, 200_000))
    def engine_step(self, m, a, s, sev, fire, dt):
        self.now += dt
        state, cur = self.src.get((m, a, s), ("none", 0))
        if cur == 0 and sev == 0:
            return
        if cur == 0:
            kind = "firing" if fire else "pending"
        elif sev == 0:
            kind = "resolved"
        elif state == "pending" and fire:
            kind = "firing"
        elif sev != cur:
            kind = "level"
        else:
            return
        self.book.ingest([Transition(m, a, f"{a}.{s}", self.now, TransitionKind(kind), LV[cur], LV[sev], 1.0,
                                     1.0, "water", C[0], C[1])])
        if sev == 0:
            self.src.pop((m, a, s), None)
        else:
            self.src[(m, a, s)] = ("firing" if kind == "firing" or state == "firing" else "pending", sev)
        # an engine condition that is active has an open alarm (unless a person cleared it)
        if sev > 0 and kind in ("pending", "firing"):
            assert self.book.open_alarm(m, a) is not None

    @rule(data=st.data(), who=st.sampled_from(["", "op1"]))
    def acknowledge(self, data, who):
        if not self.book.alarms:
            return
        aid = data.draw(st.sampled_from(sorted(self.book.alarms)))
        a = self.book.alarms[aid]
        legal = a.is_open and a.acknowledged_by is None and who != ""
        if legal:
            self.book.acknowledge(aid, who, self.now)
            assert a.acknowledged_by == who
        else:
            n = len(self.book.events)
            with pytest.raises(IllegalTransition):
                self.book.acknowledge(aid, who, self.now)
            assert len(self.book.events) == n  # a refused request leaves no trace of change

    @rule(data=st.data())
    def clear(self, data):
        if not self.book.alarms:
            return
        aid = data.draw(st.sampled_from(sorted(self.book.alarms)))
        a = self.book.alarms[aid]
        if a.is_open:
            self.book.clear(aid, "op1", self.now, "false alarm")
            assert a.state == AlarmState.RESOLVED
            for k in [k for k in self.src if (k[0], k[1]) == a.key]:
                self.src.pop(k)  # the engine's later transitions of that condition are ignored
        else:
            with pytest.raises(IllegalTransition):
                self.book.clear(aid, "op1", self.now)

    @rule(dt=st.integers(0, 10_000), length=st.integers(1, 500_000))
    def silence(self, dt, length):
        self.now += dt
        sid = f"s{len(self.book.events)}"
        self.book.add_silence(SilenceRule(id=sid, matchers=[{"asset": "w:2"}], start_ms=self.now,
                                          end_ms=self.now + length), self.now)

    @rule(dt=st.integers(0, 600_000))
    def tick(self, dt):
        self.now += dt
        self.book.tick(self.now)

    @invariant()
    def at_most_one_open_alarm_per_identity(self):
        keys = [a.key for a in self.book.alarms.values() if a.is_open]
        assert len(keys) == len(set(keys))

    @invariant()
    def states_are_consistent(self):
        for a in self.book.alarms.values():
            assert a.state in AlarmState
            if a.is_open:
                assert 1 <= a.level <= 4
                assert a.resolved_ms is None
                if a.state == AlarmState.FIRING:
                    assert a.fired_ms is not None
            else:
                assert not a.muted_by
        times = [e.ts_ms for e in self.book.events]
        assert times == sorted(times)

    @invariant()
    def restoring_from_events_gives_the_same_book(self):
        again = AlarmBook.restore(self.book.events, inhibit=self.book.inhibit, reopen_window_s=120)
        assert snapshot(again) == snapshot(self.book)


Lifecycle.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
TestLifecycle = Lifecycle.TestCase


def test_events_carry_identity_and_are_json_friendly():
    import json

    book = AlarmBook()
    evs = book.ingest([tr("m", "w:1", 0, "firing", 0, 1)])
    for e in evs:
        assert e.model == "m" and e.asset == "w:1" and e.alarm_id
        json.dumps(e.details, allow_nan=True)
    assert not math.isnan(evs[0].value)
