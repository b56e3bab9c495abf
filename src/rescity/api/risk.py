"""The risk API: the four-colour map's cells for a map view, top risks, histories,
re-grading and hidden hazards. Thin over :mod:`rescity.service.risk`; every endpoint
asks who is calling (the response API's bearer tokens) and the service decides what
detail they see: a district sees the details of its own cells only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from rescity.api.respond import Me, Now

router = APIRouter(prefix="/api/risk", tags=["risk"])


class Regrade(BaseModel):
    model_config = ConfigDict(extra="forbid")
    likelihood: int = Field(ge=1, le=5)
    consequence: int = Field(ge=1, le=5)
    reason: str = Field(min_length=1, max_length=2000)


class HiddenHazard(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)
    point: str | None = Field(default=None, max_length=100)
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    network: str | None = Field(default=None, max_length=100)


def risk_service(app: FastAPI) -> Any:
    """The application's risk map (made on first use; 404 without a city)."""
    svc = getattr(app.state, "risk", None)
    if svc is None:
        from rescity.service.risk import RiskService

        store = app.state.store
        if store.info().get("city") in (None, ""):
            raise HTTPException(404, "no city in the store (build or import one first)")
        svc = app.state.risk = RiskService(store, response=app.state.response)
    return svc


def _svc(request: Request, ts: int) -> Any:
    svc = risk_service(request.app)
    svc.load_live(ts)
    return svc


@router.get("/cells")
def cells(request: Request, user: Me, ts: Now,
          bbox: Annotated[str | None, Query(pattern=r"^-?[0-9.]+,-?[0-9.]+,-?[0-9.]+,-?[0-9.]+$",
                                            description="min lon,min lat,max lon,max lat")] = None,
          level: Annotated[str, Query(pattern="^(grid|street|district)$")] = "grid") -> dict[str, Any]:
    """The map's cells (or streets, districts) as GeoJSON with their level; score and
    top contributing risks where the caller may see details."""
    box = None
    if bbox is not None:
        x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
        if not (x0 <= x1 and y0 <= y1):
            raise HTTPException(422, "bbox: min lon <= max lon and min lat <= max lat")
        box = (x0, y0, x1, y1)
    return _svc(request, ts).cells_geojson(user, bbox=box, level=level)  # type: ignore[no-any-return]


@router.get("/top")
def top(request: Request, user: Me, ts: Now, jurisdiction: str | None = None,
        n: Annotated[int, Query(ge=1, le=500)] = 10) -> dict[str, Any]:
    """The most severe risk points and the highest-scoring cells the caller may see."""
    return _svc(request, ts).top_risks(user, jurisdiction=jurisdiction, n=n)  # type: ignore[no-any-return]


@router.get("/cells/{code}/history")
def cell_history(code: str, request: Request, user: Me, ts: Now) -> list[dict[str, Any]]:
    """A cell's levels over time (appended whenever its level changed)."""
    return _svc(request, ts).history(user, code)  # type: ignore[no-any-return]


@router.get("/points/{point_id}/history")
def point_history(point_id: str, request: Request, user: Me, ts: Now) -> list[dict[str, Any]]:
    """Every grading of a risk point, from the audit chain."""
    return _svc(request, ts).point_history(user, point_id)  # type: ignore[no-any-return]


@router.post("/points/{point_id}/regrade")
def regrade(point_id: str, body: Regrade, request: Request, user: Me, ts: Now) -> dict[str, Any]:
    """Re-grade a risk point (commanders; district officers in their districts)."""
    p = _svc(request, ts).regrade(user, point_id, likelihood=body.likelihood,
                                  consequence=body.consequence, reason=body.reason, ts_ms=ts)
    return {"id": p.id, "likelihood": p.likelihood, "consequence": p.consequence, "level": p.level}


@router.post("/hazards", status_code=201)
def hidden_hazard(body: HiddenHazard, request: Request, user: Me, ts: Now) -> dict[str, Any]:
    """Report a hidden hazard: an incident with the rectification deadlines."""
    from rescity.respond.lifecycle import incident_to_doc

    inc = _svc(request, ts).report_hidden_hazard(user, text=body.text, point_id=body.point, lon=body.lon,
                                                 lat=body.lat, network=body.network, ts_ms=ts)
    return incident_to_doc(inc)


def install(app: FastAPI) -> None:
    """Add the risk API (errors map as the response API's: NotFound 404, AccessDenied 403)."""
    app.include_router(router)
