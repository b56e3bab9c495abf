"""Alembic environment of the city store.

:meth:`rescity.store.Store.open` runs the migrations programmatically and hands its own
connection in ``config.attributes["connection"]``; from the command line
(``alembic -x url=... upgrade head`` with a ``script_location`` pointing here) the URL is
taken from ``-x url=``, ``sqlalchemy.url`` or ``RESCITY_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context

from rescity.store.schema import autogenerate_filters, metadata

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        **autogenerate_filters(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from rescity.store.engine import default_url, make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = make_engine(url or default_url())
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the ResCity store migrations run online only (they branch on the backend)")
run_migrations_online()
