"""The live API: the open alarms now, and a server-sent event stream of what changes
(alarm transitions, incident actions, risk re-gradings), each filtered by the caller's
scope (:mod:`rescity.service.live`).

``GET /api/stream`` is ``text/event-stream``. It takes the bearer token in the
``Authorization`` header like every other endpoint (the dashboard reads it with
``fetch``; a token in the URL would end up in logs). Every message is one SSE event::

    id: <cursor>            the position reached ("alarm.audit.risk"); resume with
    event: alarm|incident|risk|clock   Last-Event-ID or ?cursor=
    data: <JSON>

A ``clock`` event (the server's time, ms since the epoch; in the demo the replay's
time) comes with every poll that has news and at least every 15 s otherwise (it also
keeps proxies from closing the stream). The stream ends when the token expires; the
client signs in again and resumes from its last id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from rescity.api.respond import Me
from rescity.api.twin import _staff, live_feed
from rescity.service.live import Cursor

router = APIRouter(prefix="/api", tags=["live"])

POLL_S = 1.0
"""How often the stream looks at the logs (s)."""
HEARTBEAT_S = 15.0


def _sse(event: str, data: Any, cursor: Cursor | None = None) -> bytes:
    head = f"id: {cursor}\n" if cursor is not None else ""
    return (head + f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"
            ).encode("utf-8")


def catalogue(app: FastAPI) -> Any:
    """The warning models' catalogue (loaded on first use)."""
    cat = getattr(app.state, "catalogue", None)
    if cat is None:
        from rescity.monitor.specs import load_catalogue

        cat = app.state.catalogue = load_catalogue()
    return cat


@router.get("/alarms")
def alarms(request: Request, user: Me) -> list[dict[str, Any]]:
    """The alarms not resolved now (pending or firing) that the caller may see, with their
    level, state and place."""
    _staff(user)
    return live_feed(request.app).open_alarms(user)  # type: ignore[no-any-return]


@router.get("/models")
def models(request: Request, user: Me) -> list[dict[str, Any]]:
    """The warning models (name, kind, title in English and Chinese), to label warnings."""
    _staff(user)
    return [{"name": m.name, "kind": m.kind, "title": m.title or m.summary, "title_zh": m.title_zh,
             "enabled": m.enabled} for m in catalogue(request.app).models.values()]


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "server-sent events: alarm, incident, risk, clock"}})
async def stream(request: Request, user: Me,
                 cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$",
                                                     description="resume after this id")] = None,
                 last_event_id: Annotated[str | None, Header(max_length=64)] = None,
                 once: Annotated[bool, Query(description="answer what is new and end (for tests)")] = False,
                 ) -> StreamingResponse:
    """Live events for the caller, from ``cursor`` (or ``Last-Event-ID``; default: now)."""
    feed = live_feed(request.app)
    start = Cursor.parse(last_event_id or cursor)
    if (last_event_id or cursor) and start is None:
        raise HTTPException(422, "cursor: expected '<alarm seq>.<audit seq>.<risk seq>'")
    exp_ms = float(request.state.token_claims["exp"]) * 1000  # the token's, as the sign-in check read it
    clock = request.app.state.clock

    async def events() -> AsyncIterator[bytes]:
        cur = start
        quiet = 0.0
        if cur is None:
            _, cur = await run_in_threadpool(feed.poll, user, None)
        yield _sse("clock", {"now_ms": int(clock())}, cur)
        while True:
            msgs, cur = await run_in_threadpool(feed.poll, user, cur)
            for m in msgs:
                yield _sse(m["type"], m, cur)
            if msgs or quiet >= HEARTBEAT_S:
                yield _sse("clock", {"now_ms": int(clock())}, cur)
                quiet = 0.0
            if once or request.app.state.token_clock() >= exp_ms:
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)
            quiet += POLL_S

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def install(app: FastAPI) -> None:
    app.include_router(router)
