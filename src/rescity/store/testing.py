"""Test support: a fresh store on each backend (a pytest plugin module).

Use it from any test folder::

    # tests/<area>/conftest.py
    from rescity.store.testing import store  # noqa: F401  (the parametrized fixture)

    def test_something(store):            # runs once on SQLite, once on PostgreSQL
        store.save_city(city)

or call :func:`make_test_store` yourself. The PostgreSQL database is
``$RESCITY_TEST_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/rescity_test``,
with ``_<worker>`` appended under pytest-xdist); it is created if missing, and every
store starts from a clean slate. PostgreSQL cases carry the ``postgres`` marker; if the
server is unreachable they **fail**, unless ``RESCITY_SKIP_POSTGRES=1``, which skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .engine import normalise_url
from .store import Store

DEFAULT_TEST_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/rescity_test"
ENV_TEST_URL = "RESCITY_TEST_DATABASE_URL"
ENV_SKIP = "RESCITY_SKIP_POSTGRES"

BACKENDS = ("sqlite", "postgresql")

_ensured: set[str] = set()


def backend_params() -> list[object]:
    """``pytest.param`` for each backend, PostgreSQL marked ``postgres``."""
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]


def postgres_test_url() -> str:
    """The PostgreSQL test database URL of this process (one database per xdist worker)."""
    url = make_url(normalise_url(os.environ.get(ENV_TEST_URL) or DEFAULT_TEST_URL))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        url = url.set(database=f"{url.database}_{worker}")
    return url.render_as_string(hide_password=False)


def _skip_postgres() -> bool:
    return os.environ.get(ENV_SKIP, "").strip().lower() in ("1", "true", "yes")


def ensure_database(url: str) -> None:
    """Create the database of ``url`` if missing (through the ``postgres`` database)."""
    if url in _ensured:
        return
    u = make_url(url)
    admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": u.database}
            ).scalar()
            if not exists:
                quoted = conn.dialect.identifier_preparer.quote(str(u.database))
                conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        admin.dispose()
    _ensured.add(url)


def _own_relations(conn: sa.Connection) -> list[tuple[str, str]]:
    """(name, relkind) of the relations of schema ``public`` that no extension owns."""
    return [
        (str(r[0]), str(r[1]))
        for r in conn.execute(
            sa.text(
                """
                SELECT c.relname, c.relkind FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                  WHERE d.objid = c.oid AND d.deptype = 'e')
                """
            )
        )
    ]


_dropped: set[str] = set()  # databases whose tables this process has dropped once


def reset_database(url: str, *, full: bool | None = None, drop_schema: bool = False) -> None:
    """Give the database a clean slate.

    The first reset of a database in a process (or ``full=True``) drops every table,
    view and sequence of schema ``public`` that no extension owns, so the migrations run
    from scratch (PostGIS stays installed: recreating it costs about 0.6 s). Later resets
    only ``TRUNCATE`` the tables (keeping ``alembic_version``), which is ten times faster;
    :meth:`Store.open` upgrades whatever a test left behind. With ``drop_schema`` the
    schema ``public`` itself is dropped and recreated.
    """
    if full is None:
        full = url not in _dropped
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            prep = conn.dialect.identifier_preparer
            if drop_schema:
                conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
            elif full:
                kinds = {
                    "r": "TABLE",
                    "p": "TABLE",
                    "v": "VIEW",
                    "m": "MATERIALIZED VIEW",
                    "S": "SEQUENCE",
                }
                rels = _own_relations(conn)
                for kind in ("v", "m", "r", "p", "S"):
                    for name, k in rels:
                        if k == kind:
                            conn.exec_driver_sql(
                                f"DROP {kinds[k]} IF EXISTS public.{prep.quote(name)} CASCADE"
                            )
            else:
                tables = [
                    f"public.{prep.quote(n)}"
                    for n, k in _own_relations(conn)
                    if k in ("r", "p") and n != "alembic_version"
                ]
                if tables:
                    conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()
    if full or drop_schema:
        _dropped.add(url)


def make_test_store(backend: str, tmp_path: Path) -> Store:
    """A migrated, empty store on ``backend`` (``"sqlite"`` or ``"postgresql"``).

    SQLite: a file in ``tmp_path``. PostgreSQL: the test database, created if missing and
    reset. If PostgreSQL is unreachable this fails the test (skips it only when
    ``RESCITY_SKIP_POSTGRES=1``).
    """
    if backend == "sqlite":
        return Store.open(f"sqlite:///{Path(tmp_path) / 'rescity.db'}")
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if _skip_postgres():
        pytest.skip(f"PostgreSQL tests skipped ({ENV_SKIP}=1)")
    url = postgres_test_url()
    try:
        ensure_database(url)
        reset_database(url)
    except sa.exc.OperationalError as e:
        masked = make_url(url).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL test database {masked} is unreachable ({e.orig}); start PostgreSQL "
            f"+ PostGIS, point {ENV_TEST_URL} at one, or set {ENV_SKIP}=1 to skip",
            pytrace=False,
        )
    return Store.open(url)


@pytest.fixture(params=backend_params())
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store, once per backend."""
    s = make_test_store(request.param, tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=backend_params())
def store_backend(request: pytest.FixtureRequest) -> str:
    """The backend name alone, for tests that open stores themselves."""
    return str(request.param)
