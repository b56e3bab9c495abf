"""The FastAPI application: the twin's read API and the dashboard's static files.

Access control (users, roles, jurisdictions) arrives with the incident service; until
then the server binds to 127.0.0.1 by default and exposes only read-only twin data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from rescity.model import JurisdictionLevel

WEB = Path(__file__).resolve().parent.parent / "web"


def _feature(uid: str, geom: Any, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": uid, "geometry": geom.__geo_interface__, "properties": props}


def create_app(db: str | None = None) -> FastAPI:
    """The application over the store at ``db`` (default: the embedded SQLite file)."""
    from rescity.store import NotFoundError, Store

    store = Store.open(db)
    app = FastAPI(title="ResCity", version="0.1.0",
                  description="Safety-resilient city platform (安全韧性城市) API")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """Counts of the twin: networks, sensors, jurisdictions, interdependencies, facilities."""
        return store.info()

    @app.get("/api/networks")
    def networks() -> list[dict[str, Any]]:
        """The stored networks with their types and sizes."""
        return store.network_summaries()

    @app.get("/api/networks/{name}/geojson")
    def network_geojson(name: str) -> dict[str, Any]:
        """One network as a GeoJSON FeatureCollection (WGS84)."""
        try:
            net = store.get_network(name)
        except NotFoundError:
            raise HTTPException(404, f"no network named {name!r}") from None
        feats = [_feature(net.uid(n.id), n.geometry, {"role": "node", "id": n.id, "kind": n.kind})
                 for n in net.nodes.values()]
        feats += [_feature(net.uid(lk.id), lk.geometry,
                           {"role": "link", "id": lk.id, "kind": lk.kind, "from": lk.start, "to": lk.end})
                  for lk in net.links.values()]
        return {"type": "FeatureCollection", "rescity:network": name,
                "rescity:network_type": net.type.value, "features": feats}

    @app.get("/api/jurisdictions/geojson")
    def jurisdictions(level: JurisdictionLevel = JurisdictionLevel.DISTRICT) -> dict[str, Any]:
        """Districts, streets or grid cells as GeoJSON, with names and residents."""
        feats = [_feature(j.code, j.geometry, {"code": j.code, "name": j.name, "name_zh": j.name_zh,
                                               "level": j.level.value, "parent": j.parent,
                                               "population": j.population})
                 for j in store.get_jurisdictions(level)]
        return {"type": "FeatureCollection", "features": feats}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.state.store = store
    return app
