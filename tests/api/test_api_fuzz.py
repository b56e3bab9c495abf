"""Bad input never gets a 500: schemathesis generates requests from the OpenAPI document
(valid and invalid ones) against every response endpoint, signed in as a commander, and
checks that the server answers each with a 2xx or a 4xx carrying a message."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from .conftest import CELLS, make_api

pytestmark = pytest.mark.xdist_group("api-fuzz")

_state: dict = {}


def _app():
    if "app" not in _state:
        import tempfile
        from pathlib import Path

        mp = pytest.MonkeyPatch()
        mp.setenv("RESCITY_SECRET", "fuzz-secret")
        app, client, tokens, clock, store = make_api(Path(tempfile.mkdtemp(prefix="rescity-fuzz-")))
        lon, lat = CELLS["D1-S1-G1"]
        r = client.post("/api/incidents", headers=tokens["chief"], json={
            "title": "gas", "type": "gas_leak", "level": 1, "lon": lon, "lat": lat,
            "network": "gas", "dispatch": True})
        assert r.status_code == 201
        _state.update(app=app, tokens=tokens, client=client, store=store, mp=mp)
    return _state["app"]


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
schema.config.generation.update(modes=list(schemathesis.GenerationMode))  # valid and invalid input


def _not_5xx(ctx, response, case):
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert body.get("detail"), "a 4xx must say what is wrong"


@schema.include(path_regex=r"^/api/(incidents|reports|users|me|metrics|audit|units|notifications|risk|info|networks"
                           r"|map|jurisdictions|facilities|sensors|alarms|models)").parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    headers = dict(_state["tokens"]["chief"])
    response = case.call(headers=headers)
    _not_5xx(None, response, case)
