"""Readings, dead letters and alarm events in the store (both backends).

* Readings: table ``reading`` (sensor_id, ts_ms, value) with primary key
  (sensor_id, ts_ms); ``sensor_id`` is a compact integer key of the sensor uid
  (``reading_sensor``), so the key is 12 bytes, not a text uid. Inserts ignore what is
  already there, so at-least-once delivery never double-counts. On PostgreSQL the table
  is partitioned by UTC day (``reading_pYYYYMMDD``, created on demand) and a batch goes in
  through one binary ``COPY`` built with NumPy; a batch that would duplicate a stored
  reading makes that COPY fail, and it is then rolled back to a savepoint and redone
  through a temporary table and ``INSERT ... ON CONFLICT DO NOTHING`` (the validator
  removes duplicates upstream, so the slow path is rare). On SQLite the rows go in
  through one ``executemany`` of ``INSERT OR IGNORE`` in primary-key order.
* Dead letters: every rejected message or reading with its reason, counted per reason.
* Alarm events: append-only transitions; the ``alarm`` table keeps each alarm's
  current state for queries.

:meth:`MonitoringStore.write` stores one ingested batch -- readings, dead letters,
alarm events and alarm states -- in **one** transaction, so a crash never leaves
readings without the alarm events they raised or the other way round.

Timestamps are milliseconds since the epoch (UTC); values are SI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from .engine import BEGIN_OPTION
from .schema import (
    READING_PARTITION_PREFIX,
    alarm_event_table,
    alarm_table,
    dead_letter_table,
    reading_sensor_table,
    reading_table,
)

DAY_MS = 86_400_000
"""One UTC day in milliseconds (the PostgreSQL partition width)."""

_INT64_MIN = -(2**63)
SQLITE_CACHE_KIB = 65_536
"""SQLite page cache of a connection that writes readings (KiB)."""

_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_PG_COPY_TRAILER = b"\xff\xff"
_PG_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("k", ">i4"), ("l2", ">i4"), ("t", ">i8"),
                    ("l3", ">i4"), ("v", ">f8")])  # 34 bytes: 3 fields int4, int8, float8


def _text(x: str | None) -> str | None:
    """Text as every backend stores it (PostgreSQL refuses NUL characters)."""
    return None if x is None else x.replace("\x00", "\\x00")


def pg_copy_binary(keys: np.ndarray, ts_ms: np.ndarray, values: np.ndarray) -> bytes:
    """Rows (int4 key, int8 ts, float8 value) in PostgreSQL's binary COPY format, built
    with NumPy (no Python object per row)."""
    rows = np.empty(len(keys), dtype=_PG_ROW)
    rows["n"] = 3
    rows["l1"] = 4
    rows["k"] = keys
    rows["l2"] = 8
    rows["t"] = ts_ms
    rows["l3"] = 8
    rows["v"] = values
    return _PG_COPY_HEADER + rows.tobytes() + _PG_COPY_TRAILER


def latest_sql(backend: str) -> str:
    """The query of :meth:`MonitoringStore.latest` on ``backend`` (parameters ``k``: rows
    per sensor, ``lo``: the smallest int64). SQLite's ``CROSS JOIN`` fixes the join order:
    sensors outside, one primary-key range search of ``reading`` per sensor inside."""
    if backend == "postgresql":
        return ("SELECT s.sensor_uid, r.ts_ms FROM reading_sensor s CROSS JOIN LATERAL "
                "(SELECT ts_ms FROM reading WHERE sensor_id = s.id ORDER BY ts_ms DESC LIMIT :k) r "
                "ORDER BY s.id, r.ts_ms DESC")
    return ("SELECT s.sensor_uid, r.ts_ms FROM reading_sensor s CROSS JOIN reading r "
            "WHERE r.sensor_id = s.id AND r.ts_ms >= COALESCE((SELECT x.ts_ms FROM reading x "
            "WHERE x.sensor_id = s.id ORDER BY x.ts_ms DESC LIMIT 1 OFFSET :k - 1), :lo) "
            "ORDER BY s.id, r.ts_ms DESC")


def _event_rows(events: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"alarm_id": str(e.alarm_id), "model": str(getattr(e, "model", "") or ""),
             "asset_uid": str(getattr(e, "asset", "") or ""), "ts_ms": int(e.ts_ms), "kind": str(e.kind),
             "level_before": e.level_before, "level_after": e.level_after,
             "value": None if e.value is None else float(e.value),
             "details": e.details or {}} for e in events]


def _alarm_rows(alarms: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"id": str(a.id), "model": a.model, "asset_uid": a.asset, "state": str(a.state),
             "level": int(a.level), "opened_ms": int(a.opened_ms), "updated_ms": int(a.updated_ms),
             "attrs": getattr(a, "attrs", None) or {}} for a in alarms]


def _dead_rows(dead: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"received_ms": d.received_ms, "source": d.source, "reason": str(d.reason),
             "detail": _text(d.detail), "sensor_uid": _text(d.sensor), "ts_ms": d.ts_ms,
             "value": _text(d.value), "payload": _text(d.payload)} for d in dead]


class MonitoringStore:
    """Readings, dead letters and alarm events over a :class:`~rescity.store.Store`'s engine.

    Keeps two caches, both filled only after a commit (a rolled-back transaction never
    leaves a key behind): sensor uid -> ``reading_sensor.id``, and the daily partitions
    known to exist (PostgreSQL).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._partitions: set[int] = set()
        self._keys: dict[str, int] = {}
        self._keys_loaded = False
        self._lut_ids: Sequence[str] | None = None
        self._lut = np.zeros(0, dtype=np.int32)

    # -- transactions ----------------------------------------------------------------------
    def _begin(self) -> Any:
        conn = self.engine.connect()
        if self.backend == "sqlite":
            conn = conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        return conn

    def write(self, ids: Sequence[str], sensor: np.ndarray, ts_ms: np.ndarray, values: np.ndarray,
              dead: Iterable[Any] = (), events: Iterable[Any] = (), alarms: Iterable[Any] = ()) -> int:
        """Store one ingested batch in **one** transaction: readings (sensor ``ids[sensor[i]]``,
        ``ts_ms[i]`` ms UTC, ``values[i]`` SI), dead letters
        (:class:`~rescity.monitor.validate.DeadLetter`), alarm events and the current
        state of the alarms they touched (see :meth:`append_alarm_events`). Readings
        already stored are ignored. Returns how many readings were new."""
        dead_rows, ev_rows, al_rows = _dead_rows(dead), _event_rows(events), _alarm_rows(alarms)
        sensor = np.asarray(sensor)
        new_keys: dict[str, int] = {}
        days: set[int] = set()
        stored = 0
        with self._begin() as conn, conn.begin():
            if len(sensor):
                keys = self._sensor_keys(conn, ids, sensor, new_keys)
                stored = self._insert(conn, keys, np.asarray(ts_ms, dtype=np.int64),
                                      np.asarray(values, dtype=np.float64), days)
            if dead_rows:
                conn.execute(sa.insert(dead_letter_table), dead_rows)
            self._write_alarms(conn, ev_rows, al_rows)
        # committed: now the caches may learn what this transaction created
        self._partitions |= days
        self._keys.update(new_keys)
        if self._lut_ids is ids and new_keys:
            for i in np.unique(sensor[self._lut[sensor] < 0]).tolist():
                self._lut[i] = self._keys.get(ids[i], -1)
        return stored

    # -- readings ---------------------------------------------------------------------
    def insert_readings(self, sensor_uids: Sequence[str], ts_ms: np.ndarray, values: np.ndarray) -> int:
        """Store readings idempotently (one transaction); returns how many were new."""
        uniq: dict[str, int] = {}
        idx = np.fromiter((uniq.setdefault(u, len(uniq)) for u in sensor_uids), dtype=np.int32,
                          count=len(sensor_uids))
        return self.write(list(uniq), idx, ts_ms, values)

    def _load_keys(self, conn: sa.Connection) -> None:
        t = reading_sensor_table.c
        self._keys.update({str(u): int(i) for i, u in conn.execute(sa.select(t.id, t.sensor_uid))})
        self._keys_loaded = True

    def _sensor_keys(self, conn: sa.Connection, ids: Sequence[str], sensor: np.ndarray,
                     new_keys: dict[str, int]) -> np.ndarray:
        """``reading_sensor.id`` of every reading (int32); unknown uids get a key in this
        transaction (put into ``new_keys``, cached by the caller after the commit)."""
        if not self._keys_loaded:
            self._load_keys(conn)
        if self._lut_ids is not ids:  # a lookup table per id list (the registry's, normally)
            self._lut_ids = ids
            self._lut = np.fromiter((self._keys.get(u, -1) for u in ids), dtype=np.int32, count=len(ids))
        keys = self._lut[sensor]
        missing = keys < 0
        if not missing.any():
            return keys
        want = sorted({ids[i] for i in np.unique(sensor[missing]).tolist()})
        new_keys.update(self._create_keys(conn, want))
        lut = self._lut.copy()
        for i in np.unique(sensor[missing]).tolist():
            lut[i] = new_keys[ids[i]]
        return lut[sensor]

    def _create_keys(self, conn: sa.Connection, uids: list[str]) -> dict[str, int]:
        t = reading_sensor_table.c
        if self.backend == "postgresql":
            conn.execute(sa.text("INSERT INTO reading_sensor (sensor_uid) SELECT unnest(CAST(:u AS text[])) "
                                 "ON CONFLICT DO NOTHING"), {"u": uids})
            rows = conn.execute(sa.text("SELECT id, sensor_uid FROM reading_sensor "
                                        "WHERE sensor_uid = ANY(CAST(:u AS text[]))"), {"u": uids}).all()
        else:
            raw: Any = conn.connection.driver_connection
            raw.executemany("INSERT OR IGNORE INTO reading_sensor (sensor_uid) VALUES (?)", [(u,) for u in uids])
            rows = []
            for a in range(0, len(uids), 500):
                rows += conn.execute(sa.select(t.id, t.sensor_uid).where(t.sensor_uid.in_(uids[a:a + 500]))).all()
        got = {str(u): int(i) for i, u in rows}
        assert len(got) == len(uids), "every sensor uid has a key after the insert"
        return got

    def _insert(self, conn: sa.Connection, keys: np.ndarray, ts_ms: np.ndarray, values: np.ndarray,
                days: set[int]) -> int:
        # in primary-key order, the index grows at the end of each sensor's range instead of
        # at random places (about twice as fast on both backends)
        order = np.lexsort((ts_ms, keys))
        keys, ts_ms, values = keys[order], ts_ms[order], values[order]
        if self.backend == "postgresql":
            return self._insert_pg(conn, keys, ts_ms, values, days)
        raw: Any = conn.connection.driver_connection
        cur = raw.cursor()
        try:
            # the default page cache (2 MB) is far smaller than the key range one batch touches
            cur.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            cur.executemany("INSERT OR IGNORE INTO reading (sensor_id, ts_ms, value) VALUES (?, ?, ?)",
                            zip(keys.tolist(), ts_ms.tolist(), values.tolist(),
                                strict=True))
            return int(cur.rowcount)
        finally:
            cur.close()

    def _ensure_partitions(self, conn: sa.Connection, ts_ms: np.ndarray) -> set[int]:
        """Create the daily partitions ``ts_ms`` needs; returns the days created or
        checked in this transaction (cached by the caller after the commit)."""
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
        return days

    def _insert_pg(self, conn: sa.Connection, keys: np.ndarray, ts_ms: np.ndarray, values: np.ndarray,
                   days: set[int]) -> int:
        import psycopg

        days |= self._ensure_partitions(conn, ts_ms)
        buf = pg_copy_binary(keys, ts_ms, values)
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:
            # fast path: straight into the table; a duplicate key fails the whole COPY
            cur.execute("SAVEPOINT rescity_readings")
            try:
                with cur.copy("COPY reading (sensor_id, ts_ms, value) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(buf)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT rescity_readings")
            else:
                cur.execute("RELEASE SAVEPOINT rescity_readings")
                return len(keys)
            # some are stored already (a redelivery the validator did not know): stage, then
            # insert what is new
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _rin (sensor_id int4, ts_ms int8, value float8) "
                        "ON COMMIT DELETE ROWS")
            with cur.copy("COPY _rin (sensor_id, ts_ms, value) FROM STDIN (FORMAT BINARY)") as cp:
                cp.write(buf)
            cur.execute("INSERT INTO reading (sensor_id, ts_ms, value) SELECT sensor_id, ts_ms, value "
                        "FROM _rin ON CONFLICT DO NOTHING")
            return int(cur.rowcount)

    def _key_of(self, uid: str) -> Any:
        """The scalar subquery of a sensor uid's key (NULL when it has no readings)."""
        t = reading_sensor_table.c
        return sa.select(t.id).where(t.sensor_uid == uid).scalar_subquery()

    def count_readings(self, sensor_uid: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(reading_table)
        if sensor_uid is not None:
            q = q.where(reading_table.c.sensor_id == self._key_of(sensor_uid))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def readings(self, sensor_uid: str, start_ms: int | None = None,
                 end_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ts_ms, value) of one sensor in time order, optionally in [start, end) (ms UTC)."""
        t = reading_table.c
        q = sa.select(t.ts_ms, t.value).where(t.sensor_id == self._key_of(sensor_uid)).order_by(t.ts_ms)
        if start_ms is not None:
            q = q.where(t.ts_ms >= start_ms)
        if end_ms is not None:
            q = q.where(t.ts_ms < end_ms)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows], dtype=float))

    def latest(self, per_sensor: int = 1) -> tuple[list[str], np.ndarray]:
        """The newest ``per_sensor`` timestamps (ms UTC) of every sensor (to restore a
        validator after a restart): (sensor uids, ts_ms), newest first per sensor.

        Indexed: per sensor, one descending range scan of the primary key (sensor_id,
        ts_ms) -- a ``LATERAL`` join on PostgreSQL, a correlated subquery bounding the
        range on SQLite -- so the cost grows with sensors x ``per_sensor``, not with the
        size of the table.
        """
        k = max(int(per_sensor), 1)
        q = sa.text(latest_sql(self.backend))
        with self.engine.connect() as conn:
            rows = conn.execute(q, {"k": k, "lo": _INT64_MIN}).all()
        return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.int64)

    # -- dead letters -------------------------------------------------------------------
    def add_dead_letters(self, dead: Iterable[Any]) -> int:
        """Store :class:`~rescity.monitor.validate.DeadLetter` records (one transaction);
        returns the count."""
        rows = _dead_rows(dead)
        if rows:
            with self._begin() as conn, conn.begin():
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
        """Append alarm events and upsert the current state of the alarms they touched
        (one transaction; :meth:`write` does the same inside a batch's transaction).

        ``events``: objects with ``alarm_id, ts_ms, kind, level_before, level_after, value,
        details``; ``alarms``: objects with ``id, model, asset, state, level, opened_ms,
        updated_ms`` and optional ``attrs``.
        """
        ev, al = _event_rows(events), _alarm_rows(alarms)
        if ev or al:
            with self._begin() as conn, conn.begin():
                self._write_alarms(conn, ev, al)

    @staticmethod
    def _write_alarms(conn: sa.Connection, ev: list[dict[str, Any]], al: list[dict[str, Any]]) -> None:
        if ev:
            conn.execute(sa.insert(alarm_event_table), ev)
        for row in al:
            updated = conn.execute(
                sa.update(alarm_table).where(alarm_table.c.id == row["id"]).values(
                    state=row["state"], level=row["level"], updated_ms=row["updated_ms"],
                    attrs=row["attrs"]))
            if updated.rowcount == 0:
                conn.execute(sa.insert(alarm_table), [row])

    def alarm_events(self, alarm_id: str | None = None, *, after_seq: int = 0,
                     limit: int | None = None) -> list[dict[str, Any]]:
        """Stored alarm events in order (of one alarm; only those after ``after_seq``, so
        a follower reads what is new, not the whole log; at most ``limit``)."""
        t = alarm_event_table.c
        q = sa.select(alarm_event_table).order_by(t.seq)
        if alarm_id is not None:
            q = q.where(t.alarm_id == alarm_id)
        if after_seq:
            q = q.where(t.seq > after_seq)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def opened_details(self, alarm_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The details of each alarm's ``opened`` event (its place: lon, lat, network,
        jurisdiction), by alarm id, in one query."""
        ids = sorted(set(alarm_ids))
        if not ids:
            return {}
        t = alarm_event_table.c
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for k in range(0, len(ids), 500):
                q = sa.select(t.alarm_id, t.details).where(t.kind == "opened", t.alarm_id.in_(ids[k:k + 500]))
                for r in conn.execute(q):
                    out.setdefault(r.alarm_id, dict(r.details or {}))
        return out

    def alarm_event_head(self) -> int:
        """The newest alarm event's seq (0 if none)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(alarm_event_table.c.seq))).scalar() or 0)

    def alarms(self, state: str | None = None) -> list[dict[str, Any]]:
        t = alarm_table.c
        q = sa.select(alarm_table).order_by(t.opened_ms, t.id)
        if state is not None:
            q = q.where(t.state == state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


