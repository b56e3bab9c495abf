"""Scenario runs: the simulations asked through the API, their progress and results.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    doc = JSONB() if pg else sa.JSON()
    op.create_table(
        "scenario_run",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("hazard", sa.String(40), nullable=False),
        sa.Column("params", doc, nullable=False),
        sa.Column("realizations", sa.Integer, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("message", sa.String(300), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("started_ms", sa.BigInteger),
        sa.Column("finished_ms", sa.BigInteger),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("scope", doc, nullable=False),
        sa.Column("result", sa.JSON()),
        sa.Column("png", sa.LargeBinary),
    )
    op.create_index("ix_scenario_run_created", "scenario_run", ["created_ms"])
    op.create_index("ix_scenario_run_status", "scenario_run", ["status"])


def downgrade() -> None:
    op.drop_table("scenario_run")
