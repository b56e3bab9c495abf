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
