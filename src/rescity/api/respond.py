"""The response API: OAuth2 password-flow tokens, incidents and their actions, citizen
reports (12345), metrics, the audit chain. Thin over :mod:`rescity.service.respond`.

Every endpoint asks who is calling (a bearer token from ``POST /api/token``) and the
service checks what that user may see and do; an incident outside the caller's scope is
answered 404, as if it did not exist. Bad input is a 4xx with a message naming the field,
never a 500: 401 no or bad token, 403 not allowed, 404 unknown (or not yours), 409 an
action the incident's state does not allow, 422 malformed input.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field

from rescity.model.incident import Action, IncidentState
from rescity.respond.access import AccessDenied, Role, User, can_act
from rescity.respond.credentials import AuthError, deployment_secret, issue_token, read_token
from rescity.respond.lifecycle import IllegalTransition, incident_to_doc
from rescity.service.respond import NotFound, ResponseService

_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)

TOKEN_TTL_S = 8 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewIncident(_Body):
    title: str = Field(min_length=1, max_length=300)
    title_zh: str | None = Field(default=None, max_length=300)
    type: str = Field(min_length=1, max_length=100, description="incident type, e.g. gas_leak")
    level: int = Field(ge=1, le=4, description="national level: 1 red (highest) .. 4 blue")
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    jurisdiction: str | None = Field(default=None, max_length=64)
    network: str | None = Field(default=None, max_length=100)
    asset: str | None = Field(default=None, max_length=300)
    description: str = Field(default="", max_length=10_000)
    source: str = Field(default="manual", pattern="^(manual|inspection)$")
    dispatch: bool = False


class ActionBody(_Body):
    units: list[str] | None = Field(default=None, max_length=50)
    reason: str | None = Field(default=None, max_length=2000)
    note: str | None = Field(default=None, max_length=10_000)
    text: str | None = Field(default=None, max_length=10_000)
    into: str | None = Field(default=None, max_length=64)
    other: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, pattern="^(district|city|specialist)$")
    level: int | None = Field(default=None, ge=1, le=4)
    unit: str | None = Field(default=None, max_length=100)
    task: str | None = Field(default=None, max_length=64)
    to: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=300)
    content_type: str | None = Field(default=None, max_length=100)
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    url: str | None = Field(default=None, max_length=2000)


class NewReport(_Body):
    text: str = Field(min_length=1, max_length=5000)
    category: str = Field(min_length=1, max_length=100)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    contact: str = Field(default="", max_length=200)


class NewUser(_Body):
    username: str = Field(min_length=1, max_length=100, pattern=r"^\S+$")
    password: str = Field(min_length=8, max_length=200)
    role: Role
    jurisdictions: list[str] = Field(default_factory=list, max_length=200)
    networks: list[str] = Field(default_factory=list, max_length=20)
    unit: str | None = Field(default=None, max_length=100)
    display_name: str = Field(default="", max_length=200)


def _now(request: Request) -> int:
    """Now, in ms since the epoch, by the app's clock."""
    return int(request.app.state.clock())


def _current_user(request: Request, token: Annotated[str | None, Depends(_oauth2)]) -> User:
    """The caller, from the bearer token; 401 without a valid one."""
    if not token:
        raise HTTPException(401, "sign in first: POST /api/token, then send "
                            "'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = read_token(request.app.state.secret, token, request.app.state.token_clock() / 1000)
    except AuthError as e:
        raise HTTPException(401, f"invalid token: {e}", headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.token_claims = claims  # for a stream that must end when the token does
    user = request.app.state.response.user(str(claims["sub"]))
    if user is None:
        raise HTTPException(401, "the account of this token no longer exists",
                            headers={"WWW-Authenticate": "Bearer"})
    return user  # type: ignore[no-any-return]


Me = Annotated[User, Depends(_current_user)]
Now = Annotated[int, Depends(_now)]

USER_ACTIONS = tuple(a.value for a in Action if a not in (
    Action.CREATE, Action.DEADLINE_MISSED, Action.ABSORB, Action.ADD_REPORT))


def _doc_for(user: User, inc: Any) -> dict[str, Any]:
    doc = incident_to_doc(inc)
    doc["my_actions"] = [a for a in doc["allowed_actions"] if can_act(user, inc, a)]
    return doc


def install(app: FastAPI, svc: ResponseService, *, clock: Callable[[], int] | None = None,
            token_clock: Callable[[], int] | None = None) -> None:
    """Add the response API to ``app`` over ``svc``. ``clock() -> ms since the epoch``
    (default: wall time) is kept on ``app.state.clock`` so tests can drive time;
    ``token_clock`` (default: ``clock``) dates and checks sign-in tokens -- the demo
    replays a past day on ``clock`` while tokens live in real time."""
    app.state.response = svc
    app.state.clock = clock or (lambda: int(time.time() * 1000))
    app.state.token_clock = token_clock or app.state.clock
    secret = app.state.secret = deployment_secret()
    router = APIRouter(prefix="/api")

    @router.post("/token", tags=["auth"])
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
        """OAuth2 password flow: a bearer token for ``username`` / ``password``."""
        try:
            user = svc.authenticate(form.username, form.password)
        except AuthError as e:
            raise HTTPException(401, str(e), headers={"WWW-Authenticate": "Bearer"}) from None
        tok = issue_token(secret, {"sub": user.username, "role": user.role.value},
                          app.state.token_clock() / 1000, TOKEN_TTL_S)
        return {"access_token": tok, "token_type": "bearer", "expires_in": TOKEN_TTL_S,
                "username": user.username, "role": user.role.value}

    @router.get("/me", tags=["auth"])
    def me(user: Me) -> dict[str, Any]:
        """Who the token belongs to: role, jurisdictions, networks, unit."""
        return {"username": user.username, "role": user.role.value, "role_zh": user.role.label_zh,
                "jurisdictions": list(user.jurisdictions), "networks": list(user.networks),
                "unit": user.unit, "display_name": user.display_name}

    @router.get("/incidents", tags=["incidents"])
    def incidents(user: Me, state: Annotated[list[IncidentState] | None, Query()] = None,
                  open_only: Annotated[bool, Query(alias="open")] = False,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> list[dict[str, Any]]:
        """The incidents the caller may see, newest first (without their timelines)."""
        got = svc.incidents(user, states=[s.value for s in state] if state else None,
                            open_only=open_only, limit=limit)
        return [incident_to_doc(i, timeline=False) for i in got]

    @router.post("/incidents", status_code=201, tags=["incidents"])
    def create(body: NewIncident, user: Me, ts: Now) -> dict[str, Any]:
        """Open an incident at a point (lon/lat) or a jurisdiction code."""
        if body.lon is None and body.jurisdiction is None:
            raise HTTPException(422, "give lon and lat, or a jurisdiction code")
        inc = svc.open_incident(user, ts_ms=ts, **body.model_dump())
        return incident_to_doc(inc)

    @router.get("/incidents/{incident_id}", tags=["incidents"])
    def show(incident_id: str, user: Me) -> dict[str, Any]:
        """One incident with its timeline, the actions its state allows now
        (``allowed_actions``) and those the caller may take (``my_actions``)."""
        return _doc_for(user, svc.incident(user, incident_id))

    @router.post("/incidents/{incident_id}/actions/{action}", tags=["incidents"])
    def act(incident_id: str, action: str, user: Me, ts: Now,
            body: ActionBody | None = None) -> dict[str, Any]:
        """Do ``action`` (verify, dismiss, dispatch, accept, arrive, resolve, reject, review,
        close, reopen, merge, escalate, link, note, attach, add_task, complete_task,
        set_level, reply) with its data."""
        if action not in USER_ACTIONS:
            raise HTTPException(422, f"unknown action {action!r}; expected one of {', '.join(USER_ACTIONS)}")
        data = body.model_dump(exclude_none=True) if body is not None else {}
        return _doc_for(user, svc.act(user, incident_id, action, ts, data))

    @router.get("/incidents/{incident_id}/audit", tags=["audit"])
    def trail(incident_id: str, user: Me) -> list[dict[str, Any]]:
        """The incident's records on the audit chain, with their hashes."""
        return svc.audit_trail(user, incident_id)

    @router.post("/incidents/{incident_id}/publish", tags=["public warnings"])
    def publish(incident_id: str, user: Me, ts: Now,
                format: Annotated[str, Query(pattern="^(cap|gb)$")] = "cap",
                msg_type: Annotated[str, Query(pattern="^(alert|update|cancel)$")] = "alert") -> Response:
        """Publish the incident's public warning (CAP 1.2 or GB/T 35965.1 style); the body
        of the answer is the message itself."""
        from rescity.service.publication import publish as do_publish

        res = do_publish(svc, user, incident_id, ts_ms=ts, fmt=format, msg_type=msg_type)
        return Response(res.payload, media_type=res.content_type,
                        headers={"X-Warning-Identifier": res.warning.identifier})

    @router.get("/notifications", tags=["incidents"])
    def notifications(user: Me, limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[dict[str, Any]]:
        """The caller's inbox: dispatches, escalations and missed deadlines of their units."""
        return svc.notifications(user, limit=limit)

    @router.get("/units", tags=["incidents"])
    def units(user: Me) -> list[dict[str, Any]]:
        """The responsible units (for dispatch)."""
        return [u.model_dump(mode="json") for u in svc.router.units.values()]

    @router.post("/reports", status_code=201, tags=["citizen reports"])
    def file_report(body: NewReport, user: Me, ts: Now) -> dict[str, Any]:
        """File a 12345 report; follow it by its ``ref``."""
        if user.role not in (Role.CITIZEN, Role.COMMANDER, Role.GRID_WORKER):
            raise AccessDenied(f"{user.username} ({user.role.value}) may not file citizen reports")
        return svc.file_report(user, ts_ms=ts, **body.model_dump())

    @router.get("/reports", tags=["citizen reports"])
    def my_reports(user: Me) -> list[dict[str, Any]]:
        """The caller's own reports with their status and replies."""
        return svc.my_reports(user)

    @router.get("/reports/{ref}", tags=["citizen reports"])
    def report(ref: str, user: Me) -> dict[str, Any]:
        """One report (a citizen: only their own)."""
        return svc.report(user, ref)

    @router.get("/metrics/response", tags=["metrics"])
    def metrics(user: Me) -> dict[str, Any]:
        """Time to acknowledge, arrive and resolve per unit and per warning model, and the
        share of false alarms per model (over the incidents the caller sees)."""
        if user.role == Role.CITIZEN:
            raise AccessDenied("citizens do not see response metrics")
        return svc.metrics(user)

    @router.get("/audit/verify", tags=["audit"])
    def audit_verify(user: Me) -> dict[str, Any]:
        """Verify the whole audit chain (auditors and commanders)."""
        v = svc.verify_audit(user)
        return {"ok": v.ok, "records": v.records, "bad_seq": v.bad_seq, "reason": v.reason,
                "message": v.describe()}

    @router.post("/users", status_code=201, tags=["auth"])
    def add_user(body: NewUser, user: Me, ts: Now) -> dict[str, Any]:
        """Create or update an account (commanders)."""
        u = svc.add_user(user, ts_ms=ts, **body.model_dump())
        return {"username": u.username, "role": u.role.value}

    app.include_router(router)

    def _handler(status: int) -> Callable[[Request, Exception], JSONResponse]:
        def handle(_: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)
        return handle

    app.add_exception_handler(AccessDenied, _handler(403))
    app.add_exception_handler(NotFound, _handler(404))
    app.add_exception_handler(IllegalTransition, _handler(409))
    app.add_exception_handler(AuthError, _handler(401))
    app.add_exception_handler(ValueError, _handler(422))
