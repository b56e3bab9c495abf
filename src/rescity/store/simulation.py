"""Scenario runs in the store (both backends): what was asked (hazard, parameters,
realizations, seed, by whom), where it stands (queued, running, done, failed; progress
0..1) and, when done, its results (metrics, curves, consequences, affected assets) and
the PNG of its resilience curves. Migration 0006 creates the table."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from .schema import Base, JsonBlob, JsonDoc

STATUSES = ("queued", "running", "done", "failed")


class ScenarioRunRow(Base):
    __tablename__ = "scenario_run"
    __table_args__ = (sa.Index("ix_scenario_run_created", "created_ms"),
                      sa.Index("ix_scenario_run_status", "status"))

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    hazard: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    params: Mapped[Any] = mapped_column(JsonDoc, nullable=False)
    realizations: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    seed: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    progress: Mapped[float] = mapped_column(sa.Float, nullable=False)
    message: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    started_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_by: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    scope: Mapped[Any] = mapped_column(JsonDoc, nullable=False)  # codes, network type: who may read it
    result: Mapped[Any | None] = mapped_column(JsonBlob)
    png: Mapped[bytes | None] = mapped_column(sa.LargeBinary)


scenario_run_table: sa.Table = ScenarioRunRow.__table__  # type: ignore[assignment]

_SUMMARY = ("id", "hazard", "params", "realizations", "seed", "status", "progress", "message", "error",
            "created_ms", "started_ms", "finished_ms", "created_by", "scope")


class ScenarioStore:
    """The ``scenario_run`` table over an engine shared with the city store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.t = scenario_run_table

    def create(self, **row: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t.insert().values(**row))

    def update(self, run_id: str, **fields: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.t.update().where(self.t.c.id == run_id).values(**fields))

    def get(self, run_id: str, *, result: bool = False) -> dict[str, Any] | None:
        """One run without its PNG (and without its results unless ``result``)."""
        cols = [self.t.c[k] for k in _SUMMARY] + ([self.t.c.result] if result else [])
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*cols).where(self.t.c.id == run_id)).mappings().first()
        return None if row is None else dict(row)

    def recent(self, limit: int = 500) -> list[dict[str, Any]]:
        """The runs, newest first, without results."""
        cols = [self.t.c[k] for k in _SUMMARY]
        q = sa.select(*cols).order_by(self.t.c.created_ms.desc(), self.t.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def png(self, run_id: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.t.c.png).where(self.t.c.id == run_id)).scalar()  # type: ignore[no-any-return]

    def unfinished(self) -> list[str]:
        """Ids of the runs queued or running (oldest first): a restarted server resumes them."""
        q = (sa.select(self.t.c.id).where(self.t.c.status.in_(("queued", "running")))
             .order_by(self.t.c.created_ms, self.t.c.id))
        with self.engine.connect() as conn:
            return [str(r) for r in conn.execute(q).scalars()]
