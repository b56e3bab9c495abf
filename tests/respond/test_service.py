"""The response service on both backends: routing, dispatch, deadlines and tiered
escalation on an explicit clock, merge and link, citizen reports, metrics, the audit chain."""

from __future__ import annotations

import pytest

from rescity.model.incident import IncidentState, Tier
from rescity.respond.access import SYSTEM, AccessDenied
from rescity.respond.lifecycle import IllegalTransition
from rescity.service.respond import NotFound

from .conftest import CELLS, CITIZEN, CITIZEN2, COMMANDER, D1, D2, GAS_OP, T0, WATER_OP

MIN = 60_000
S = IncidentState


def gas_incident(svc, cell="D1-S1-G1", level=1, ts=T0):
    lon, lat = CELLS[cell]
    return svc.open_incident(COMMANDER, title="methane 2.1 %LEL in manhole M12", type="gas_leak",
                             level=level, ts_ms=ts, lon=lon, lat=lat, network="gas",
                             asset="gas:P12", models=["methane_manhole"])


def test_place_and_routing_by_network_and_street(svc):
    inc = gas_incident(svc)
    assert (inc.grid, inc.street, inc.district) == ("D1-S1-G1", "D1-S1", "D1")
    assert inc.due == {"acknowledge": T0 + 5 * MIN}  # red: acknowledge within 5 minutes
    inc = svc.act(COMMANDER, inc.id, "verify", T0 + MIN)
    inc = svc.act(COMMANDER, inc.id, "dispatch", T0 + 2 * MIN)
    # gas -> the gas company and the street's emergency station, in parallel
    assert inc.units == ["gas-company", "street-station:D1-S1"]
    assert inc.due == {"acknowledge": T0 + 7 * MIN, "arrive": T0 + 32 * MIN, "resolve": T0 + 242 * MIN}
    assert {n.unit for n in svc.outbox if n.kind == "dispatched"} == set(inc.units)
    bridge = svc.open_incident(COMMANDER, title="strain over threshold", type="bridge_overload",
                               level=2, ts_ms=T0, lon=CELLS["D2-S2-G2"][0], lat=CELLS["D2-S2-G2"][1],
                               network="bridge", dispatch=True)
    assert bridge.state == S.DISPATCHED
    assert bridge.units == ["municipal-engineering", "traffic-police"]


def test_the_whole_loop_by_the_people_who_do_it(svc):
    inc = gas_incident(svc)
    inc = svc.act(D1, inc.id, "verify", T0 + MIN)
    inc = svc.act(D1, inc.id, "dispatch", T0 + 2 * MIN)
    inc = svc.act(GAS_OP, inc.id, "accept", T0 + 3 * MIN)
    assert inc.accepted_by == ["gas-company"] and inc.state == S.ACCEPTED
    inc = svc.act(GAS_OP, inc.id, "arrive", T0 + 20 * MIN)
    inc = svc.act(GAS_OP, inc.id, "resolve", T0 + 80 * MIN, {"note": "valve closed, ventilated"})
    inc = svc.act(D1, inc.id, "review", T0 + 90 * MIN)
    inc = svc.act(D1, inc.id, "close", T0 + 91 * MIN)
    assert inc.state == S.CLOSED
    assert [e.action.value for e in inc.timeline] == [
        "create", "verify", "dispatch", "accept", "arrive", "resolve", "review", "close"]
    assert [e.actor for e in inc.timeline][1:] == ["d1-officer"] * 2 + ["gas-op"] * 3 + ["d1-officer"] * 2
    assert svc.tick(T0 + 10_000 * MIN) == []  # closed: no deadline runs
    m = svc.metrics(COMMANDER)
    assert m["units"]["gas-company"]["acknowledge"]["median_s"] == 60.0
    assert m["units"]["gas-company"]["arrive"]["median_s"] == 18 * 60.0
    assert m["models"]["methane_manhole"]["false_alarm_share"] == 0.0


def test_escalation_through_the_tiers_on_an_explicit_clock(svc):
    inc = gas_incident(svc)
    inc = svc.act(COMMANDER, inc.id, "verify", T0 + MIN)
    inc = svc.act(COMMANDER, inc.id, "dispatch", T0 + 2 * MIN)
    assert svc.tick(T0 + 6 * MIN) == []  # before the acknowledge deadline (T0 + 7 min)
    evs = svc.tick(T0 + 7 * MIN)  # nobody accepted: street -> district
    assert [e.action.value for e in evs] == ["deadline_missed", "escalate"]
    inc = svc.incident(COMMANDER, inc.id)
    assert inc.tier == Tier.DISTRICT and "district-emergency:D1" in inc.units
    assert inc.due["acknowledge"] == T0 + 12 * MIN  # the clock restarts at the escalation
    assert svc.tick(T0 + 8 * MIN) == []  # one escalation per missed deadline
    svc.tick(T0 + 12 * MIN)
    assert svc.incident(COMMANDER, inc.id).tier == Tier.CITY
    svc.tick(T0 + 17 * MIN)
    inc = svc.incident(COMMANDER, inc.id)
    assert inc.tier == Tier.SPECIALIST and "city-gas-rescue" in inc.units
    assert "city-command" in inc.units
    evs = svc.tick(T0 + 22 * MIN)  # top tier: recorded, notified, no further tier
    assert [e.action.value for e in evs] == ["deadline_missed"]
    assert any(n.kind == "deadline_missed" for n in svc.outbox)
    assert svc.tick(T0 + 23 * MIN) == []
    # accepting stops the acknowledge clock; the arrive clock (from the last escalation) runs on
    inc = svc.act(GAS_OP, inc.id, "accept", T0 + 24 * MIN)
    assert "acknowledge" not in inc.due and inc.due["arrive"] == T0 + (17 + 30) * MIN
    # every notification is on the chain: the gas company's inbox, and nothing for others
    inbox = svc.notifications(GAS_OP)
    assert {n["kind"] for n in inbox} == {"dispatched", "escalated", "deadline_missed"}
    assert all(n["unit"] == "gas-company" for n in inbox)
    assert svc.notifications(WATER_OP) == [] and svc.notifications(D2) == []
    assert {n["unit"] for n in svc.notifications(D1)} >= {"gas-company", "district-emergency:D1"}
    assert svc.verify_audit().ok


def test_operators_act_only_on_incidents_dispatched_to_their_unit(svc):
    inc = gas_incident(svc)
    svc.act(COMMANDER, inc.id, "verify", T0 + MIN)
    with pytest.raises(NotFound):  # the water operator does not even see a gas incident
        svc.act(WATER_OP, inc.id, "accept", T0 + 2 * MIN)
    with pytest.raises(AccessDenied, match="not dispatched to unit gas-company"):
        svc.act(GAS_OP, inc.id, "accept", T0 + 2 * MIN)
    with pytest.raises(NotFound):
        svc.act(D2, inc.id, "dispatch", T0 + 2 * MIN)
    with pytest.raises(IllegalTransition, match="cannot resolve"):
        svc.act(COMMANDER, inc.id, "resolve", T0 + 2 * MIN, {"note": "x"})
    with pytest.raises(IllegalTransition, match="by the platform"):
        svc.act(COMMANDER, inc.id, "deadline_missed", T0 + 2 * MIN, {"milestone": "arrive"})


def test_merge_duplicates_and_link_related(svc):
    a = gas_incident(svc)
    b = gas_incident(svc, ts=T0 + MIN)
    c = gas_incident(svc, cell="D1-S2-G1", ts=T0 + 2 * MIN)
    b = svc.act(D1, b.id, "merge", T0 + 3 * MIN, {"into": a.id})
    assert b.state == S.MERGED and b.merged_into == a.id
    a = svc.incident(COMMANDER, a.id)
    assert a.merged == [b.id]
    svc.act(D1, a.id, "link", T0 + 4 * MIN, {"other": c.id})
    assert svc.incident(COMMANDER, c.id).related == [a.id]
    assert svc.incident(COMMANDER, a.id).related == [c.id]
    d2 = gas_incident(svc, cell="D2-S1-G1", ts=T0 + 5 * MIN)
    with pytest.raises(NotFound):  # D1's officer cannot merge into another district's incident
        svc.act(D1, a.id, "merge", T0 + 6 * MIN, {"into": d2.id})


def test_false_alarm_share_per_model(svc):
    for k in range(4):
        inc = gas_incident(svc, ts=T0 + k * MIN)
        if k < 3:
            svc.act(D1, inc.id, "dismiss", T0 + (k + 1) * MIN, {"reason": "sensor fault"})
    m = svc.metrics(COMMANDER)["models"]["methane_manhole"]
    assert m["incidents"] == 4 and m["false_alarms"] == 3
    assert m["false_alarm_share"] == 1.0  # of the decided ones: 3 dismissed, 1 still open


def test_alarm_groups_open_and_update_incidents(svc):
    lon, lat = CELLS["D1-S2-G2"]
    alarms = [{"id": "A1", "model": "pressure_low", "asset": "water:J1", "network": "water",
               "level": 3, "lon": lon, "lat": lat}]
    inc = svc.from_alarm_group(group_id="IC-A1", alarms=alarms, ts_ms=T0)
    assert inc is not None and inc.state == S.DISPATCHED and inc.level == 3
    assert inc.units == ["water-company", "street-station:D1-S2"]
    alarms.append({"id": "A2", "model": "main_break", "asset": "water:P7", "network": "water",
                   "level": 2, "lon": lon, "lat": lat})
    inc2 = svc.from_alarm_group(group_id="IC-A1", alarms=alarms, ts_ms=T0 + MIN)
    assert inc2.id == inc.id and inc2.alarm_ids == ["A1", "A2"] and inc2.level == 2
    blue = [{"id": "B1", "model": "stuck", "asset": "water:J9", "network": "water", "level": 4,
             "lon": lon, "lat": lat}]
    assert svc.from_alarm_group(group_id="IC-B1", alarms=blue, ts_ms=T0) is None  # below auto level


def test_citizen_reports_dedup_follow_and_reply(svc):
    lon, lat = CELLS["D1-S1-G2"]
    r1 = svc.file_report(CITIZEN, text="smell of gas near the school gate", category="gas_leak",
                         lon=lon, lat=lat, contact="138-0000-0000", ts_ms=T0)
    assert r1["status"] == "new" and "incident" not in r1 and "contact" not in r1
    r2 = svc.file_report(CITIZEN2, text="gas smell", category="gas_leak", lon=lon + 0.0005,
                         lat=lat, ts_ms=T0 + MIN)  # ~28 m away: the same incident
    staff1 = svc.report(COMMANDER, r1["ref"])
    staff2 = svc.report(COMMANDER, r2["ref"])
    assert staff1["incident"] == staff2["incident"]
    inc = svc.incident(COMMANDER, staff1["incident"])
    assert inc.report_refs == [r1["ref"], r2["ref"]] and inc.reporter == CITIZEN.username
    far = svc.file_report(CITIZEN2, text="gas smell", category="gas_leak", lon=CELLS["D2-S2-G1"][0],
                          lat=CELLS["D2-S2-G1"][1], ts_ms=T0 + 2 * MIN)
    assert svc.report(COMMANDER, far["ref"])["incident"] != inc.id
    with pytest.raises(NotFound):  # a citizen sees only their own reports
        svc.report(CITIZEN, r2["ref"])
    svc.act(D1, inc.id, "reply", T0 + 5 * MIN, {"text": "A crew is on its way. 抢修人员正在赶来。", "to": r1["ref"]})
    svc.act(D1, inc.id, "verify", T0 + 6 * MIN)
    mine = svc.report(CITIZEN, r1["ref"])
    assert mine["status"] == "verified" and [r["text"] for r in mine["replies"]] == [
        "A crew is on its way. 抢修人员正在赶来。"]
    assert svc.report(CITIZEN2, r2["ref"])["replies"] == []  # addressed to r1 only
    assert [r["ref"] for r in svc.my_reports(CITIZEN)] == [r1["ref"]]
    with pytest.raises(ValueError, match="text"):
        svc.file_report(CITIZEN, text=" ", category="gas_leak", lon=lon, lat=lat, ts_ms=T0)
    with pytest.raises(ValueError, match="outside every jurisdiction"):
        svc.file_report(CITIZEN, text="x", category="gas_leak", lon=10.0, lat=10.0, ts_ms=T0)


def test_users_and_passwords(svc):
    svc.add_user(SYSTEM, username="d1", role="district_officer", password="s3cret!",
                 jurisdictions=["D1"], ts_ms=T0)
    assert svc.authenticate("d1", "s3cret!").jurisdictions == ("D1",)
    with pytest.raises(ValueError, match="wrong username or password"):
        svc.authenticate("d1", "nope")
    with pytest.raises(AccessDenied):
        svc.add_user(D1, username="x", role="commander", password="p", ts_ms=T0)
    with pytest.raises(ValueError, match="unknown code 'D9'"):
        svc.add_user(SYSTEM, username="x", role="district_officer", password="p",
                     jurisdictions=["D9"], ts_ms=T0)
    row = svc.rs.user_row("d1")
    assert "s3cret" not in row["password_hash"] and row["password_hash"].startswith("scrypt$")
    # the audit chain records the account, not the password
    recs = list(svc.rs.audit_records(entity="user"))
    assert recs and all("password" not in str(r.content()) for r in recs)


def test_audit_chain_covers_every_change(svc):
    inc = gas_incident(svc)
    svc.act(COMMANDER, inc.id, "verify", T0 + MIN)
    assert svc.verify_audit().ok and svc.verify_audit().records == 2
    assert [r["action"] for r in svc.audit_trail(COMMANDER, inc.id)] == ["create", "verify"]
