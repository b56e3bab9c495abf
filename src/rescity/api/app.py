"""The FastAPI application: the twin's read API, telemetry in (device tokens), the
response API (users with roles and jurisdictions, :mod:`rescity.api.respond`) and the
dashboard's static files. The server binds to 127.0.0.1 by default.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

WEB = Path(__file__).resolve().parent.parent / "web"
VENDOR = {"leaflet": WEB / "node_modules" / "leaflet" / "dist",
          "chartjs": WEB / "node_modules" / "chart.js" / "dist"}
"""The front-end libraries, installed from npm into ``web/node_modules`` (``make venv``
runs ``npm ci``); served by us, never from a CDN."""


def mount_web(app: FastAPI) -> None:
    """Serve the dashboard's own files and the npm libraries it uses. A missing library
    is named at start-up, not discovered as a blank page."""
    missing = [f"{k} ({p})" for k, p in VENDOR.items() if not p.is_dir()]
    if missing:
        raise RuntimeError("the dashboard's front-end libraries are not installed: "
                           f"{', '.join(missing)}; run `npm ci --prefix {WEB}` (make venv does)")
    for name, path in VENDOR.items():
        app.mount(f"/static/vendor/{name}", StaticFiles(directory=path), name=f"vendor-{name}")
    app.mount("/static", StaticFiles(directory=WEB), name="static")


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


def create_app(db: str | None = None, *, clock: Any = None, token_clock: Any = None,
               warm: bool = False) -> FastAPI:
    """The application over the store at ``db`` (default: the embedded SQLite file).
    ``clock() -> ms since the epoch`` drives the response loop's time (default: wall time);
    ``token_clock`` dates sign-in tokens (default: ``clock``); ``warm``: build the
    dashboard's layers in a thread now rather than at the first visit."""
    from rescity.api.respond import install
    from rescity.service.respond import ResponseService
    from rescity.store import Store

    store = Store.open(db)
    app = FastAPI(title="ResCity", version="0.1.0",
                  description="Safety-resilient city platform (安全韧性城市) API")

    ingest_lock = threading.Lock()

    def pipeline(request: Request) -> Any:
        """The HTTP source's pipeline: validation, the warning engine (over the stored
        city, its alarm book restored from the stored events) and the store -- the same
        as an ingestion worker's (:func:`rescity.service.monitoring.worker_pipeline`)."""
        pipe = getattr(request.app.state, "pipeline", None)
        if pipe is None:
            from rescity.service.monitoring import worker_pipeline

            pipe = request.app.state.pipeline = worker_pipeline(store)
        return pipe

    @app.post("/api/telemetry")
    def telemetry(batch: TelemetryBatch, request: Request,
                  _device: Annotated[str, Depends(require_device)]) -> dict[str, Any]:
        """Ingest a batch of readings. Invalid readings are kept in the dead-letter store
        with their reason; the answer counts accepted readings and rejections by reason."""
        if not (len(batch.sensor) == len(batch.ts) == len(batch.value)):
            raise HTTPException(422, "'sensor', 'ts' and 'value' must have the same length")
        from rescity.monitor.decode import Decoder

        with ingest_lock:  # one batch at a time through the validator and the alarm book
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
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    install(app, ResponseService(store), clock=clock, token_clock=token_clock)
    from rescity.api.live import install as install_live
    from rescity.api.risk import install as install_risk
    from rescity.api.simulate import install as install_simulate
    from rescity.api.twin import install as install_twin

    install_risk(app)
    install_simulate(app)
    install_twin(app)
    install_live(app)
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    mount_web(app)
    app.state.store = store
    if warm:
        from rescity.api.twin import warm as warm_layers

        app.state.warm_thread = threading.Thread(target=warm_layers, args=(app,), name="rescity-warm", daemon=True)
        app.state.warm_thread.start()
    return app
