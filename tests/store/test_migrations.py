"""Migrations, URLs and opening the store."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from rescity.store import Store, StoreError, default_url, head_revision, normalise_url
from rescity.store.schema import autogenerate_filters, metadata
from rescity.store.store import MIGRATIONS

from .citydata import make_city


def test_migrated_schema_matches_schema_module(store: Store) -> None:
    """The hand-written migration and schema.py describe the same tables and indexes."""
    with store.engine.connect() as conn:
        mc = MigrationContext.configure(
            conn, opts={"compare_type": True, **autogenerate_filters(store.backend)}
        )
        assert compare_metadata(mc, metadata) == []


def test_postgis_columns_and_indexes(store: Store) -> None:
    with store.engine.connect() as conn:
        if store.backend == "postgresql":
            cols = conn.execute(
                sa.text(
                    "SELECT f_table_name, srid, type FROM geometry_columns "
                    "WHERE f_table_schema = 'public' ORDER BY f_table_name"
                )
            ).all()
            assert [tuple(c) for c in cols] == [
                ("asset", 4326, "GEOMETRY"),
                ("jurisdiction", 4326, "GEOMETRY"),
                ("sensor", 4326, "GEOMETRY"),
            ]
            gist = (
                conn.execute(
                    sa.text(
                        "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%' ORDER BY 1"
                    )
                )
                .scalars()
                .all()
            )
            assert gist == ["ix_asset_geom", "ix_jurisdiction_geom", "ix_sensor_geom"]
            with pytest.raises(sa.exc.DBAPIError, match="enforce_srid"):
                conn.exec_driver_sql(
                    "INSERT INTO sensor (uid, asset_uid, quantity, unit, low, high, geom, attrs) "
                    "VALUES ('s', 'a', 'flow', 'm3/s', 0, 1, 'SRID=3857;POINT(0 0)', '{}')"
                )
        else:
            names = {i["name"] for i in sa.inspect(conn).get_indexes("asset")}
            assert {"ix_asset_bbox_x", "ix_asset_bbox_y"} <= names


def test_downgrade_and_upgrade_again(store: Store) -> None:
    store.save_city(make_city())
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert store.revision() is None
    with store.engine.connect() as conn:
        assert "asset" not in sa.inspect(conn).get_table_names()
    store.migrate()
    assert store.revision() == head_revision()
    store.save_city(make_city())
    assert store.load_city() == make_city()


def test_normalise_url() -> None:
    assert normalise_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert normalise_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"


def test_default_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESCITY_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = default_url()
    assert url == f"sqlite:///{tmp_path.resolve() / '.rescity' / 'rescity.db'}"
    assert (tmp_path / ".rescity").is_dir()
    with Store.open() as s:
        assert s.backend == "sqlite"
        assert (tmp_path / ".rescity" / "rescity.db").is_file()
    monkeypatch.setenv("RESCITY_DATABASE_URL", "postgresql://postgres@db.example/rescity")
    assert default_url() == "postgresql+psycopg://postgres@db.example/rescity"


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot connect"):
        Store.open("postgresql://postgres:secret@127.0.0.1:1/nope")
    try:
        Store.open("postgresql://postgres:secret@127.0.0.1:1/nope")
    except StoreError as e:
        assert "secret" not in str(e)
    with pytest.raises(StoreError, match="unsupported"):
        Store.open("mysql://x/y")
    # the SQLite folder is created
    with Store.open(f"sqlite:///{tmp_path / 'a' / 'b' / 'c.db'}") as s:
        assert s.revision() == head_revision()
