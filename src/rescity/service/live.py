"""The live feed (实时推送): what changed since a cursor, as one user may see it.

Three append-only logs already record everything the dashboard shows live, so the feed is
a follower of them, not a second copy:

- alarm transitions (``alarm_event``, by ``seq``): opened, fired, escalated, resolved ...;
- the audit chain's incident records (``audit_log``, by ``seq``): every incident action;
- the risk map's cell history (``risk_cell_history``, by ``seq``): every re-grading.

A :class:`Cursor` is the three ``seq`` values reached; :meth:`LiveFeed.poll` answers the
messages after it and the new cursor. Each message passes the same access rules as the API
(:func:`rescity.respond.access.can_read_alarm`, ``can_read``): a district officer's feed
carries only the alarms and incidents of their districts. The cursor is an opaque string
(``"alarm.audit.risk"``), sent as the server-sent event's id, so a reconnecting browser
resumes where it stopped (``Last-Event-ID``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rescity.model.levels import WarningLevel
from rescity.respond.access import Role, User, can_read_alarm, can_see_twin
from rescity.respond.lifecycle import incident_to_doc
from rescity.store.risk_schema import risk_cell_history_table

from .respond import NotFound, ResponseService

RISK_COLOURS = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}


@dataclass(frozen=True, slots=True)
class Cursor:
    """How far a reader has got in each log (the last ``seq`` seen; 0 = from the start)."""

    alarm: int = 0
    audit: int = 0
    risk: int = 0

    def __str__(self) -> str:
        return f"{self.alarm}.{self.audit}.{self.risk}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """A cursor from its string form; None for an absent or malformed one."""
        if not text:
            return None
        parts = text.strip().split(".")
        if len(parts) != 3 or not all(p.isdigit() and len(p) < 19 for p in parts):
            return None
        return cls(*(int(p) for p in parts))


def alarm_view(row: dict[str, Any], place: dict[str, Any]) -> dict[str, Any]:
    """A stored alarm event as the dashboard shows it: the transition, the alarm's level
    after it (colour, Chinese label) and its place."""
    lvl = row.get("level_after")
    lv = WarningLevel(int(lvl)) if lvl is not None and 0 <= int(lvl) <= 4 else None
    return {"type": "alarm", "seq": int(row["seq"]), "alarm": row["alarm_id"], "model": row["model"],
            "asset": row["asset_uid"], "kind": row["kind"], "ts_ms": int(row["ts_ms"]),
            "level": int(lvl) if lvl is not None else None,
            "level_before": row.get("level_before"),
            "colour": lv.colour if lv is not None else None,
            "colour_zh": lv.label_zh if lv is not None else None,
            "value": row.get("value"), "network": place.get("network"),
            "lon": place.get("lon"), "lat": place.get("lat"), "jurisdiction": place.get("jurisdiction")}


class LiveFeed:
    """Follows the three logs for the dashboard. One per application; thread-safe for
    readers (its caches only grow, keyed by immutable facts)."""

    def __init__(self, response: ResponseService) -> None:
        from rescity.store.monitoring import MonitoringStore

        self.svc = response
        self.store = response.store
        self.monitoring = MonitoringStore(self.store.engine)
        self._types = {n["name"]: n["type"] for n in self.store.network_summaries()}
        self._places: dict[str, dict[str, Any]] = {}  # alarm id -> opened details + codes

    # -- places and scopes ----------------------------------------------------------------
    def _place(self, alarm_id: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        p = self._places.get(alarm_id)
        if p is None:
            d = details if details is not None else self.monitoring.opened_details([alarm_id]).get(alarm_id, {})
            p = self._with_codes(d)
            self._places[alarm_id] = p
        return p

    def _with_codes(self, d: dict[str, Any]) -> dict[str, Any]:
        codes: tuple[str, ...] = ()
        try:
            j = d.get("jurisdiction")
            lon, lat = d.get("lon"), d.get("lat")
            if j or (lon is not None and lat is not None):
                codes = tuple(c for c in self.svc.place_of(lon, lat, code=j or None).values() if c)
        except ValueError:
            codes = ()
        net = d.get("network")
        nets = tuple(x for x in (net, self._types.get(net or "")) if x)
        return {"network": net, "networks": nets, "codes": codes, "lon": d.get("lon"),
                "lat": d.get("lat"), "jurisdiction": d.get("jurisdiction")}

    def sees_alarm(self, user: User, place: dict[str, Any]) -> bool:
        return can_see_twin(user) and can_read_alarm(user, place["networks"], place["codes"])

    # -- reading --------------------------------------------------------------------------
    def head(self) -> Cursor:
        """The cursor at the end of every log now (a new reader starts here)."""
        with self.store.engine.connect() as conn:
            risk = conn.execute(sa.select(sa.func.max(risk_cell_history_table.c.seq))).scalar()
        return Cursor(self.monitoring.alarm_event_head(), self.svc.rs.head()[0], int(risk or 0))

    def open_alarms(self, user: User) -> list[dict[str, Any]]:
        """The alarms not resolved now (pending or firing) that ``user`` may see, each as
        its latest state with its place, oldest first."""
        rows = [r for r in self.monitoring.alarms() if r["state"] != "resolved"]
        missing = [r["id"] for r in rows if r["id"] not in self._places]
        for aid, d in self.monitoring.opened_details(missing).items():
            self._places[aid] = self._with_codes(d)
        out = []
        for r in rows:
            p = self._place(r["id"])
            if not self.sees_alarm(user, p):
                continue
            lv = WarningLevel(int(r["level"])) if 0 <= int(r["level"]) <= 4 else WarningLevel.NORMAL
            out.append({"alarm": r["id"], "model": r["model"], "asset": r["asset_uid"], "state": r["state"],
                        "level": int(r["level"]), "colour": lv.colour, "colour_zh": lv.label_zh,
                        "opened_ms": int(r["opened_ms"]), "updated_ms": int(r["updated_ms"]),
                        "network": p["network"], "lon": p["lon"], "lat": p["lat"],
                        "jurisdiction": p["jurisdiction"]})
        return out

    def poll(self, user: User, cursor: Cursor | None, *, limit: int = 1000) -> tuple[list[dict[str, Any]], Cursor]:
        """The messages after ``cursor`` that ``user`` may see (at most ``limit`` records
        read from each log per call), and the cursor to pass next time. ``None`` starts
        at the end of the logs (only what happens from now on)."""
        if cursor is None:
            return [], self.head()
        out: list[dict[str, Any]] = []
        a_seq, i_seq, r_seq = cursor.alarm, cursor.audit, cursor.risk
        if can_see_twin(user):
            rows = self.monitoring.alarm_events(after_seq=a_seq, limit=limit)
            for r in rows:
                a_seq = int(r["seq"])
                if not r["alarm_id"]:
                    continue  # book-level events (silences)
                p = self._place(r["alarm_id"], r["details"] if r["kind"] == "opened" else None)
                if self.sees_alarm(user, p):
                    out.append(alarm_view(r, p))
        else:
            a_seq = max(a_seq, self.monitoring.alarm_event_head())
        touched: dict[str, dict[str, Any]] = {}
        n = 0
        for rec in self.svc.rs.audit_records(after_seq=i_seq, chunk=limit):
            i_seq = rec.seq
            n += 1
            if rec.entity == "incident":
                touched[rec.entity_id] = {"action": rec.action, "actor": rec.actor, "ts_ms": rec.ts_ms,
                                          "seq": rec.seq}
            if n >= limit:
                break
        if user.role != Role.CITIZEN:
            for iid, last in touched.items():
                try:
                    inc = self.svc.incident(user, iid)
                except NotFound:
                    continue
                out.append({"type": "incident", **last, "incident": incident_to_doc(inc, timeline=False)})
        t = risk_cell_history_table
        with self.store.engine.connect() as conn:
            rows2 = conn.execute(sa.select(t.c.seq, t.c.cell, t.c.level, t.c.ts_ms).where(t.c.seq > r_seq)
                                 .order_by(t.c.seq).limit(limit * 20)).all()
        if rows2:
            r_seq = int(rows2[-1].seq)
            cells = {r.cell: RISK_COLOURS.get(int(r.level), "blue") for r in rows2}
            out.append({"type": "risk", "seq": r_seq, "ts_ms": int(rows2[-1].ts_ms), "cells": cells})
        return out, Cursor(a_seq, i_seq, r_seq)
