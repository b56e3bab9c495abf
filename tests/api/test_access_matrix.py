"""Every role against every response endpoint and jurisdiction: nobody sees or changes what
is not theirs. The expectations are written out here, independently of respond/access.py."""

from __future__ import annotations

import pytest

from .conftest import ACCOUNTS, CELLS, make_api

USERS = list(ACCOUNTS)


def _incident(client, tokens, cell, network, type_, title, dispatch=True):
    lon, lat = CELLS[cell]
    r = client.post("/api/incidents", headers=tokens["chief"], json={
        "title": title, "type": type_, "level": 2, "lon": lon, "lat": lat, "network": network,
        "dispatch": dispatch})
    assert r.status_code == 201, r.text
    return r.json()["id"]


pytestmark = pytest.mark.xdist_group("api-matrix")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One world for the module (accounts cost a scrypt hash each); tests only compare
    against the incidents made here, so their order does not matter."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RESCITY_SECRET", "test-secret")
    app, client, tokens, clock, store = make_api(tmp_path_factory.mktemp("matrix"))
    ids = {
        "gas": _incident(client, tokens, "D1-S1-G1", "gas", "gas_leak", "gas in manhole"),
        "water": _incident(client, tokens, "D2-S2-G2", "water", "main_break", "main break"),
        "drain": _incident(client, tokens, "D1-S2-G1", "drainage", "waterlogging", "underpass flooded",
                           dispatch=False),
    }
    lon, lat = CELLS["D1-S1-G2"]
    r = client.post("/api/reports", headers=tokens["li"], json={
        "text": "smell of gas", "category": "odour", "lon": lon, "lat": lat, "contact": "li@example.org"})
    assert r.status_code == 201, r.text
    ids["report"] = r.json()["ref"]
    ids["rep"] = client.get(f"/api/reports/{ids['report']}", headers=tokens["chief"]).json()["incident"]
    yield client, tokens, clock, ids
    store.close()
    mp.undo()


# "rep" is the incident li's report opened (D1-S1-G2, no network)
SEES = {
    "chief": {"gas", "water", "drain", "rep"}, "audit": {"gas", "water", "drain", "rep"},
    "d1": {"gas", "drain", "rep"}, "d2": {"water"}, "gasop": {"gas"}, "waterop": {"water"},
    "grid": {"gas", "rep"}, "li": set(), "wang": set(),
}
# may add a note (a harmless write) to what they see; the auditor writes nothing
NOTES = {u: (s if u != "audit" else set()) for u, s in SEES.items()}
# may (re)dispatch: commanders and district officers in their districts
DISPATCH = {"chief": {"gas", "water", "drain", "rep"}, "d1": {"gas", "drain", "rep"}, "d2": {"water"}}


@pytest.mark.parametrize("user", USERS)
def test_read_scope(world, user):
    client, tokens, _, ids = world
    inc_ids = {k: v for k, v in ids.items() if k != "report"}
    listed = {d["id"] for d in client.get("/api/incidents", headers=tokens[user]).json()}
    assert listed & set(inc_ids.values()) == {inc_ids[k] for k in SEES[user]}
    for key, iid in inc_ids.items():
        r = client.get(f"/api/incidents/{iid}", headers=tokens[user])
        assert r.status_code == (200 if key in SEES[user] else 404), (user, key, r.text)
        r = client.get(f"/api/incidents/{iid}/audit", headers=tokens[user])
        assert r.status_code == (200 if key in SEES[user] else 404), (user, key)


@pytest.mark.parametrize("user", USERS)
def test_write_scope(world, user):
    client, tokens, _, ids = world
    for key in ("gas", "water", "drain", "rep"):
        iid = ids[key]
        r = client.post(f"/api/incidents/{iid}/actions/note", headers=tokens[user], json={"text": "x"})
        want = 200 if key in NOTES[user] else (404 if key not in SEES[user] else 403)
        assert r.status_code == want, (user, key, r.status_code, r.text)
        r = client.post(f"/api/incidents/{iid}/actions/dispatch", headers=tokens[user],
                        json={"units": ["street-station:D1-S1"]})
        if key in DISPATCH.get(user, set()):
            assert r.status_code in (200, 409), (user, key, r.text)  # 409: not verified yet
        else:
            assert r.status_code == (404 if key not in SEES[user] else 403), (user, key, r.text)


@pytest.mark.parametrize("user", USERS)
def test_unit_bound_actions(world, user):
    """Only the gas company's operator (or a commander) accepts the gas incident."""
    client, tokens, _, ids = world
    r = client.post(f"/api/incidents/{ids['gas']}/actions/accept", headers=tokens[user])
    want = {"chief": 200, "gasop": 200}.get(user, 404 if "gas" not in SEES[user] else 403)
    assert r.status_code == want, (user, r.text)


@pytest.mark.parametrize("user", USERS)
def test_reports(world, user):
    client, tokens, _, ids = world
    r = client.get(f"/api/reports/{ids['report']}", headers=tokens[user])
    # li's report lies in D1-S1-G2: li, the commander, the auditor, D1's officer and the grid
    # worker of D1-S1 may read it; the gas operator only if its incident is theirs (it is not)
    want = 200 if user in ("li", "chief", "audit", "d1", "grid") else 404
    assert r.status_code == want, (user, r.text)
    if user == "li":
        assert "contact" not in r.json() and "incident" not in r.json()
    mine = client.get("/api/reports", headers=tokens[user]).json()
    assert [m["ref"] for m in mine] == ([ids["report"]] if user == "li" else [])


@pytest.mark.parametrize("user", USERS)
def test_admin_endpoints(world, user):
    client, tokens, _, _ = world
    r = client.get("/api/audit/verify", headers=tokens[user])
    assert r.status_code == (200 if user in ("chief", "audit") else 403), (user, r.text)
    if r.status_code == 200:
        assert r.json()["ok"] is True
    r = client.post("/api/users", headers=tokens[user], json={
        "username": f"new-{user}", "password": "long enough pw", "role": "commander"})
    assert r.status_code == (201 if user == "chief" else 403), (user, r.text)
    r = client.get("/api/metrics/response", headers=tokens[user])
    assert r.status_code == (403 if user in ("li", "wang") else 200), (user, r.text)
    r = client.post("/api/incidents", headers=tokens[user], json={
        "title": "t", "type": "gas_leak", "level": 3, "jurisdiction": "D2-S1", "network": "gas"})
    # open an incident in D2-S1 on the gas network: commander, D2's officer, the gas operator
    assert r.status_code == (201 if user in ("chief", "d2", "gasop") else 403), (user, r.text)


@pytest.mark.parametrize("user", USERS)
def test_publishing_public_warnings(world, user):
    """Commanders publish anywhere, district officers in their districts; the message is
    the body of the answer."""
    client, tokens, clock, ids = world
    for key in ("gas", "water"):
        clock.advance(1000)  # one warning per incident and second in this test
        r = client.post(f"/api/incidents/{ids[key]}/publish?format=gb&msg_type=update",
                        headers=tokens[user])
        allowed = user == "chief" or (user == "d1" and key == "gas") or (user == "d2" and key == "water")
        if not allowed:
            assert r.status_code == (404 if key not in SEES[user] else 403), (user, key, r.text)
        else:  # an update needs an alert first: 422 names it, or 200 if one is out
            assert r.status_code in (200, 422), (user, key, r.text)
            if r.status_code == 422:
                assert "nothing published yet" in r.json()["detail"]
                a = client.post(f"/api/incidents/{ids[key]}/publish?format=cap", headers=tokens[user])
                assert a.status_code == 200 and a.headers["content-type"].startswith("application/cap+xml")
                assert b"<alert" in a.content and a.headers["X-Warning-Identifier"].startswith("320600")


def test_every_response_endpoint_refuses_anonymous_callers(world):
    client, _, _, ids = world
    checked = 0
    for path, ops in client.app.openapi()["paths"].items():
        if not path.startswith("/api/") or path == "/api/token":
            continue
        url = (path.replace("{incident_id}", ids["gas"]).replace("{ref}", ids["report"])
               .replace("{action}", "note"))
        for method in ops:
            r = client.request(method.upper(), url, json={})
            assert r.status_code == 401, (method, path, r.status_code)
            checked += 1
    assert checked >= 14


def test_forged_and_expired_tokens(world):
    client, tokens, clock, ids = world
    good = tokens["chief"]["Authorization"]
    body, sig = good.split(" ")[1].split(".")
    forged = {"Authorization": f"Bearer {body}.{sig[:-2]}AA"}
    assert client.get("/api/me", headers=forged).status_code == 401
    clock.advance(9 * 3600 * 1000)
    r = client.get("/api/me", headers=tokens["chief"])
    clock.advance(-9 * 3600 * 1000)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert client.post("/api/token", data={"username": "chief", "password": "wrong"}).status_code == 401
