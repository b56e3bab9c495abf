"""The demo's scripted day plays on the dashboard: served while the day replays (as `make
demo` does, at a fast pace), a signed-in commander's page receives the warnings as they
fire, sees incidents move through their states and the risk grid re-grade, without reload.
Screenshot in ``test-artifacts/dashboard/``."""

from __future__ import annotations

import threading
import time

import pytest

from .test_dashboard import ARGS, ARTIFACTS, CHROMIUM, _free_port, _http

pytestmark = [pytest.mark.xdist_group("web"), pytest.mark.slow]


def test_the_scripted_day_plays_on_the_dashboard(tmp_path, monkeypatch):
    import uvicorn
    from playwright.sync_api import sync_playwright

    from rescity.api.app import create_app
    from rescity.demo.day import DAY_START_MS
    from rescity.service import twin
    from rescity.service.drill import ReplayClock, play_scripted_day
    from rescity.store import Store

    monkeypatch.setenv("RESCITY_SECRET", "demo-day-test-secret")
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'city.db'}"
    store = Store.open(db)
    city = twin.build_demo(store)
    clock = ReplayClock(DAY_START_MS)
    go = threading.Event()
    done = threading.Event()

    def play() -> None:
        def on_slice(now, _res):
            clock.set(now)
            go.wait()  # the page is up before the day's events begin
            time.sleep(0.02)
        try:
            play_scripted_day(store, city, on_slice=on_slice, warnings_dir=tmp_path / "w", maps_dir=None)
        finally:
            clock.finish()
            done.set()

    threading.Thread(target=play, daemon=True).start()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db, clock=clock, token_clock=lambda: int(time.time() * 1000)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # the drill creates the demo's accounts as the day starts
        if server.started and _http("POST", f"{url}/api/token",
                                    form={"username": "chief", "password": "rescity-demo"}).status_code == 200:
            break
        time.sleep(0.1)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1600, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.fill("#login-user", "chief")
            page.fill("#login-pass", "rescity-demo")
            page.click("#login-submit")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.wait_for_selector("#conn[data-ok='1']", timeout=10_000)
            go.set()
            assert done.wait(240), "the scripted day did not finish"
            page.wait_for_timeout(2500)  # the last poll of the stream
            got = page.evaluate("window.rescity.received")
            assert got["alarm"] >= 50 and got["incident"] >= 8 and got["risk"] >= 3, got
            # the main break's warning and the bridge overload came live, with their models
            models = set(page.evaluate("window.rescity.feed.map(a => a.model)"))
            assert {"main_break", "bridge_strain_heavy_traffic", "methane_manhole_near_gas"} <= models, models
            # incidents moved through their states on the page: most of the day's are closed
            states = page.evaluate("[...window.rescity.incidents.values()].map(i => i.state)")
            assert states.count("closed") >= 5, states
            # the clock on the top bar is the replayed day's
            assert page.text_content("#clock").startswith("2026-07-2")
            page.screenshot(path=str(ARTIFACTS / "07-demo-day.png"))
            assert errors == []
            b.close()
    finally:
        go.set()
        server.should_exit = True
        done.wait(240)
        store.close()
