"""The FastAPI application: the twin's read API, telemetry in (device tokens), the
response API (users with roles and jurisdictions, :mod:`rescity.api.respond`) and the
dashboard's static files. The server binds to 127.0.0.1 by default.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from rescity.io.geo import jurisdictions_to_geojson, network_to_geojson
from rescity.model import JurisdictionLevel

WEB = Path(__file__).resolve().parent.parent / "web"


class TelemetryBatch(BaseModel):
    """A batch of readings, columnar: ``sensor[i]`` read ``value[i]`` at ``ts[i]``
    (ms since the epoch UTC, or ISO 8601 with a zone). Values in the sensor's SI unit."""

    sensor: list[str] = Field(max_length=1_000_000)
    ts: list[int | float | str]
    value: list[float | int | str | None]


def ingest_tokens() -> set[str]:
    """Device tokens allowed to post telemetry: ``$RESCITY_INGEST_TOKENS`` (comma
    separated), else the token in ``./.rescity/ingest-token`` (created on first use)."""
    env = os.environ.get("RESCITY_INGEST_TOKENS")
    if env:
        return {t.strip() for t in env.split(",") if t.strip()}
    path = Path.cwd() / ".rescity" / "ingest-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return {path.read_text().strip()}


_bearer = HTTPBearer(auto_error=False)


def require_device(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The calling device's token, checked; 401 otherwise."""
    if creds is None or not any(secrets.compare_digest(creds.credentials, t) for t in ingest_tokens()):
        raise HTTPException(401, "a valid device token is required (Authorization: Bearer <token>)",
                            headers={"WWW-Authenticate": "Bearer"})
    return creds.credentials


def create_app(db: str | None = None, *, clock: Any = None) -> FastAPI:
    """The application over the store at ``db`` (default: the embedded SQLite file).
    ``clock() -> ms since the epoch`` drives the response loop's time (default: wall time)."""
    from rescity.api.respond import install
    from rescity.service.respond import ResponseService
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
        return network_to_geojson(net)

    @app.get("/api/jurisdictions/geojson")
    def jurisdictions(level: JurisdictionLevel = JurisdictionLevel.DISTRICT) -> dict[str, Any]:
        """Districts, streets or grid cells as GeoJSON, with names and residents."""
        return jurisdictions_to_geojson(store.get_jurisdictions(level))

    def pipeline(request: Request) -> Any:
        pipe = getattr(request.app.state, "pipeline", None)
        if pipe is None:
            from rescity.monitor.pipeline import Pipeline
            from rescity.monitor.registry import SensorRegistry
            from rescity.store.monitoring import MonitoringStore

            pipe = Pipeline.build(SensorRegistry.from_sensors(store.get_sensors()),
                                  sink=MonitoringStore(store.engine))
            request.app.state.pipeline = pipe
        return pipe

    @app.post("/api/telemetry")
    def telemetry(batch: TelemetryBatch, request: Request,
                  _device: Annotated[str, Depends(require_device)]) -> dict[str, Any]:
        """Ingest a batch of readings. Invalid readings are kept in the dead-letter store
        with their reason; the answer counts accepted readings and rejections by reason."""
        if not (len(batch.sensor) == len(batch.ts) == len(batch.value)):
            raise HTTPException(422, "'sensor', 'ts' and 'value' must have the same length")
        from rescity.monitor.decode import Decoder

        pipe = pipeline(request)
        now = int(time.time() * 1000)
        res = pipe.ingest(Decoder(pipe.registry, "http").rows(batch.sensor, batch.ts, batch.value, now),
                          now, "http")
        rejected: dict[str, int] = {}
        for d in res.dead:
            rejected[str(d.reason)] = rejected.get(str(d.reason), 0) + 1
        return {"accepted": res.accepted, "stored": res.stored, "rejected": rejected}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB / "index.html")

    install(app, ResponseService(store), clock=clock)
    from rescity.api.risk import install as install_risk

    install_risk(app)
    __import__("rescity.api.simulate", fromlist=["install"]).install(app)  # scenarios (issue #6)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    app.state.store = store
    return app
