"""The city store: city, jurisdictions, networks, assets, interdependencies, sensors.

Written by hand (it branches on the backend): on PostgreSQL it creates the PostGIS
extension, ``geometry`` columns with an SRID 4326 check constraint and GiST indexes; on
SQLite geometry is an ISO WKB blob and assets/jurisdictions get indexed bounding-box
columns (degrees) for the in-process spatial queries.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SRID = 4326


class _PostgisGeometry(Geometry):
    """``geometry`` without type modifier (2D and 3D allowed; SRID checked by constraint)."""

    def __init__(self) -> None:
        super().__init__(geometry_type="GEOMETRY", srid=SRID, spatial_index=False)

    def get_col_spec(self, **kw: Any) -> str:
        return "geometry"


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _geom() -> sa.types.TypeEngine:
    return _PostgisGeometry() if _pg() else sa.LargeBinary()


def _doc() -> sa.types.TypeEngine:
    return JSONB() if _pg() else sa.JSON()


def _srid_check(name: str) -> list[sa.CheckConstraint]:
    return [sa.CheckConstraint(f"ST_SRID(geom) = {SRID}", name=name)] if _pg() else []


def _bbox() -> list[sa.Column]:
    return [sa.Column(c, sa.Float) for c in ("minx", "miny", "maxx", "maxy")]


def upgrade() -> None:
    pg = _pg()
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    op.create_table(
        "city",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200)),
        sa.Column("admin_code", sa.String(32), nullable=False),
        sa.Column("center_lon", sa.Float, nullable=False),
        sa.Column("center_lat", sa.Float, nullable=False),
        sa.Column("crs", sa.String(64), nullable=False),
        sa.Column("attrs", _doc(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_city_single_row"),
    )

    op.create_table(
        "jurisdiction",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_zh", sa.String(200)),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(64)),
        sa.Column("population", sa.BigInteger, nullable=False),
        sa.Column("geom", _geom(), nullable=False),
        sa.Column("attrs", _doc(), nullable=False),
        *_bbox(),
        *_srid_check("enforce_srid_geom_jurisdiction"),
    )
    op.create_index("ix_jurisdiction_level", "jurisdiction", ["level"])
    op.create_index("ix_jurisdiction_parent_code", "jurisdiction", ["parent_code"])

    op.create_table(
        "network",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("source_format", sa.String(64)),
        sa.Column("placement", sa.JSON(), nullable=False),
        sa.Column("native", sa.JSON()),
        sa.Column("attrs", _doc(), nullable=False),
    )
    op.create_index("ix_network_type", "network", ["type"])

    op.create_table(
        "asset",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(300), nullable=False, unique=True),
        sa.Column(
            "network_id",
            sa.Integer,
            sa.ForeignKey("network.id", ondelete="CASCADE", name="fk_asset_network"),
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(300)),
        sa.Column("name_zh", sa.String(300)),
        sa.Column("population_served", sa.BigInteger),
        sa.Column("start_uid", sa.String(300)),
        sa.Column("end_uid", sa.String(300)),
        sa.Column("geom", _geom(), nullable=False),
        sa.Column("attrs", _doc(), nullable=False),
        *_bbox(),
        sa.CheckConstraint("role IN ('node', 'link', 'facility')", name="ck_asset_role"),
        sa.CheckConstraint(
            "(role = 'facility' AND network_id IS NULL) OR "
            "(role <> 'facility' AND network_id IS NOT NULL)",
            name="ck_asset_network",
        ),
        sa.CheckConstraint(
            "role <> 'link' OR (start_uid IS NOT NULL AND end_uid IS NOT NULL)",
            name="ck_asset_link_ends",
        ),
        *_srid_check("enforce_srid_geom_asset"),
    )
    op.create_index("ix_asset_network_id", "asset", ["network_id"])
    op.create_index("ix_asset_role_kind", "asset", ["role", "kind"])
    op.create_index("ix_asset_kind", "asset", ["kind"])

    op.create_table(
        "interdependency",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dependent_uid", sa.String(300), nullable=False),
        sa.Column("supporting_uid", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("distance_m", sa.Float),
        sa.UniqueConstraint("dependent_uid", "supporting_uid", "kind", name="uq_interdependency"),
    )
    op.create_index("ix_interdependency_supporting_uid", "interdependency", ["supporting_uid"])

    op.create_table(
        "sensor",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("uid", sa.String(300), nullable=False, unique=True),
        sa.Column("asset_uid", sa.String(300), nullable=False),
        sa.Column("quantity", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("low", sa.Float, nullable=False),
        sa.Column("high", sa.Float, nullable=False),
        sa.Column("geom", _geom(), nullable=False),
        sa.Column("attrs", _doc(), nullable=False),
        *_srid_check("enforce_srid_geom_sensor"),
    )
    op.create_index("ix_sensor_asset_uid", "sensor", ["asset_uid"])
    op.create_index("ix_sensor_quantity", "sensor", ["quantity"])

    if pg:
        for table in ("jurisdiction", "asset", "sensor"):
            op.create_index(f"ix_{table}_geom", table, ["geom"], postgresql_using="gist")
    else:
        op.create_index("ix_jurisdiction_bbox", "jurisdiction", ["minx", "maxx", "miny", "maxy"])
        op.create_index("ix_asset_bbox_x", "asset", ["minx", "maxx", "miny", "maxy"])
        op.create_index("ix_asset_bbox_y", "asset", ["miny", "maxy", "minx", "maxx"])


def downgrade() -> None:
    # the PostGIS extension stays: other schemas of the database may use it
    for table in ("sensor", "interdependency", "asset", "network", "jurisdiction", "city"):
        op.drop_table(table)
