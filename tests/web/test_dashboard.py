"""The dashboard end to end in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright; no browser is downloaded): sign in, the map renders the demo city's layers, a
live warning arrives from telemetry posted to the API, an incident is dispatched and
resolved by clicking, the language switches, a citizen sees only what the API lets them
see and files a report, and a scenario runs with its curves and affected assets.

Screenshots are kept in ``test-artifacts/dashboard/``."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.xdist_group("web"), pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
PASSWORD = "correct horse battery"
DEVICE = "dashboard-test-device"


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code, self.text = status, body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def _http(method, url, headers=None, json_body=None, form=None):
    """One HTTP call from the test (outside the browser), with the standard library."""
    h = dict(headers or {})
    data = None
    if json_body is not None:
        data, h["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif form is not None:
        data, h["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return _Answer(r.status, r.read())
    except urllib.error.HTTPError as e:
        return _Answer(e.code, e.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo city in a fresh SQLite store, three accounts, served by uvicorn on a free
    port (the same app ``rescity serve`` runs)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/ensure-services.sh)")
    import uvicorn

    from rescity.api.app import create_app
    from rescity.model import JurisdictionLevel
    from rescity.respond.access import SYSTEM
    from rescity.service import twin
    from rescity.service.respond import ResponseService
    from rescity.store import Store

    root = tmp_path_factory.mktemp("dashboard")
    mp = pytest.MonkeyPatch()
    mp.setenv("RESCITY_SECRET", "dashboard-test-secret")
    mp.setenv("RESCITY_INGEST_TOKENS", DEVICE)
    mp.setenv("RESCITY_LEAK_MODEL", "0")  # the HTTP pipeline's leak detector needs a fitted history: not here
    mp.chdir(root)
    db = f"sqlite:///{root / 'city.db'}"
    store = Store.open(db)
    city = twin.build_demo(store)
    districts = sorted(j.code for j in city.level(JurisdictionLevel.DISTRICT))
    svc = ResponseService(store, jurisdictions=list(city.jurisdictions.values()))
    svc.add_user(SYSTEM, username="chief", role="commander", password=PASSWORD, ts_ms=int(time.time() * 1000))
    svc.add_user(SYSTEM, username="officer", role="district_officer", jurisdictions=[districts[0]],
                 password=PASSWORD, ts_ms=int(time.time() * 1000))
    svc.add_user(SYSTEM, username="li", role="citizen", password=PASSWORD, ts_ms=int(time.time() * 1000))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield {"url": f"http://127.0.0.1:{port}", "city": city, "store": store, "districts": districts}
    server.should_exit = True
    th.join(10)
    store.close()
    mp.undo()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _token(site, user):
    r = _http("POST", f"{site['url']}/api/token", form={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _page(browser, site, user, lang="en"):
    ctx = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-GB")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # nothing leaves this machine: every request the page makes goes to our server
    page.on("request", lambda r: None if r.url.startswith(site["url"]) or r.url.startswith("data:")
            else errors.append(f"request outside the site: {r.url}"))
    page.goto(site["url"])
    page.evaluate(f"localStorage.setItem('rescity.lang', '{lang}')")
    page.reload()
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_selector("#conn[data-ok='1']", timeout=10_000)
    return page, errors


def test_sign_in_map_live_warning_and_language(browser, site):
    page, errors = _page(browser, site, "chief")
    stats = page.evaluate("window.rescity.map.stats")
    city = site["city"]
    groups = page.evaluate("Object.fromEntries(Object.entries(window.rescity.map.groups).map(([k, g]) => "
                           "[k, g.layer.getLayers ? g.layer.getLayers().length : 0]))")
    for name, net in city.networks.items():  # every network drawn: all its links, and its nodes but roads'
        want = len(net.links) + (0 if net.type.value == "road" else len(net.nodes))
        assert groups[f"net:{name}"] == want, name
    assert groups["sensors"] == len(city.sensors) and groups["facilities"] == len(city.facilities)
    assert groups["risk"] >= 100 and groups["districts"] == 3
    assert stats["layers"] >= 12
    assert page.locator("#layers input[type=checkbox]").count() >= 12
    page.screenshot(path=str(ARTIFACTS / "01-map.png"))
    assert page.text_content("#kpi-alarms") == "0"

    # a live warning: methane at a gas chamber, posted by a device, reaches the page without reload
    sensor = next(s for s in site["store"].get_sensors() if s.quantity == "methane" and s.asset.startswith("gas:"))
    now = int(time.time() * 1000)
    r = _http("POST", f"{site['url']}/api/telemetry", headers={"Authorization": f"Bearer {DEVICE}"},
              json_body={"sensor": [sensor.id] * 3, "ts": [now - 60_000, now - 30_000, now], "value": [60.0, 61.0, 62.0]})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    item = page.wait_for_selector("#feed-live li[data-alarm^='methane_gas_chamber']", timeout=15_000)
    assert "Methane in a gas valve chamber" in item.text_content()
    page.wait_for_function("document.querySelector('#kpi-alarms').textContent !== '0'", timeout=10_000)
    assert page.evaluate("window.rescity.map.alarmMarkers.size") >= 1
    page.screenshot(path=str(ARTIFACTS / "02-live-warning.png"))

    # switch language: labels, the html lang, the warning's title
    page.click("#lang")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.text_content(".tab[data-tab='warnings']") == "预警"
    assert "燃气阀井/调压站甲烷浓度" in page.text_content("#feed")
    assert "图层" in page.text_content("#side")
    page.screenshot(path=str(ARTIFACTS / "03-zh.png"))
    page.click("#lang")
    assert page.text_content(".tab[data-tab='warnings']") == "Warnings"
    assert errors == []


def test_dispatch_and_resolve_an_incident_by_clicking(browser, site):
    page, errors = _page(browser, site, "chief")
    lon, lat = site["city"].center
    h = _token(site, "chief")
    r = _http("POST", f"{site['url']}/api/incidents", headers=h, json_body={
        "title": "Water main break on the test street", "type": "main_break", "level": 2,
        "lon": lon, "lat": lat, "network": "water"})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    page.click(".tab[data-tab='incidents']")
    page.wait_for_selector(f"#inc-list li[data-id='{iid}']", timeout=15_000)  # arrived live
    page.click(f"#inc-list li[data-id='{iid}']")
    for action, state in (("verify", "verified"), ("dispatch", "dispatched"), ("accept", "accepted"),
                          ("arrive", "on_site")):
        page.click(f"button.act[data-act='{action}']")
        page.wait_for_selector(f"#inc-state[data-state='{state}']", timeout=10_000)
    page.click("button.act[data-act='resolve']")  # a resolve needs a note: the page says so
    assert "needs a note" in page.text_content("#act-error")
    page.fill("#act-text", "valve closed, pipe clamped")
    page.click("button.act[data-act='resolve']")
    page.wait_for_selector("#inc-state[data-state='resolved']", timeout=10_000)
    # from live state: the valves to close and the customers who lose water, on the map
    page.click("#predict")
    page.wait_for_selector("#prediction-table", timeout=60_000)
    assert int(page.get_attribute("#prediction-table td[data-n]", "data-n")) >= 2
    assert page.evaluate("window.rescity.map.groups.prediction.layer.getLayers().length") >= 3
    page.screenshot(path=str(ARTIFACTS / "04-incident-resolved.png"))
    pred = _http("GET", f"{site['url']}/api/scenarios/main-break?incident={iid}", headers=h).json()
    assert pred["pipe"].startswith("water:") and pred["valves_to_close"] and pred["segment_pipes"]
    assert set(pred["segment_customers"]) <= set(pred["customers_cut_off_by_isolation"])
    assert _http("GET", f"{site['url']}/api/scenarios/main-break", headers=h).status_code == 422
    assert _http("GET", f"{site['url']}/api/scenarios/main-break?incident=INC-nope", headers=h).status_code == 404
    li = _token(site, "li")
    assert _http("GET", f"{site['url']}/api/scenarios/main-break?incident={iid}", headers=li).status_code == 404
    doc = _http("GET", f"{site['url']}/api/incidents/{iid}", headers=h).json()
    assert doc["state"] == "resolved" and doc["units"]
    assert [e["action"] for e in doc["timeline"]][-5:] == ["verify", "dispatch", "accept", "arrive", "resolve"]
    assert errors == []


def test_what_a_district_officer_and_a_citizen_see(browser, site):
    h = _token(site, "chief")
    other = site["districts"][1]
    j = site["city"].jurisdictions[other]
    p = j.geometry.representative_point()
    r = _http("POST", f"{site['url']}/api/incidents", headers=h, json_body={
        "title": "Elsewhere", "type": "waterlogging", "level": 3, "lon": p.x, "lat": p.y})
    assert r.status_code == 201
    elsewhere = r.json()["id"]
    page, errors = _page(browser, site, "officer")
    page.click(".tab[data-tab='incidents']")
    ids = page.eval_on_selector_all("#inc-list li", "els => els.map(e => e.dataset.id)")
    assert elsewhere not in ids  # outside the officer's district, as the API rules
    page.close()

    page, errors = _page(browser, site, "li")
    assert page.is_hidden(".tab[data-tab='warnings']") and page.is_hidden(".tab[data-tab='scenarios']")
    assert not any(k.startswith("net:") for k in page.evaluate("Object.keys(window.rescity.map.groups)"))
    # file a 12345 report: click the map for the place, then submit
    page.fill("#rp-text", "Water is pouring out of the road surface")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.click("#rp-submit")
    page.wait_for_function("document.querySelector('#rp-done').textContent.length > 0", timeout=10_000)
    ref = page.text_content("#rp-done").split(": ")[1]
    page.wait_for_selector(f"#rp-list li[data-ref='{ref}']", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "05-citizen-report.png"))
    assert errors == []


def test_run_a_scenario_and_see_its_curves_and_affected_assets(browser, site):
    page, errors = _page(browser, site, "chief")
    page.click(".tab[data-tab='scenarios']")
    page.select_option("#sc-hazard", "burst")
    pipe = next(iter(site["city"].networks["water"].links.values())).id
    page.fill("#sc-fields input[name='pipe']", pipe)
    page.click("#sc-run")
    page.wait_for_selector("#sc-status[data-status='done']", timeout=240_000)
    assert page.evaluate("window.rescity.chart.data.datasets.length") >= 1
    n = page.evaluate("window.rescity.map.groups.scenario.layer.getLayers().length")
    assert n >= 1
    # the consequences per district: one row each, with residents
    assert page.locator("#sc-districts tr[data-code]").count() == len(site["districts"])
    page.screenshot(path=str(ARTIFACTS / "06-scenario.png"))
    # bad input is named, not a crash
    page.fill("#sc-fields input[name='pipe']", "no-such-pipe")
    page.click("#sc-run")
    page.wait_for_function("document.querySelector('#sc-error').textContent.includes('no-such-pipe')", timeout=10_000)
    assert errors == []
