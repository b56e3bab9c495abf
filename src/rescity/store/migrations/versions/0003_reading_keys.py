"""Readings keyed by a compact integer sensor key: ``reading_sensor`` (id <-> sensor uid)
and ``reading`` (sensor_id, ts_ms, value) with primary key (sensor_id, ts_ms).

The key of 4 + 8 bytes instead of a text uid makes the primary-key index several times
smaller and its comparisons cheap, which is what an idempotent insert pays for; the same
index answers "the newest readings of every sensor" (``MonitoringStore.latest``) with
one index probe per sensor instead of a scan of the table. Existing readings are kept.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "reading_sensor",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sensor_uid", sa.String(300), nullable=False),
        sa.UniqueConstraint("sensor_uid", name="uq_reading_sensor_uid"),
    )
    op.execute("INSERT INTO reading_sensor (sensor_uid) SELECT DISTINCT sensor_uid FROM reading "
               "ORDER BY sensor_uid")
    if _pg():
        # in place, so the daily partitions stay what they are
        op.execute("ALTER TABLE reading ADD COLUMN sensor_id INTEGER")
        op.execute("UPDATE reading r SET sensor_id = s.id FROM reading_sensor s "
                   "WHERE s.sensor_uid = r.sensor_uid")
        op.execute("ALTER TABLE reading DROP CONSTRAINT reading_pkey")
        op.execute("ALTER TABLE reading DROP COLUMN sensor_uid")
        op.execute("ALTER TABLE reading ALTER COLUMN sensor_id SET NOT NULL")
        op.execute("ALTER TABLE reading ADD CONSTRAINT reading_pkey PRIMARY KEY (sensor_id, ts_ms)")
    else:
        op.create_table(
            "reading_new",
            sa.Column("sensor_id", sa.Integer, primary_key=True),
            sa.Column("ts_ms", sa.BigInteger, primary_key=True),
            sa.Column("value", sa.Float, nullable=False),
            sqlite_with_rowid=False,
        )
        op.execute("INSERT INTO reading_new (sensor_id, ts_ms, value) SELECT s.id, r.ts_ms, r.value "
                   "FROM reading r JOIN reading_sensor s ON s.sensor_uid = r.sensor_uid")
        op.drop_table("reading")
        op.rename_table("reading_new", "reading")


def downgrade() -> None:
    if _pg():
        op.execute("ALTER TABLE reading ADD COLUMN sensor_uid VARCHAR(300)")
        op.execute("UPDATE reading r SET sensor_uid = s.sensor_uid FROM reading_sensor s "
                   "WHERE s.id = r.sensor_id")
        op.execute("ALTER TABLE reading DROP CONSTRAINT reading_pkey")
        op.execute("ALTER TABLE reading DROP COLUMN sensor_id")
        op.execute("ALTER TABLE reading ALTER COLUMN sensor_uid SET NOT NULL")
        op.execute("ALTER TABLE reading ADD CONSTRAINT reading_pkey PRIMARY KEY (sensor_uid, ts_ms)")
    else:
        op.create_table(
            "reading_old",
            sa.Column("sensor_uid", sa.String(300), primary_key=True),
            sa.Column("ts_ms", sa.BigInteger, primary_key=True),
            sa.Column("value", sa.Float, nullable=False),
            sqlite_with_rowid=False,
        )
        op.execute("INSERT INTO reading_old (sensor_uid, ts_ms, value) SELECT s.sensor_uid, r.ts_ms, "
                   "r.value FROM reading r JOIN reading_sensor s ON s.id = r.sensor_id")
        op.drop_table("reading")
        op.rename_table("reading_old", "reading")
    op.drop_table("reading_sensor")
