"""The demo's scripted day end to end through the response loop: the warnings become
incidents that are dispatched to the right units, escalated when the scripted crew is
late, handled and closed; citizens' reports join or open incidents; public warnings go
out as valid CAP and are cancelled; the audit chain is intact."""

from __future__ import annotations

import pytest
from lxml import etree

from rescity.demo.city import build_demo_city
from rescity.io.cap import read_cap
from rescity.model.incident import Action, IncidentSource, IncidentState, Tier
from rescity.respond.access import SYSTEM
from rescity.service.drill import play_scripted_day
from rescity.service.respond import ResponseService
from rescity.store.testing import make_test_store
from tests.respond.test_cap import _cap_xsd_path

pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("day")
    city = build_demo_city()
    store = make_test_store("sqlite", tmp)
    store.save_city(city)
    rep = play_scripted_day(store, city, warnings_dir=tmp / "warnings", maps_dir=tmp / "risk")
    svc = ResponseService(store)
    full = {i.id: svc.incident(SYSTEM, i.id) for i in rep.incidents}
    yield rep, full, tmp
    store.close()


def _of(full, type_):
    return sorted((i for i in full.values() if i.type == type_), key=lambda i: i.created_ms)


def test_each_scripted_event_becomes_an_incident_routed_to_its_units(day):
    rep, full, _ = day
    bridge, = _of(full, "bridge_overload")
    assert bridge.source == IncidentSource.ALARM and bridge.level == 1
    assert bridge.units[:2] == ["municipal-engineering", "traffic-police"]
    main = _of(full, "main_break")[0]
    assert main.units[0] == "water-company" and main.units[1].startswith("street-station:")
    assert "main_break" in main.models
    gas = _of(full, "sewer_gas")[0]
    # gas in a drainage manhole next to a gas main: gas company, drainage company, the street
    assert gas.units[:2] == ["gas-company", "drainage-company"] and gas.level == 1
    faults = _of(full, "sensor_fault")
    assert faults and all(f.level == 4 for f in faults)  # maintenance, not an emergency
    assert rep.audit_ok


def test_the_late_bridge_crew_escalates_and_everything_else_closes_at_its_tier(day):
    _, full, _ = day
    bridge, = _of(full, "bridge_overload")
    missed = [e for e in bridge.timeline if e.action == Action.DEADLINE_MISSED]
    assert missed and missed[0].data["milestone"] == "acknowledge"
    assert bridge.tier.rank >= Tier.DISTRICT.rank
    assert any(u.startswith("district-emergency:") for u in bridge.units)
    assert bridge.state == IncidentState.CLOSED
    for t in ("main_break", "sewer_gas", "sensor_fault"):
        for inc in _of(full, t):
            assert inc.state == IncidentState.CLOSED, (inc.id, inc.state)
            assert inc.tier == Tier.STREET, (inc.id, inc.tier)
            actions = [e.action.value for e in inc.timeline]
            assert actions[:3] == ["create", "verify", "dispatch"]
            assert [a for a in actions if a in ("accept", "arrive", "resolve", "review", "close")] == [
                "accept", "arrive", "resolve", "review", "close"]


def test_citizen_reports_join_and_open_incidents(day):
    rep, full, _ = day
    joined, new = rep.drill.reports
    gas = _of(full, "sewer_gas")[0]
    assert joined["ref"] in gas.report_refs
    cit = [i for i in full.values() if i.source == IncidentSource.CITIZEN]
    assert [i.report_refs for i in cit] == [[new["ref"]]]
    assert cit[0].type == "waterlogging" and cit[0].verified_ms is not None


def test_public_warnings_are_valid_cap_and_cancelled(day):
    rep, full, tmp = day
    xsd = etree.XMLSchema(etree.parse(str(_cap_xsd_path())))
    files = sorted((tmp / "warnings").glob("*.xml"))
    assert len(files) == len(rep.drill.publications) >= 4
    by_incident: dict[str, list] = {}
    for f in files:
        assert xsd.validate(etree.parse(str(f))), (f, xsd.error_log)
        w = read_cap(f.read_bytes())
        assert w.status.value == "Exercise"  # the demo city's division code is fictional
        by_incident.setdefault(w.incidents[0], []).append(w)
    for iid, ws in by_incident.items():
        ws.sort(key=lambda w: w.sent)
        assert ws[0].msg_type.value == "Alert" and ws[-1].msg_type.value == "Cancel"
        assert ws[0].identifier in [r.identifier for r in ws[-1].references]
        assert full[iid].state == IncidentState.CLOSED


def test_the_risk_map_changes_as_the_events_happen(day):
    rep, full, tmp = day
    levels = dict(rep.risk_levels)
    first, last = rep.risk_levels[0], rep.risk_levels[-1]
    red_peak = max(c["red"] for _, c in rep.risk_levels)
    assert first[1]["red"] < red_peak  # the day's events turn cells red
    # the bridge overload (08:30) re-grades the bridge's cell, and it comes back when the
    # alarm resolves and the incident closes
    bridge, = _of(full, "bridge_overload")
    changes = [(t, lv) for t, c, lv in rep.risk_changes]
    assert any(bridge.created_ms - 600_000 <= t <= bridge.created_ms + 600_000 for t, _ in changes)
    by_cell: dict[str, list[int]] = {}
    for _, code, lv in rep.risk_changes:
        by_cell.setdefault(code, []).append(lv)
    assert any(min(lvs) < lvs[-1] for lvs in by_cell.values())  # raised, then lowered again
    assert len(rep.risk_maps) == 3 and all(p.read_bytes()[:4] == b"\x89PNG" for p in rep.risk_maps)
    assert sum(levels[first[0]].values()) == sum(last[1].values())
