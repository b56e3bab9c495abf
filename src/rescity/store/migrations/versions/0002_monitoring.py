"""Monitoring: readings (partitioned by day on PostgreSQL), dead letters, alarms and
their append-only events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _doc() -> sa.types.TypeEngine:
    return JSONB() if _pg() else sa.JSON()


def _serial() -> sa.types.TypeEngine:
    return sa.BigInteger() if _pg() else sa.Integer()


def upgrade() -> None:
    if _pg():
        # range-partitioned by time; daily partitions are created on demand by the
        # readings store, a default partition catches anything else
        op.execute(
            "CREATE TABLE reading (sensor_uid VARCHAR(300) NOT NULL, ts_ms BIGINT NOT NULL, "
            "value FLOAT NOT NULL, PRIMARY KEY (sensor_uid, ts_ms)) PARTITION BY RANGE (ts_ms)"
        )
        op.execute("CREATE TABLE reading_p_default PARTITION OF reading DEFAULT")
    else:
        # a clustered (WITHOUT ROWID) table: readings of one sensor lie together
        op.create_table(
            "reading",
            sa.Column("sensor_uid", sa.String(300), primary_key=True),
            sa.Column("ts_ms", sa.BigInteger, primary_key=True),
            sa.Column("value", sa.Float, nullable=False),
            sqlite_with_rowid=False,
        )
    op.create_table(
        "dead_letter",
        sa.Column("id", _serial(), primary_key=True, autoincrement=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("sensor_uid", sa.String(300)),
        sa.Column("ts_ms", sa.BigInteger),
        sa.Column("value", sa.Text),
        sa.Column("payload", sa.Text),
    )
    op.create_index("ix_dead_letter_reason", "dead_letter", ["reason"])
    op.create_index("ix_dead_letter_received_ms", "dead_letter", ["received_ms"])
    op.create_table(
        "alarm",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("asset_uid", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.SmallInteger, nullable=False),
        sa.Column("opened_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("attrs", _doc(), nullable=False),
    )
    op.create_index("ix_alarm_identity", "alarm", ["model", "asset_uid"])
    op.create_index("ix_alarm_state", "alarm", ["state"])
    op.create_table(
        "alarm_event",
        sa.Column("seq", _serial(), primary_key=True, autoincrement=True),
        sa.Column("alarm_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("asset_uid", sa.String(300), nullable=False),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("level_before", sa.SmallInteger),
        sa.Column("level_after", sa.SmallInteger),
        sa.Column("value", sa.Float),
        sa.Column("details", _doc(), nullable=False),
    )
    op.create_index("ix_alarm_event_alarm", "alarm_event", ["alarm_id", "seq"])


def downgrade() -> None:
    op.drop_table("alarm_event")
    op.drop_table("alarm")
    op.drop_table("dead_letter")
    op.execute("DROP TABLE reading CASCADE" if _pg() else "DROP TABLE reading")
