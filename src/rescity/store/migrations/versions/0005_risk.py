"""Risk register and risk map: risk points, the current risk of grid cells, and the
history of the cells' levels.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    doc = JSONB() if pg else sa.JSON()
    op.create_table(
        "risk_point",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("hazard", sa.String(100), nullable=False),
        sa.Column("likelihood", sa.SmallInteger, nullable=False),
        sa.Column("consequence", sa.SmallInteger, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("grid", sa.String(64)),
        sa.Column("street", sa.String(64)),
        sa.Column("district", sa.String(64)),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("doc", doc, nullable=False),
    )
    op.create_index("ix_risk_point_grid", "risk_point", ["grid"])
    op.create_index("ix_risk_point_district", "risk_point", ["district"])
    op.create_table(
        "risk_cell",
        sa.Column("cell", sa.String(64), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "risk_cell_history",
        sa.Column("seq", sa.Integer() if not pg else sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("cell", sa.String(64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
    )
    op.create_index("ix_risk_cell_history_cell", "risk_cell_history", ["cell", "ts_ms"])


def downgrade() -> None:
    for t in ("risk_cell_history", "risk_cell", "risk_point"):
        op.drop_table(t)
