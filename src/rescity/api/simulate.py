"""The scenario API (仿真推演): ask for a scenario run, follow it, read its results.
Thin over :class:`rescity.service.simulation.ScenarioService`.

Runs take seconds to minutes, so they are asynchronous: ``POST /api/scenarios`` checks
the request and answers 202 with the run's id; one background worker thread in the server
executes the queued runs one at a time and stores their progress and results, which
survive a restart (unfinished runs are resumed).

Every endpoint asks who is calling (the response API's bearer tokens). Who may run what
(:func:`rescity.service.simulation.may_run`): commanders anything; district officers
rainstorms and the earthquakes, bursts and outages located in their jurisdictions;
operators earthquakes and rainstorms, and bursts (water) or outages (power) of the
networks they answer for; grid workers, citizens and auditors none. A run is readable by
its author, commanders, auditors and whoever may run the same scenario; grid workers and
citizens get 403, a run outside the caller's reach is 404. Bad input is a 422 naming the
field (``params.magnitude: ...``, ``hazard: ...``), never a 500.

    POST /api/scenarios                 {"hazard", "params", "realizations", "seed"} -> 202 {"id", "status"}
    GET  /api/scenarios                 [{id, hazard, params, status, progress, created_ms, by, ...}]
    GET  /api/scenarios/{id}            {..., status, progress, message, error, metrics, curves, consequences}
    GET  /api/scenarios/{id}/affected   GeoJSON FeatureCollection (WGS84) of the affected assets
    GET  /api/scenarios/{id}/curves.png the resilience curves (409 until done)
    GET  /api/scenarios/main-break?incident=ID|alarm=ID  valves to close, customers cut off (sync)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from rescity.api.respond import Me
from rescity.service.simulation import API_MAX_REALIZATIONS, RunNotDone, ScenarioService

router = APIRouter(prefix="/api/scenarios", tags=["scenarios"])

Param = float | int | str | bool | None


class NewScenario(BaseModel):
    """A scenario to run. ``params`` are named as the CLI's options: earthquake
    ``magnitude``, ``lon``, ``lat`` (default: the city centre), ``depth_km``; rainstorm
    ``return_period`` (years), ``duration`` (hours), ``method``; burst ``pipe``, ``mode``
    (break or leak); outage ``substation``, ``duration`` (hours); any of them
    ``horizon_h`` and ``policy`` (criticality, population or nearest)."""

    model_config = ConfigDict(extra="forbid")
    hazard: Literal["earthquake", "rainstorm", "burst", "outage"]
    params: dict[str, Param] = Field(default_factory=dict, max_length=20)
    realizations: int = Field(default=1, ge=1, le=API_MAX_REALIZATIONS,
                              description="Monte Carlo realizations (earthquakes only; more than 1 run on Dask)")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="seed of the first realization")


def _svc(request: Request) -> ScenarioService:
    return request.app.state.scenarios  # type: ignore[no-any-return]


def _bad(e: ValueError) -> HTTPException:
    return HTTPException(422, str(e) or "bad scenario input")


@router.post("", status_code=202)
def submit(body: NewScenario, request: Request, user: Me) -> dict[str, Any]:
    """Queue a scenario run; follow it at ``GET /api/scenarios/{id}``."""
    try:
        return _svc(request).submit(user, body.hazard, dict(body.params), realizations=body.realizations,
                                    seed=body.seed)
    except ValueError as e:
        raise _bad(e) from None


@router.get("")
def runs(request: Request, user: Me, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """The runs the caller may see, newest first: id, hazard, params, status, progress,
    created_ms, by."""
    return _svc(request).list_runs(user, limit=limit)


@router.get("/main-break")
def main_break(request: Request, user: Me,
               incident: Annotated[str | None, Query(max_length=64, description="an incident's id")] = None,
               alarm: Annotated[str | None, Query(max_length=300, description="an alarm's id")] = None,
               repair_h: Annotated[float, Query(gt=0, le=240, description="hours until the repair")] = 16.0,
               ) -> dict[str, Any]:
    """From live state: for a suspected main break (an incident or an alarm), the valves
    to close, the isolation segment, the customers it cuts off and those predicted to
    lose water if the break runs until the repair; ``geojson`` draws it. Runs two
    hydraulic simulations (a few seconds)."""
    try:
        return _svc(request).main_break(user, incident=incident, alarm=alarm, repair_h=repair_h)
    except (ValueError, KeyError) as e:
        raise _bad(ValueError(str(e).strip("'\""))) from None


@router.get("/{run_id}")
def run(run_id: str, request: Request, user: Me) -> dict[str, Any]:
    """One run: status (queued, running, done, failed), progress 0..1, message, error and,
    once done, metrics per network and for the city, curves (percent over hours, with
    p10/p90 bands for ensembles) and consequences (per district and street)."""
    return _svc(request).get(user, run_id)


@router.get("/{run_id}/affected")
def affected(run_id: str, request: Request, user: Me) -> dict[str, Any]:
    """What the run hit as GeoJSON (WGS84): failed or damaged pipes, flooded drainage
    nodes, closed road segments, failed or de-energised buses, assets and facilities,
    customers without water; properties ``network``, ``kind``, ``asset``, ``name_en``,
    ``name_zh``, ``from_h``, ``to_h`` (and ``share`` for ensembles)."""
    try:
        return _svc(request).affected(user, run_id)
    except ValueError as e:
        raise _bad(e) from None


@router.get("/{run_id}/curves.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 409: {"description": "the run is not done"}})
def curves_png(run_id: str, request: Request, user: Me) -> Response:
    """The run's resilience curves (PNG)."""
    return Response(_svc(request).png(user, run_id), media_type="image/png")


def install(app: FastAPI) -> None:
    """Add the scenario API over the response API's store (call after the response
    API's ``install``); resumes the runs a previous server left unfinished."""
    svc = app.state.scenarios = ScenarioService(app.state.response.store, clock=lambda: app.state.clock())
    app.include_router(router)

    def not_done(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    app.add_exception_handler(RunNotDone, not_done)
    svc.resume()
