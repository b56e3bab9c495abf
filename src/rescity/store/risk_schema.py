"""Tables of the risk register and the risk map: risk points (a projection of their
records on the audit chain, which keeps every re-grading), the current risk of each grid
cell, and the history of the cells' levels (appended when a level changes)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .schema import Base, JsonDoc


class RiskPointRow(Base):
    __tablename__ = "risk_point"
    __table_args__ = (sa.Index("ix_risk_point_grid", "grid"), sa.Index("ix_risk_point_district", "district"))

    id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    hazard: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    likelihood: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    consequence: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    level: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    grid: Mapped[str | None] = mapped_column(sa.String(64))
    street: Mapped[str | None] = mapped_column(sa.String(64))
    district: Mapped[str | None] = mapped_column(sa.String(64))
    lon: Mapped[float] = mapped_column(sa.Float, nullable=False)
    lat: Mapped[float] = mapped_column(sa.Float, nullable=False)
    updated_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    doc: Mapped[Any] = mapped_column(JsonDoc, nullable=False)  # wkt, owner, controls, assets, name_zh


class RiskCellRow(Base):
    __tablename__ = "risk_cell"

    cell: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    level: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    updated_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)


class RiskCellHistoryRow(Base):
    __tablename__ = "risk_cell_history"
    __table_args__ = (sa.Index("ix_risk_cell_history_cell", "cell", "ts_ms"),)

    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    cell: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    ts_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    score: Mapped[float] = mapped_column(sa.Float, nullable=False)
    level: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)


risk_point_table: sa.Table = RiskPointRow.__table__  # type: ignore[assignment]
risk_cell_table: sa.Table = RiskCellRow.__table__  # type: ignore[assignment]
risk_cell_history_table: sa.Table = RiskCellHistoryRow.__table__  # type: ignore[assignment]
