"""The risk API: the map for a map view, with details only in the caller's jurisdictions;
re-grading and hidden hazards by role."""

from __future__ import annotations

import pytest

from rescity.respond.access import SYSTEM

from .conftest import CELLS, make_api

pytestmark = pytest.mark.xdist_group("api-risk")

CSV = """id,name,hazard,lon,lat,likelihood,consequence
main-d1,Old main in D1,main_break,{a},5,5
pass-d2,Underpass in D2,waterlogging,{b},4,3
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("RESCITY_SECRET", "test-secret")
    tmp = tmp_path_factory.mktemp("risk")
    app, client, tokens, clock, store = make_api(tmp)
    a, b = CELLS["D1-S1-G1"], CELLS["D2-S2-G2"]
    f = tmp / "reg.csv"
    f.write_text(CSV.format(a=f"{a[0]},{a[1]}", b=f"{b[0]},{b[1]}"))
    from rescity.service.risk import RiskService

    svc = app.state.risk = RiskService(store, response=app.state.response)
    assert svc.import_register(SYSTEM, f, ts_ms=clock())[1] == []
    yield client, tokens, clock
    store.close()
    mp.undo()


def _props(client, tokens, user, **q):
    r = client.get("/api/risk/cells", headers=tokens[user], params=q)
    assert r.status_code == 200, r.text
    return {f["properties"]["code"]: f["properties"] for f in r.json()["features"]}


@pytest.mark.parametrize("user", ["chief", "audit", "d1", "d2", "grid", "gasop", "li"])
def test_details_only_in_the_callers_jurisdictions(world, user):
    client, tokens, _ = world
    cells = _props(client, tokens, user)
    assert len(cells) == 8 and cells["D1-S1-G1"]["level"] == "red"
    sees = {"chief": {"D1", "D2"}, "audit": {"D1", "D2"}, "d1": {"D1"}, "d2": {"D2"}, "grid": {"D1-S1"}}
    for code, p in cells.items():
        mine = any(code.startswith(s) for s in sees.get(user, set()))
        assert ("score" in p) == mine, (user, code)
        assert ("top_risks" in p) == mine
    r = client.get("/api/risk/cells/D2-S2-G2/history", headers=tokens[user])
    assert r.status_code == (200 if user in ("chief", "audit", "d2") else 404), (user, r.text)


def test_map_views_and_bad_input(world):
    client, tokens, _ = world
    assert len(_props(client, tokens, "chief", bbox="24.90,60.15,24.919,60.169")) < 8
    streets = _props(client, tokens, "chief", level="street")
    assert streets["D1-S1"]["level"] == "red" and streets["D1-S1"]["cells"]["red"] == 1
    assert client.get("/api/risk/cells", headers=tokens["chief"], params={"bbox": "1,2,3"}).status_code == 422
    assert client.get("/api/risk/cells", headers=tokens["chief"], params={"bbox": "5,5,1,1"}).status_code == 422
    assert client.get("/api/risk/cells").status_code == 401
    top = client.get("/api/risk/top", headers=tokens["d1"]).json()
    assert [p["id"] for p in top["points"]] == ["main-d1"]
    assert client.get("/api/risk/top", headers=tokens["d1"], params={"jurisdiction": "nowhere"}).status_code == 404


def test_regrade_and_hidden_hazards_by_role(world):
    client, tokens, _ = world
    body = {"likelihood": 2, "consequence": 2, "reason": "relined"}
    assert client.post("/api/risk/points/main-d1/regrade", headers=tokens["d2"], json=body).status_code == 404
    assert client.post("/api/risk/points/main-d1/regrade", headers=tokens["grid"], json=body).status_code == 403
    assert client.post("/api/risk/points/main-d1/regrade", headers=tokens["d1"],
                       json={**body, "likelihood": 9}).status_code == 422
    r = client.post("/api/risk/points/main-d1/regrade", headers=tokens["d1"], json=body)
    assert r.status_code == 200 and r.json()["level"] == 4
    hist = client.get("/api/risk/points/main-d1/history", headers=tokens["d1"]).json()
    assert [h["action"] for h in hist] == ["import", "regrade"]
    r = client.post("/api/risk/hazards", headers=tokens["grid"], json={"text": "cracked cover", "point": "main-d1",
                                                                       "network": "water"})
    assert r.status_code == 201 and r.json()["type"] == "hidden_hazard" and r.json()["state"] == "new"
    r = client.post("/api/risk/hazards", headers=tokens["li"], json={"text": "x", "point": "main-d1"})
    assert r.status_code == 403
