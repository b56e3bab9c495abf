"""Tables of the response loop: the audit chain and its head, incidents (a projection of
their events, for queries), users, citizen reports and published warnings.

The audit chain's content is kept as canonical JSON *text* (``body``), the exact bytes
its hash covers, on both backends (``jsonb`` would re-encode it).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .schema import Base, JsonDoc

_BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


class AuditRow(Base):
    """One record of the hash-chained audit log (append-only)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        sa.Index("ix_audit_log_entity", "entity", "entity_id", "seq"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )

    seq: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=False)
    ts_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    entity: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    entity_id: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    body: Mapped[str] = mapped_column(sa.Text, nullable=False)
    prev_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)


class AuditHeadRow(Base):
    """The newest record's seq and hash (exactly one row), updated with every append."""

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)


class IncidentRow(Base):
    """An incident's current state (derived from its events in the audit log)."""

    __tablename__ = "incident"
    __table_args__ = (
        sa.Index("ix_incident_state", "state"),
        sa.Index("ix_incident_district", "district"),
        sa.Index("ix_incident_street", "street"),
        sa.Index("ix_incident_created", "created_ms"),
        sa.Index("ix_incident_next_due", "next_due_ms"),
        sa.Index("ix_incident_type_lon_lat", "type", "lon", "lat"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    level: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    type: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    source: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    network: Mapped[str | None] = mapped_column(sa.String(100))
    grid: Mapped[str | None] = mapped_column(sa.String(64))
    street: Mapped[str | None] = mapped_column(sa.String(64))
    district: Mapped[str | None] = mapped_column(sa.String(64))
    tier: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    lon: Mapped[float | None] = mapped_column(sa.Float)
    lat: Mapped[float | None] = mapped_column(sa.Float)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    updated_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    next_due_ms: Mapped[int | None] = mapped_column(sa.BigInteger)  # earliest unmet deadline
    doc: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


class IncidentKeyRow(Base):
    """What points at an incident: its alarms (``alarm``), alarm groups (``group``) and
    citizen reports (``report``), so a new alarm of a group finds its incident by index."""

    __tablename__ = "incident_key"
    __table_args__ = (sa.Index("ix_incident_key_incident", "incident_id"),)

    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    incident_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)


class UserRow(Base):
    """An account: role, scope (jurisdiction codes, networks, unit) and password hash."""

    __tablename__ = "app_user"

    username: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    jurisdictions: Mapped[Any] = mapped_column(JsonDoc, nullable=False)
    networks: Mapped[Any] = mapped_column(JsonDoc, nullable=False)
    unit: Mapped[str | None] = mapped_column(sa.String(100))
    display_name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    password_hash: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)


class CitizenReportRow(Base):
    """A 12345 report: what the citizen said, where, and the incident it joined."""

    __tablename__ = "citizen_report"
    __table_args__ = (sa.Index("ix_citizen_report_user", "username"),
                      sa.Index("ix_citizen_report_incident", "incident_id"))

    ref: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    incident_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    category: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    doc: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


class PublicationRow(Base):
    """A public warning as published (CAP or GB message), with its channel receipts."""

    __tablename__ = "publication"
    __table_args__ = (sa.Index("ix_publication_incident", "incident_id"),)

    identifier: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    incident_id: Mapped[str | None] = mapped_column(sa.String(64))
    msg_type: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    sent_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    doc: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


audit_table: sa.Table = AuditRow.__table__  # type: ignore[assignment]
audit_head_table: sa.Table = AuditHeadRow.__table__  # type: ignore[assignment]
incident_table: sa.Table = IncidentRow.__table__  # type: ignore[assignment]
incident_key_table: sa.Table = IncidentKeyRow.__table__  # type: ignore[assignment]
user_table: sa.Table = UserRow.__table__  # type: ignore[assignment]
citizen_report_table: sa.Table = CitizenReportRow.__table__  # type: ignore[assignment]
publication_table: sa.Table = PublicationRow.__table__  # type: ignore[assignment]
