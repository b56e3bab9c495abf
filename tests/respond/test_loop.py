"""Alarm groups become incidents through the stored alarm events (the contract between
monitoring and response), and the response worker follows them."""

from __future__ import annotations

import threading

from rescity.monitor.alarms import AlarmBook
from rescity.monitor.engine import Transition, TransitionKind
from rescity.monitor.specs import GroupingRule
from rescity.respond.access import SYSTEM
from rescity.service.loop import AlarmIncidentBridge, follow
from rescity.store.monitoring import MonitoringStore

from .conftest import CELLS, T0

MIN = 60_000
K = TransitionKind


def _book(store):
    mon = MonitoringStore(store.engine)
    book = AlarmBook(grouping=GroupingRule(), sink=lambda evs: mon.append_alarm_events(evs, []))
    return book, mon


def _tr(model, asset, kind, before, after, ts, cell="D1-S2-G1", network="water"):
    lon, lat = CELLS[cell]
    return Transition(model, asset, asset.split(":")[-1], ts, kind, before, after, 1.0,
                      network=network, lon=lon, lat=lat)


def test_a_group_opens_one_incident_and_grows_it(svc, store):
    book, mon = _book(store)
    bridge = AlarmIncidentBridge(svc, mon)
    book.ingest([_tr("pressure_low", "water:J1", K.FIRING, 0, 3, T0)])
    res = bridge.step(T0)
    (inc,) = res.incidents
    assert inc.type == "main_break" and inc.level == 3 and inc.state.value == "dispatched"
    assert inc.units == ["water-company", "street-station:D1-S2"]
    # a second alarm nearby joins the group: the same incident, raised to orange
    book.ingest([_tr("main_break", "water:P7", K.FIRING, 0, 2, T0 + MIN)])
    res = bridge.step(T0 + MIN)
    (inc2,) = res.incidents
    assert inc2.id == inc.id and inc2.level == 2 and len(inc2.alarm_ids) == 2
    assert bridge.step(T0 + 2 * MIN).incidents == []  # nothing new
    # a fresh bridge (a restarted worker) reads the same events and opens nothing twice
    again = AlarmIncidentBridge(svc, mon).step(T0 + 3 * MIN)
    assert [i.id for i in again.incidents] == [inc.id]
    assert len(svc.incidents(SYSTEM)) == 1


def test_blue_groups_wait_but_sensor_faults_open_maintenance_jobs(svc, store):
    book, mon = _book(store)
    bridge = AlarmIncidentBridge(svc, mon)
    book.ingest([_tr("pressure_high", "water:J3", K.FIRING, 0, 4, T0)])
    assert bridge.step(T0).incidents == []  # blue, below the automatic level
    book.ingest([_tr("sensor_silent", "water:J9", K.FIRING, 0, 2, T0, cell="D2-S1-G1")])
    (inc,) = bridge.step(T0 + MIN).incidents
    assert inc.type == "sensor_fault" and inc.level == 4 and inc.units == ["water-company"]


def test_follow_runs_until_stopped(svc, store):
    book, mon = _book(store)
    book.ingest([_tr("bridge_deflection", "bridge:B1", K.FIRING, 0, 1, T0, network="bridge")])
    stop = threading.Event()
    seen = []

    def on_step(res):
        seen.append(res)
        stop.set()

    steps = follow(store, interval_s=0.01, stop=stop, clock=lambda: T0 + MIN, on_step=on_step)
    assert steps == 1 and [i.type for i in seen[0].incidents] == ["bridge_overload"]
    assert seen[0].incidents[0].units == ["municipal-engineering", "traffic-police"]


def _at(model, asset, kind, before, after, ts, lon, lat):
    return Transition(model, asset, asset.split(":")[-1], ts, kind, before, after, 1.0,
                      network="water", lon=lon, lat=lat)


def test_an_alarm_between_two_candidates_joins_the_nearest(store):
    mon = MonitoringStore(store.engine)
    book = AlarmBook(grouping=GroupingRule(distance_m=800, same_jurisdiction=False),
                     sink=lambda evs: mon.append_alarm_events(evs, []))
    lon0, lat0 = 24.94, 60.17
    dlon = 100 / (111_320 * 0.4986)  # 100 m east at 60.17 N
    book.ingest([_at("leak_model", "water:p467", K.FIRING, 0, 4, T0, lon0, lat0)])  # older, 700 m west
    book.ingest([_at("pressure_drop_rate", "water:n1", K.FIRING, 0, 4, T0 + MIN, lon0 + 10 * dlon, lat0)])
    # within reach of both candidates: it joins the one beside it (300 m), not the older one
    book.ingest([_at("main_break", "water:p37", K.FIRING, 0, 1, T0 + 2 * MIN, lon0 + 7 * dlon, lat0)])
    groups = {e.alarm_id.split("@")[0]: e.details["incident"] for e in book.events if e.kind == "grouped"}
    assert groups["main_break"] == groups["pressure_drop_rate"] != groups["leak_model"]


def test_a_closed_groups_still_firing_alarms_open_no_second_incident(svc, store):
    from rescity.model.incident import Action

    book, mon = _book(store)
    bridge = AlarmIncidentBridge(svc, mon)
    book.ingest([_tr("pressure_low", "water:J1", K.FIRING, 0, 2, T0)])
    (inc,) = bridge.step(T0).incidents
    for i, act in enumerate((Action.ACCEPT, Action.ARRIVE, Action.RESOLVE, Action.REVIEW, Action.CLOSE)):
        svc.act(SYSTEM, inc.id, act, T0 + (i + 1) * MIN, {"note": "made safe"} if act == Action.RESOLVE else None)
    # the alarm still fires and eases: the closed incident's, not a new one
    book.ingest([_tr("pressure_low", "water:J1", K.LEVEL, 2, 3, T0 + 10 * MIN)])
    assert bridge.step(T0 + 10 * MIN).incidents == []
    # it gets worse than the incident was: a new incident
    book.ingest([_tr("pressure_low", "water:J1", K.LEVEL, 3, 1, T0 + 20 * MIN)])
    (again,) = bridge.step(T0 + 20 * MIN).incidents
    assert again.id != inc.id and again.level == 1
