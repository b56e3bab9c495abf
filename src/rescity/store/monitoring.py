"""Readings, dead letters and alarm events in the store (both backends).

* Readings: primary key (sensor, ts), inserts ignore what is already there, so
  at-least-once delivery never double-counts. On PostgreSQL the table is partitioned by
  UTC day (``reading_pYYYYMMDD``, created on demand) and batches go in through COPY into
  a temporary table then ``INSERT ... ON CONFLICT DO NOTHING``.
* Dead letters: every rejected message or reading with its reason, counted per reason.
* Alarm events: append-only transitions; the ``alarm`` table keeps each alarm's
  current state for queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from .schema import (
    READING_PARTITION_PREFIX,
    alarm_event_table,
    alarm_table,
    dead_letter_table,
    reading_table,
)

DAY_MS = 86_400_000


def _text(x: str | None) -> str | None:
    """Text as every backend stores it (PostgreSQL refuses NUL characters)."""
    return None if x is None else x.replace("\x00", "\\x00")


_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(sensor_uids: Sequence[str], ts_ms: np.ndarray, values: np.ndarray) -> str:
    """Rows in PostgreSQL's COPY text format (tab-separated, escaped), built in one go;
    ``repr`` of a float round-trips exactly."""
    uids = [u.translate(_COPY_ESCAPE) for u in sensor_uids]
    return "".join(f"{u}\t{t}\t{v!r}\n" for u, t, v in zip(uids, ts_ms.tolist(), values.tolist(), strict=True))


class MonitoringStore:
    """Readings, dead letters and alarm events over a :class:`~rescity.store.Store`'s engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._partitions: set[int] = set()

    # -- readings ---------------------------------------------------------------------
    def insert_readings(self, sensor_uids: Sequence[str], ts_ms: np.ndarray, values: np.ndarray) -> int:
        """Store readings idempotently; returns how many were new."""
        n = len(sensor_uids)
        if n == 0:
            return 0
        if self.backend == "postgresql":
            return self._insert_pg(sensor_uids, ts_ms, values)
        rows = sorted(zip(sensor_uids, ts_ms.tolist(), values.tolist(), strict=True))
        with self.engine.begin() as conn:
            raw: Any = conn.connection.driver_connection
            cur = raw.cursor()
            try:
                cur.executemany("INSERT OR IGNORE INTO reading (sensor_uid, ts_ms, value) VALUES (?, ?, ?)", rows)
                return int(cur.rowcount)
            finally:
                cur.close()

    def _ensure_partitions(self, conn: sa.Connection, ts_ms: np.ndarray) -> None:
        days = set((np.unique(ts_ms // DAY_MS)).tolist()) - self._partitions
        for day in sorted(days):
            start, end = day * DAY_MS, (day + 1) * DAY_MS
            name = f"{READING_PARTITION_PREFIX}{dt.datetime.fromtimestamp(day * 86400, dt.UTC):%Y%m%d}"
            exists = conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar()
            if exists is None:
                # readings already in the default partition for that day must move first
                moved = conn.execute(sa.text(
                    "SELECT count(*) FROM reading_p_default WHERE ts_ms >= :a AND ts_ms < :b"),
                    {"a": start, "b": end}).scalar_one()
                if moved:
                    conn.exec_driver_sql(
                        f"CREATE TEMP TABLE _move ON COMMIT DROP AS SELECT * FROM reading_p_default "
                        f"WHERE ts_ms >= {start} AND ts_ms < {end}")
                    conn.exec_driver_sql(
                        f"DELETE FROM reading_p_default WHERE ts_ms >= {start} AND ts_ms < {end}")
                conn.exec_driver_sql(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF reading "
                    f"FOR VALUES FROM ({start}) TO ({end})")
                if moved:
                    conn.exec_driver_sql("INSERT INTO reading SELECT * FROM _move")
                    conn.exec_driver_sql("DROP TABLE _move")
            self._partitions.add(day)

    def _insert_pg(self, sensor_uids: Sequence[str], ts_ms: np.ndarray, values: np.ndarray) -> int:
        with self.engine.begin() as conn:
            self._ensure_partitions(conn, ts_ms)
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cur:
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS _rin (sensor_uid text, ts_ms bigint, "
                            "value float8) ON COMMIT DELETE ROWS")
                with cur.copy("COPY _rin (sensor_uid, ts_ms, value) FROM STDIN") as cp:
                    cp.write(_copy_text(sensor_uids, ts_ms, values))
                cur.execute("INSERT INTO reading SELECT sensor_uid, ts_ms, value FROM _rin "
                            "ON CONFLICT DO NOTHING")
                return int(cur.rowcount)

    def count_readings(self, sensor_uid: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(reading_table)
        if sensor_uid is not None:
            q = q.where(reading_table.c.sensor_uid == sensor_uid)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def readings(self, sensor_uid: str, start_ms: int | None = None,
                 end_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ts_ms, value) of one sensor in time order, optionally in [start, end)."""
        t = reading_table.c
        q = sa.select(t.ts_ms, t.value).where(t.sensor_uid == sensor_uid).order_by(t.ts_ms)
        if start_ms is not None:
            q = q.where(t.ts_ms >= start_ms)
        if end_ms is not None:
            q = q.where(t.ts_ms < end_ms)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows], dtype=float))

    def latest(self, per_sensor: int = 1) -> tuple[list[str], np.ndarray]:
        """The newest ``per_sensor`` timestamps of every sensor (to restore a validator
        after a restart): (sensor uids, ts_ms)."""
        t = reading_table.c
        rn = sa.func.row_number().over(partition_by=t.sensor_uid, order_by=t.ts_ms.desc()).label("rn")
        inner = sa.select(t.sensor_uid, t.ts_ms, rn).subquery()
        q = sa.select(inner.c.sensor_uid, inner.c.ts_ms).where(inner.c.rn <= per_sensor)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.int64)

    # -- dead letters -------------------------------------------------------------------
    def add_dead_letters(self, dead: Iterable[Any]) -> int:
        """Store :class:`~rescity.monitor.validate.DeadLetter` records; returns the count."""
        rows = [{"received_ms": d.received_ms, "source": d.source, "reason": str(d.reason),
                 "detail": _text(d.detail), "sensor_uid": _text(d.sensor), "ts_ms": d.ts_ms,
                 "value": _text(d.value), "payload": _text(d.payload)} for d in dead]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(dead_letter_table), rows)
        return len(rows)

    def dead_letter_counts(self) -> dict[str, int]:
        t = dead_letter_table.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.reason, sa.func.count()).group_by(t.reason)).all()
        return {r[0]: int(r[1]) for r in rows}

    def dead_letters(self, reason: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        t = dead_letter_table.c
        q = sa.select(dead_letter_table).order_by(t.id.desc()).limit(limit)
        if reason is not None:
            q = q.where(t.reason == reason)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- alarms -----------------------------------------------------------------------------
    def append_alarm_events(self, events: Iterable[Any], alarms: Iterable[Any] = ()) -> None:
        """Append alarm events and upsert the current state of the alarms they touched.

        ``events``: objects with ``alarm_id, ts_ms, kind, level_before, level_after, value,
        details``; ``alarms``: objects with ``id, model, asset, state, level, opened_ms,
        updated_ms`` and optional ``attrs``.
        """
        ev = [{"alarm_id": str(e.alarm_id), "model": str(getattr(e, "model", "") or ""),
               "asset_uid": str(getattr(e, "asset", "") or ""), "ts_ms": int(e.ts_ms), "kind": str(e.kind),
               "level_before": e.level_before, "level_after": e.level_after,
               "value": None if e.value is None else float(e.value),
               "details": e.details or {}} for e in events]
        al = [{"id": str(a.id), "model": a.model, "asset_uid": a.asset, "state": str(a.state),
               "level": int(a.level), "opened_ms": int(a.opened_ms), "updated_ms": int(a.updated_ms),
               "attrs": getattr(a, "attrs", None) or {}} for a in alarms]
        with self.engine.begin() as conn:
            if ev:
                conn.execute(sa.insert(alarm_event_table), ev)
            for row in al:
                updated = conn.execute(
                    sa.update(alarm_table).where(alarm_table.c.id == row["id"]).values(
                        state=row["state"], level=row["level"], updated_ms=row["updated_ms"],
                        attrs=row["attrs"]))
                if updated.rowcount == 0:
                    conn.execute(sa.insert(alarm_table), [row])

    def alarm_events(self, alarm_id: str | None = None) -> list[dict[str, Any]]:
        t = alarm_event_table.c
        q = sa.select(alarm_event_table).order_by(t.seq)
        if alarm_id is not None:
            q = q.where(t.alarm_id == alarm_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def alarms(self, state: str | None = None) -> list[dict[str, Any]]:
        t = alarm_table.c
        q = sa.select(alarm_table).order_by(t.opened_ms, t.id)
        if state is not None:
            q = q.where(t.state == state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


