"""The dashboard's API: the twin's layers behind sign-in, the open alarms and the live
stream (server-sent events), each filtered by the caller's scope; the actions a caller may
take on an incident."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from rescity.service.live import Cursor
from rescity.store.testing import backend_params

from .conftest import CELLS, T0, make_api

pytestmark = pytest.mark.xdist_group("api-live")


def _alarm(mon, aid, model, asset, network, cell, ts, level=2, kind="opened", state="firing"):
    lon, lat = CELLS[cell]
    ev = NS(alarm_id=aid, model=model, asset=asset, ts_ms=ts, kind=kind, level_before=0, level_after=level,
            value=1.0, details={"network": network, "lon": lon, "lat": lat, "jurisdiction": cell, "state": state})
    row = NS(id=aid, model=model, asset=asset, state=state, level=level, opened_ms=ts, updated_ms=ts)
    mon.append_alarm_events([ev], [row])


def _events(text):
    """(event, data) pairs of an SSE body."""
    import json

    out = []
    for block in text.strip().split("\n\n"):
        ev = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        out.append((ev, data))
    return out


@pytest.fixture(params=backend_params())
def world(request, tmp_path, monkeypatch):
    monkeypatch.setenv("RESCITY_SECRET", "test-secret")
    app, client, tokens, clock, store = make_api(tmp_path, request.param)
    from rescity.store.monitoring import MonitoringStore

    mon = MonitoringStore(store.engine)
    yield app, client, tokens, clock, mon
    store.close()


def test_twin_layers_need_a_signed_in_staff_member(world):
    _, client, tokens, _, _ = world
    staff_only = ["/api/info", "/api/networks", "/api/facilities/geojson", "/api/sensors/geojson",
                  "/api/alarms", "/api/models"]
    for path in staff_only + ["/api/jurisdictions/geojson", "/api/stream?once=true"]:
        assert client.get(path).status_code == 401, path
    for path in staff_only:
        r = client.get(path, headers=tokens["li"])
        assert r.status_code == 403 and "may not" in r.json()["detail"], path
        assert client.get(path, headers=tokens["d1"]).status_code == 200, path
    r = client.get("/api/jurisdictions/geojson?level=district", headers=tokens["li"])
    assert r.status_code == 200 and {f["properties"]["code"] for f in r.json()["features"]} == {"D1", "D2"}
    # served once, then 304 on its ETag
    r2 = client.get("/api/jurisdictions/geojson?level=district", headers={**tokens["li"], "If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304
    assert client.get("/api/map/networks/nope", headers=tokens["chief"]).status_code == 404
    assert client.get("/api/jurisdictions/geojson?level=planet", headers=tokens["chief"]).status_code == 422


def test_models_are_labelled_in_both_languages(world):
    _, client, tokens, _, _ = world
    ms = {m["name"]: m for m in client.get("/api/models", headers=tokens["chief"]).json()}
    assert ms["main_break"]["title"] and ms["main_break"]["title_zh"]


def test_open_alarms_and_the_stream_follow_each_callers_scope(world):
    _, client, tokens, clock, mon = world
    start = client.get("/api/stream?once=true", headers=tokens["chief"])
    assert start.status_code == 200 and start.headers["content-type"].startswith("text/event-stream")
    evs = _events(start.text)
    assert evs[0][0] == "clock" and evs[0][1]["now_ms"] == T0
    cursor = start.text.split("id: ")[1].split("\n")[0]
    assert Cursor.parse(cursor) is not None
    _alarm(mon, "a-gas", "methane_gas_chamber", "gas:v1", "gas", "D1-S1-G1", T0 + 1000)
    _alarm(mon, "a-water", "pressure_low", "water:n1", "water", "D2-S2-G2", T0 + 2000, level=1)

    def seen(user):
        r = client.get("/api/alarms", headers=tokens[user])
        assert r.status_code == 200
        return {a["alarm"] for a in r.json()}

    assert seen("chief") == seen("audit") == {"a-gas", "a-water"}
    assert seen("d1") == {"a-gas"} and seen("d2") == {"a-water"}
    assert seen("gasop") == {"a-gas"} and seen("waterop") == {"a-water"}
    assert seen("grid") == {"a-gas"}  # D1-S1 holds D1-S1-G1
    got = {a["alarm"]: a for a in client.get("/api/alarms", headers=tokens["chief"]).json()}
    assert got["a-water"]["colour"] == "red" and got["a-water"]["colour_zh"] == "红色"

    def stream(user, frm=cursor):
        r = client.get(f"/api/stream?once=true&cursor={frm}", headers=tokens[user])
        assert r.status_code == 200
        return [(e, d) for e, d in _events(r.text) if e != "clock"]

    assert {d["alarm"] for e, d in stream("chief") if e == "alarm"} == {"a-gas", "a-water"}
    assert {d["alarm"] for e, d in stream("d2") if e == "alarm"} == {"a-water"}
    assert stream("li") == []  # a citizen's stream carries no warnings
    # an incident action comes through to those who see the incident, with its new state
    lon, lat = CELLS["D1-S1-G1"]
    inc = client.post("/api/incidents", headers=tokens["chief"], json={
        "title": "gas in manhole", "type": "gas_leak", "level": 2, "lon": lon, "lat": lat, "network": "gas"}).json()
    r = client.post(f"/api/incidents/{inc['id']}/actions/verify", headers=tokens["d1"], json={"note": "seen"})
    assert r.status_code == 200 and r.json()["state"] == "verified"
    assert "dispatch" in r.json()["my_actions"] and "accept" not in r.json()["my_actions"]
    d1 = [d for e, d in stream("d1") if e == "incident"]
    assert d1 and d1[-1]["incident"]["id"] == inc["id"] and d1[-1]["incident"]["state"] == "verified"
    assert [d for e, d in stream("d2") if e == "incident"] == []
    # resuming from the last id answers only what is newer
    last = client.get(f"/api/stream?once=true&cursor={cursor}", headers=tokens["chief"])
    newest = last.text.strip().split("\n\n")[-1].split("id: ")[1].split("\n")[0]
    assert stream("chief", newest) == []
    # a malformed cursor is a 422 naming it, not a 500
    r = client.get("/api/stream?once=true", headers={**tokens["chief"], "Last-Event-ID": "x.y"})
    assert r.status_code == 422 and "cursor" in r.json()["detail"]


def test_the_incident_answer_says_which_actions_are_the_callers(world):
    _, client, tokens, _, _ = world
    lon, lat = CELLS["D2-S2-G2"]
    inc = client.post("/api/incidents", headers=tokens["chief"], json={
        "title": "main break", "type": "main_break", "level": 2, "lon": lon, "lat": lat, "network": "water"}).json()
    mine = {u: client.get(f"/api/incidents/{inc['id']}", headers=tokens[u]).json().get("my_actions")
            for u in ("chief", "d2", "waterop", "audit")}
    assert "verify" in mine["chief"] and "verify" in mine["d2"]
    assert mine["audit"] == [] and "verify" not in mine["waterop"]
    assert client.get(f"/api/incidents/{inc['id']}", headers=tokens["d1"]).status_code == 404
