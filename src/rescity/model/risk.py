"""Risk points of the risk register (风险清单) and the four risk levels.

A risk point is a place (a point or a polygon, WGS84) where a hazard can hurt people or
a lifeline: an old cast-iron main, a gas station, chemical storage, a crowded place, a
low-lying underpass, a bridge under heavy traffic. Its likelihood and consequence are
graded on 5-point scales; the risk matrix of the city's policy gives its level:

=====  ========  ========
level  colour    zh-CN
=====  ========  ========
1      red       重大风险
2      orange    较大风险
3      yellow    一般风险
4      blue      低风险
=====  ========  ========
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapely.geometry.base import BaseGeometry

RISK_LEVEL_ZH = {1: "重大风险", 2: "较大风险", 3: "一般风险", 4: "低风险"}
RISK_LEVEL_EN = {1: "major risk", 2: "significant risk", 3: "moderate risk", 4: "low risk"}
RISK_COLOUR = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}


@dataclass
class RiskPoint:
    """One entry of the register. ``likelihood`` and ``consequence`` are 1..5; ``level`` is
    what the matrix gives (1 red .. 4 blue); ``assets``: uids of linked assets;
    ``controls``: the measures in place (管控措施)."""

    id: str
    name: str
    hazard: str
    geometry: BaseGeometry
    likelihood: int
    consequence: int
    level: int = 4
    owner: str = ""
    controls: str = ""
    assets: list[str] = field(default_factory=list)
    name_zh: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def rating(self) -> float:
        """r = L x C / 25, in 0.04 .. 1."""
        return self.likelihood * self.consequence / 25.0
