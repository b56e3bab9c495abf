"""Alembic environment of the city store.

:meth:`rescity.store.Store.open` runs the migrations programmatically and hands its own
connection in ``config.attributes["connection"]``; from the command line
(``alembic -x url=... upgrade head`` with a ``script_location`` pointing here) the URL is
taken from ``-x url=``, ``sqlalchemy.url`` or ``RESCITY_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from rescity.store.schema import metadata

config = context.config

# tables that PostGIS itself owns: never touched by autogenerate
_FOREIGN_TABLES = {"spatial_ref_sys", "topology", "layer"}


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (type_ == "table" and name in _FOREIGN_TABLES)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from rescity.store import default_url, normalise_url

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(normalise_url(url) if url else default_url())
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the ResCity store migrations run online only (they branch on the backend)")
run_migrations_online()
