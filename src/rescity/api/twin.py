"""The twin's read API: counts, networks, jurisdictions, facilities and sensors as GeoJSON
(WGS84). Thin over the store. Signed-in callers only: the lifeline networks, facilities
and sensors are critical infrastructure, for staff (every role but citizens, 403);
jurisdictions (the districts and streets a citizen reports in) for any signed-in caller.

The dashboard's layers (``/api/map/...``) are the same features made light for drawing:
id, kind and name only, coordinates to 6 decimals (about 0.1 m), serialised once per
process and answered with an ETag, so a reload costs a 304.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response
from shapely.geometry import mapping

from rescity.api.respond import Me
from rescity.io.geo import jurisdictions_to_geojson, network_to_geojson
from rescity.model import JurisdictionLevel
from rescity.respond.access import User, can_see_twin

router = APIRouter(prefix="/api", tags=["twin"])


def _staff(user: User) -> None:
    if not can_see_twin(user):
        raise HTTPException(403, f"{user.username} ({user.role.value}) may not see the lifeline networks")


def _store(request: Request) -> Any:
    return request.app.state.store


def _round(c: Any) -> Any:
    if isinstance(c, (list, tuple)):
        if c and isinstance(c[0], (int, float)):
            return [round(float(v), 6) for v in c]
        return [_round(x) for x in c]
    return c


def _light(geom: Any) -> dict[str, Any]:
    g = mapping(geom)
    return {"type": g["type"], "coordinates": _round(g["coordinates"])}


class _Cache:
    """Serialised layers by key, with their ETags (the twin does not change while serving;
    ``clear()`` after an import)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[bytes, str]] = {}

    def get(self, key: str, build: Any) -> tuple[bytes, str]:
        """The layer ``key``; on a miss ``build()`` makes its document (or is None: 404)."""
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        doc = build()
        if doc is None:
            raise HTTPException(404, f"no layer {key!r}")
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        item = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        with self._lock:
            self._items[key] = item
        return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _answer(request: Request, key: str, build: Any) -> Response:
    cache: _Cache = request.app.state.layer_cache
    body, etag = cache.get(key, build)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "private, no-cache"})
    return Response(body, media_type="application/geo+json",
                    headers={"ETag": etag, "Cache-Control": "private, no-cache"})


def network_layer(net: Any) -> dict[str, Any]:
    """A network for drawing: nodes then links, each with id, kind, name, role."""
    feats = [{"type": "Feature", "geometry": _light(n.geometry),
              "properties": {"id": n.id, "kind": n.kind, "role": "node", **({"name": n.name} if n.name else {})}}
             for n in net.nodes.values()]
    feats += [{"type": "Feature", "geometry": _light(lk.geometry),
               "properties": {"id": lk.id, "kind": lk.kind, "role": "link", **({"name": lk.name} if lk.name else {})}}
              for lk in net.links.values()]
    return {"type": "FeatureCollection", "rescity:network": net.name, "rescity:network_type": net.type.value,
            "features": feats}


@router.get("/info")
def info(request: Request, user: Me) -> dict[str, Any]:
    """Counts of the twin: networks, sensors, jurisdictions, interdependencies, facilities."""
    _staff(user)
    return _store(request).info()  # type: ignore[no-any-return]


@router.get("/networks")
def networks(request: Request, user: Me) -> list[dict[str, Any]]:
    """The stored networks with their types and sizes."""
    _staff(user)
    return _store(request).network_summaries()  # type: ignore[no-any-return]


def _network(request: Request, name: str) -> Any:
    from rescity.store import NotFoundError

    try:
        return _store(request).get_network(name)
    except NotFoundError:
        raise HTTPException(404, f"no network named {name!r}") from None


@router.get("/networks/{name}/geojson")
def network_geojson(name: str, request: Request, user: Me) -> dict[str, Any]:
    """One network as a GeoJSON FeatureCollection (WGS84), with every attribute."""
    _staff(user)
    return network_to_geojson(_network(request, name))


def build_layer(store: Any, key: str) -> dict[str, Any] | None:
    """The document of the cached layer ``key`` (``net:<name>``, ``jur:<level>``,
    ``facilities``, ``sensors``) from ``store``; None if there is no such layer."""
    kind, _, name = key.partition(":")
    if kind == "net":
        return network_layer(store.get_network(name)) if name in store.network_names() else None
    if kind == "jur" and name in {lev.value for lev in JurisdictionLevel}:
        return jurisdictions_to_geojson(store.get_jurisdictions(JurisdictionLevel(name)))
    if key == "facilities":
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": _light(f.geometry),
             "properties": {"id": f.id, "kind": str(getattr(f.kind, "value", f.kind)), "name": f.name,
                            "name_zh": f.name_zh, "population_served": int(f.population_served)}}
            for f in store.get_facilities()]}
    if key == "sensors":
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": _light(s.geometry),
             "properties": {"id": s.id, "asset": s.asset, "quantity": s.quantity, "unit": s.unit}}
            for s in store.get_sensors()]}
    return None


def layer_keys(store: Any) -> list[str]:
    """Every layer the dashboard may ask for."""
    return ([f"net:{n}" for n in store.network_names()] + [f"jur:{lev.value}" for lev in JurisdictionLevel]
            + ["facilities", "sensors"])


def _layer(request: Request, key: str) -> Response:
    return _answer(request, key, lambda: build_layer(_store(request), key))


def warm(app: FastAPI) -> None:
    """Build what the dashboard's first load asks for (every layer, the live feed, the
    risk map, the warning models) through the getters the endpoints use, so the first
    visitor after a start waits no longer than the next. ``rescity serve`` runs it in a
    thread as the server starts."""
    from rescity.api.live import catalogue
    from rescity.api.risk import risk_service

    store = app.state.store
    try:
        for key in layer_keys(store):
            app.state.layer_cache.get(key, lambda key=key: build_layer(store, key))
        live_feed(app)
        if store.info().get("city"):
            risk_service(app).load_live(int(app.state.clock()))
        catalogue(app)
    except Exception as e:  # a warm-up is an optimisation: the first request builds what failed
        import sys

        print(f"warning: dashboard warm-up stopped: {e}", file=sys.stderr)


@router.get("/map/networks/{name}")
def network_map_layer(name: str, request: Request, user: Me) -> Response:
    """One network as the dashboard draws it (id, kind, name; 6 decimals; ETag)."""
    _staff(user)
    return _layer(request, f"net:{name}")


@router.get("/jurisdictions/geojson")
def jurisdictions(request: Request, user: Me,
                  level: JurisdictionLevel = JurisdictionLevel.DISTRICT) -> Response:
    """Districts, streets or grid cells as GeoJSON, with names and residents."""
    return _layer(request, f"jur:{level.value}")


@router.get("/facilities/geojson")
def facilities(request: Request, user: Me) -> Response:
    """The critical facilities (hospitals, schools, shelters, works, substations...) with
    their kind, names and the population they serve."""
    _staff(user)
    return _layer(request, "facilities")


@router.get("/sensors/geojson")
def sensors(request: Request, user: Me) -> dict[str, Any]:
    """The sensors as points, with quantity, unit and asset, and their state now: the most
    severe open alarm on the sensor or its asset that the caller may see (``level`` 1 red
    .. 4 blue, 0 none; ``state`` firing, pending or normal)."""
    _staff(user)
    body, _ = request.app.state.layer_cache.get("sensors", lambda: build_layer(_store(request), "sensors"))
    fc = json.loads(body)
    worst: dict[str, tuple[int, str]] = {}
    for a in live_feed(request.app).open_alarms(user):
        if a["level"] <= 0:
            continue
        key = a["asset"]
        sev = (5 - a["level"]) + (10 if a["state"] == "firing" else 0)
        if key not in worst or sev > worst[key][0]:
            worst[key] = (sev, a["state"])
    for f in fc["features"]:
        p = f["properties"]
        hit = worst.get(p["id"]) or worst.get(p["asset"])
        p["level"] = 0 if hit is None else 5 - (hit[0] % 10)
        p["state"] = "normal" if hit is None else hit[1]
    return fc  # type: ignore[no-any-return]


def live_feed(app: FastAPI) -> Any:
    """The application's live feed (made on first use)."""
    feed = getattr(app.state, "live", None)
    if feed is None:
        from rescity.service.live import LiveFeed

        feed = app.state.live = LiveFeed(app.state.response)
    return feed


def install(app: FastAPI) -> None:
    app.state.layer_cache = _Cache()
    app.include_router(router)
