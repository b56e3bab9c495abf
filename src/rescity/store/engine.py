"""Database URLs and engines for the two backends (SQLite file, PostgreSQL + PostGIS)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from .schema import json_dumps, json_loads

ENV_URL = "RESCITY_DATABASE_URL"
"""Environment variable naming the database of a deployment."""

BEGIN_OPTION = "rescity_sqlite_begin"
"""Execution option: the SQLite ``BEGIN`` flavour (``"IMMEDIATE"`` for writers)."""


def normalise_url(url: str | URL) -> str:
    """A SQLAlchemy URL string with the driver ResCity uses.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3);
    everything else is returned as given.
    """
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    return text


def default_url() -> str:
    """The database of this process: ``$RESCITY_DATABASE_URL`` or the embedded SQLite file.

    The embedded default is ``sqlite:///<cwd>/.rescity/rescity.db``; the folder is created.
    """
    env = os.environ.get(ENV_URL, "").strip()
    if env:
        return normalise_url(env)
    folder = Path.cwd() / ".rescity"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'rescity.db').resolve()}"


def backend_of(url: str | URL) -> str:
    """``"sqlite"`` or ``"postgresql"`` for a URL (raises :class:`ValueError` otherwise)."""
    name = make_url(normalise_url(url)).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database backend {name!r}: use sqlite or postgresql")
    return name


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine configured for the city store.

    SQLite: the folder of the file is created; foreign keys on; WAL journal; pysqlite's
    own transaction handling is switched off and SQLAlchemy emits ``BEGIN`` itself, so
    DDL is transactional and SAVEPOINTs work (the recipe of the SQLAlchemy docs); a
    connection with execution option ``rescity_sqlite_begin="IMMEDIATE"`` takes the write
    lock at ``BEGIN``. An in-memory database (``sqlite://``) uses one shared connection.

    Both backends serialise JSON with :func:`rescity.store.schema.json_dumps`.
    """
    u = make_url(normalise_url(url))
    backend = backend_of(u)
    kwargs: dict[str, Any] = {
        "echo": echo,
        "json_serializer": json_dumps,
        "json_deserializer": json_loads,
    }
    if backend == "sqlite":
        db = u.database
        memory = db in (None, "", ":memory:") or (u.query.get("mode") == "memory")
        if memory:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            Path(db).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
            kwargs["connect_args"] = {"timeout": 30.0}
        engine = sa.create_engine(u, **kwargs)
        _sqlite_events(engine, memory=memory)
        return engine
    kwargs["pool_pre_ping"] = True
    return sa.create_engine(u, **kwargs)


def _sqlite_events(engine: Engine, *, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see below)
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        if not memory:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())
