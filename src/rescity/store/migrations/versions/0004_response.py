"""Response loop: the hash-chained audit log and its head, incidents (and the alarms,
groups and reports that point at them), users, citizen reports, published warnings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _doc() -> sa.types.TypeEngine:
    return JSONB() if op.get_bind().dialect.name == "postgresql" else sa.JSON()


def _bigid() -> sa.types.TypeEngine:
    return sa.Integer() if op.get_bind().dialect.name == "sqlite" else sa.BigInteger()


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", _bigid(), primary_key=True, autoincrement=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_entity", "audit_log", ["entity", "entity_id", "seq"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.create_table(
        "incident",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("network", sa.String(100)),
        sa.Column("grid", sa.String(64)),
        sa.Column("street", sa.String(64)),
        sa.Column("district", sa.String(64)),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("lon", sa.Float),
        sa.Column("lat", sa.Float),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("next_due_ms", sa.BigInteger),
        sa.Column("doc", _doc(), nullable=False),
    )
    op.create_index("ix_incident_state", "incident", ["state"])
    op.create_index("ix_incident_next_due", "incident", ["next_due_ms"])
    op.create_index("ix_incident_type_lon_lat", "incident", ["type", "lon", "lat"])
    op.create_table(
        "incident_key",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("incident_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_incident_key_incident", "incident_key", ["incident_id"])
    op.create_index("ix_incident_district", "incident", ["district"])
    op.create_index("ix_incident_street", "incident", ["street"])
    op.create_index("ix_incident_created", "incident", ["created_ms"])
    op.create_table(
        "app_user",
        sa.Column("username", sa.String(100), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("jurisdictions", _doc(), nullable=False),
        sa.Column("networks", _doc(), nullable=False),
        sa.Column("unit", sa.String(100)),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
    )
    op.create_table(
        "citizen_report",
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("doc", _doc(), nullable=False),
    )
    op.create_index("ix_citizen_report_user", "citizen_report", ["username"])
    op.create_index("ix_citizen_report_incident", "citizen_report", ["incident_id"])
    op.create_table(
        "publication",
        sa.Column("identifier", sa.String(200), primary_key=True),
        sa.Column("incident_id", sa.String(64)),
        sa.Column("msg_type", sa.String(16), nullable=False),
        sa.Column("sent_ms", sa.BigInteger, nullable=False),
        sa.Column("doc", _doc(), nullable=False),
    )
    op.create_index("ix_publication_incident", "publication", ["incident_id"])


def downgrade() -> None:
    for t in ("publication", "citizen_report", "app_user", "incident_key", "incident", "audit_head",
              "audit_log"):
        op.drop_table(t)
