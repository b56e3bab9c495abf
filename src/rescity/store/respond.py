"""The response loop in the store (both backends): the audit chain, incidents, users,
citizen reports and published warnings.

Every change goes through :meth:`ResponseStore.tx`, one transaction that appends its audit
records to the chain (serialised: ``SELECT ... FOR UPDATE`` on the chain's head on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and updates the projections (the ``incident``
rows, reports, users) with them, so the log and what it describes never disagree.
An incident's events *are* its audit records (entity ``incident``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rescity.model.incident import Action, Incident, IncidentEvent, IncidentState
from rescity.respond.audit import GENESIS, AuditRecord, canonical_json, seal
from rescity.respond.lifecycle import incident_to_doc

from .engine import BEGIN_OPTION
from .response_schema import (
    audit_head_table,
    audit_table,
    citizen_report_table,
    incident_key_table,
    incident_table,
    publication_table,
    user_table,
)


def _record(row: Any) -> AuditRecord:
    body = json.loads(row.body)
    return AuditRecord(seq=int(row.seq), ts_ms=int(row.ts_ms), actor=row.actor, action=row.action,
                       entity=row.entity, entity_id=row.entity_id, before=body.get("before"),
                       after=body.get("after"), data=body.get("data") or {},
                       prev_hash=row.prev_hash, hash=row.hash)


def event_of(rec: AuditRecord) -> IncidentEvent:
    """The incident event an audit record of entity ``incident`` holds."""
    return IncidentEvent(rec.entity_id, rec.ts_ms, rec.actor, Action(rec.action),
                         IncidentState(rec.before) if rec.before else None,
                         IncidentState(rec.after), dict(rec.data))


class Tx:
    """One transaction of the response store (from :meth:`ResponseStore.tx`)."""

    def __init__(self, conn: Connection, head: AuditRecord | None) -> None:
        self.conn = conn
        self._head = head
        self.appended: list[AuditRecord] = []

    def audit(self, *, ts_ms: int, actor: str, action: str, entity: str, entity_id: str,
              before: Any = None, after: Any = None, data: dict[str, Any] | None = None) -> AuditRecord:
        rec = seal(self._head, ts_ms=ts_ms, actor=actor, action=action, entity=entity,
                   entity_id=entity_id, before=before, after=after, data=data)
        body = canonical_json({"before": rec.before, "after": rec.after, "data": rec.data})
        self.conn.execute(audit_table.insert().values(
            seq=rec.seq, ts_ms=rec.ts_ms, actor=rec.actor, action=rec.action, entity=rec.entity,
            entity_id=rec.entity_id, body=body, prev_hash=rec.prev_hash, hash=rec.hash))
        self._head = rec
        self.appended.append(rec)
        return rec

    def event(self, ev: IncidentEvent) -> AuditRecord:
        """Append an incident event to the chain."""
        return self.audit(ts_ms=ev.ts_ms, actor=ev.actor, action=ev.action.value, entity="incident",
                          entity_id=ev.incident_id, before=ev.before.value if ev.before else None,
                          after=ev.after.value, data=ev.data)

    def put_incident(self, inc: Incident) -> None:
        from rescity.respond.deadlines import next_due

        doc = json.loads(canonical_json(incident_to_doc(inc, timeline=False)))
        vals = dict(state=inc.state.value, level=inc.level, type=inc.type, source=inc.source.value,
                    network=inc.network, grid=inc.grid, street=inc.street, district=inc.district,
                    tier=inc.tier.value, lon=inc.lon, lat=inc.lat, created_ms=inc.created_ms,
                    updated_ms=inc.updated_ms, next_due_ms=next_due(inc), doc=doc)
        n = self.conn.execute(incident_table.update().where(incident_table.c.id == inc.id)
                              .values(**vals)).rowcount
        if n == 0:
            self.conn.execute(incident_table.insert().values(id=inc.id, **vals))
        keys = [("alarm", a) for a in inc.alarm_ids] + [("group", g) for g in inc.alarm_groups] \
            + [("report", r) for r in inc.report_refs]
        if keys:
            t = incident_key_table
            have = {(r.kind, r.key) for r in self.conn.execute(
                sa.select(t.c.kind, t.c.key).where(t.c.incident_id == inc.id))}
            new = [{"kind": k, "key": v, "incident_id": inc.id} for k, v in keys if (k, v) not in have]
            if new:
                # a key moves to the incident that now holds it (a merge, a second group)
                for row in new:
                    self.conn.execute(t.delete().where(t.c.kind == row["kind"], t.c.key == row["key"]))
                self.conn.execute(t.insert(), new)

    def count_with_prefix(self, what: str, prefix: str) -> int:
        """How many incidents (``what="incident"``) or reports (``"report"``) have an id
        starting with ``prefix`` (inside the transaction: ids are handed out serially)."""
        t, col = ((incident_table, incident_table.c.id) if what == "incident"
                  else (citizen_report_table, citizen_report_table.c.ref))
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(t)
                                     .where(col.like(prefix + "%"))).scalar_one())

    def put_user(self, row: dict[str, Any]) -> None:
        n = self.conn.execute(user_table.update().where(user_table.c.username == row["username"])
                              .values(**row)).rowcount
        if n == 0:
            self.conn.execute(user_table.insert().values(**row))

    def put_report(self, ref: str, username: str, incident_id: str, category: str,
                   created_ms: int, doc: dict[str, Any]) -> None:
        vals = dict(username=username, incident_id=incident_id, category=category,
                    created_ms=created_ms, doc=doc)
        n = self.conn.execute(citizen_report_table.update()
                              .where(citizen_report_table.c.ref == ref).values(**vals)).rowcount
        if n == 0:
            self.conn.execute(citizen_report_table.insert().values(ref=ref, **vals))

    def put_publication(self, identifier: str, incident_id: str | None, msg_type: str,
                        sent_ms: int, doc: dict[str, Any]) -> None:
        self.conn.execute(publication_table.insert().values(
            identifier=identifier, incident_id=incident_id, msg_type=msg_type, sent_ms=sent_ms,
            doc=doc))


class ResponseStore:
    """Response-loop tables over a SQLAlchemy engine (the city store's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    # -- writing ------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[Tx]:
        with self.engine.connect() as conn:
            conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                q = sa.select(audit_head_table.c.seq, audit_head_table.c.hash).where(
                    audit_head_table.c.id == 1)
                if self._pg:
                    conn.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :g) "
                                         "ON CONFLICT (id) DO NOTHING"), {"g": GENESIS})
                    q = q.with_for_update()
                head_row = conn.execute(q).first()
                # the next record chains from the head (seq and hash are all seal() needs)
                head = (AuditRecord(int(head_row.seq), 0, "", "", "", "", hash=head_row.hash)
                        if head_row is not None and head_row.seq > 0 else None)
                t = Tx(conn, head)
                yield t
                if t.appended:
                    new = t.appended[-1]
                    if head_row is None:
                        conn.execute(audit_head_table.insert().values(id=1, seq=new.seq, hash=new.hash))
                    else:
                        conn.execute(audit_head_table.update().where(audit_head_table.c.id == 1)
                                     .values(seq=new.seq, hash=new.hash))

    def reset_demo(self) -> None:
        """Empty every response table, the audit chain included. Only for the demo city,
        which is rebuilt from scratch on every run; a real deployment never calls this."""
        with self.engine.begin() as conn:
            for t in (publication_table, citizen_report_table, incident_key_table, incident_table,
                      user_table, audit_table, audit_head_table):
                conn.execute(sa.delete(t))

    # -- the audit chain ------------------------------------------------------------------
    def head(self) -> tuple[int, str]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(audit_head_table.c.seq, audit_head_table.c.hash)).first()
        return (0, GENESIS) if row is None else (int(row.seq), row.hash)

    def audit_records(self, *, entity: str | None = None, entity_id: str | None = None,
                      chunk: int = 5000, after_seq: int = 0) -> Iterator[AuditRecord]:
        """The chain in ``seq`` order (optionally one entity's records; only those after
        ``after_seq``, so a follower reads what is new), read in chunks."""
        last = int(after_seq)
        while True:
            q = sa.select(audit_table).where(audit_table.c.seq > last)
            if entity is not None:
                q = q.where(audit_table.c.entity == entity)
            if entity_id is not None:
                q = q.where(audit_table.c.entity_id == entity_id)
            with self.engine.connect() as conn:
                rows = conn.execute(q.order_by(audit_table.c.seq).limit(chunk)).all()
            if not rows:
                return
            for r in rows:
                yield _record(r)
            last = int(rows[-1].seq)

    # -- incidents ----------------------------------------------------------------------
    def incident_events(self, incident_id: str) -> list[IncidentEvent]:
        return [event_of(r) for r in self.audit_records(entity="incident", entity_id=incident_id)]

    def incident_docs(self, *, states: Sequence[str] | None = None,
                      places: Sequence[str] | None = None, ids: Sequence[str] | None = None,
                      since_ms: int | None = None, due_by_ms: int | None = None,
                      types: Sequence[str] | None = None,
                      bbox: tuple[float, float, float, float] | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
        """Projection documents, newest first. ``places``: jurisdiction codes (grid, street
        or district) — an incident matches if any of its codes is among them;
        ``due_by_ms``: only incidents with an unmet deadline at or before it (indexed);
        ``bbox``: (min lon, min lat, max lon, max lat)."""
        t = incident_table
        q = sa.select(t.c.doc)
        if types is not None:
            q = q.where(t.c.type.in_(list(types)))
        if bbox is not None:
            q = q.where(t.c.lon.between(bbox[0], bbox[2]), t.c.lat.between(bbox[1], bbox[3]))
        if due_by_ms is not None:
            q = q.where(t.c.next_due_ms <= due_by_ms)
        if states:
            q = q.where(t.c.state.in_(list(states)))
        if places is not None:
            ps = list(places)
            q = q.where(sa.or_(t.c.grid.in_(ps), t.c.street.in_(ps), t.c.district.in_(ps)))
        if ids is not None:
            q = q.where(t.c.id.in_(list(ids)))
        if since_ms is not None:
            q = q.where(t.c.updated_ms >= since_ms)
        q = q.order_by(t.c.created_ms.desc(), t.c.id.desc())
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r.doc) for r in conn.execute(q)]

    def incidents_by_key(self, kind: str, keys: Sequence[str]) -> list[str]:
        """Ids of the incidents that alarms / groups / reports (``kind``) point at."""
        if not keys:
            return []
        t = incident_key_table
        with self.engine.connect() as conn:
            return sorted({r.incident_id for r in conn.execute(
                sa.select(t.c.incident_id).where(t.c.kind == kind, t.c.key.in_(list(keys))))})

    def incident_rows(self) -> Iterator[dict[str, Any]]:
        """Every incident row: its columns and its document."""
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(incident_table).order_by(incident_table.c.id)):
                yield dict(r._mapping)

    def count_incidents_with_prefix(self, prefix: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(incident_table)
                                    .where(incident_table.c.id.like(prefix + "%"))).scalar_one())

    # -- users --------------------------------------------------------------------------
    def user_row(self, username: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(user_table).where(user_table.c.username == username)).first()
        return None if r is None else dict(r._mapping)

    def user_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(user_table)
                                                           .order_by(user_table.c.username))]

    # -- citizen reports ----------------------------------------------------------------
    def report(self, ref: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(citizen_report_table)
                             .where(citizen_report_table.c.ref == ref)).first()
        return None if r is None else dict(r._mapping)

    def reports(self, *, username: str | None = None, incident_id: str | None = None) -> list[dict[str, Any]]:
        t = citizen_report_table
        q = sa.select(t)
        if username is not None:
            q = q.where(t.c.username == username)
        if incident_id is not None:
            q = q.where(t.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(t.c.created_ms.desc()))]

    def count_reports_with_prefix(self, prefix: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(citizen_report_table)
                                    .where(citizen_report_table.c.ref.like(prefix + "%"))).scalar_one())

    # -- the city -------------------------------------------------------------------------
    def city_row(self) -> dict[str, Any] | None:
        """The city's own row (name, division code, centre), without its networks."""
        from .schema import city_table

        with self.engine.connect() as conn:
            r = conn.execute(sa.select(city_table)).first()
        return None if r is None else dict(r._mapping)

    # -- publications -------------------------------------------------------------------
    def publications(self, incident_id: str | None = None) -> list[dict[str, Any]]:
        t = publication_table
        q = sa.select(t)
        if incident_id is not None:
            q = q.where(t.c.incident_id == incident_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(t.c.sent_ms))]
