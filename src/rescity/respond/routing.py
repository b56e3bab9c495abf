"""Who handles what (分级分类派单): routing an incident to its units by place, network,
type, owner and level, and the units that join at each tier of escalation."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from rescity.model.incident import Incident, Tier

from .policy import Policy, Route, Unit


class RoutingError(ValueError):
    """No unit can take an incident (a policy or city without the needed unit)."""


@dataclass(frozen=True, slots=True)
class Assignment:
    route: str
    units: tuple[str, ...]


def _matches(r: Route, inc: Incident) -> bool:
    if r.networks and inc.network not in r.networks:
        return False
    if r.types and not any(fnmatchcase(inc.type, p) for p in r.types):
        return False
    if r.owners and inc.owner not in r.owners:
        return False
    if r.jurisdictions and not set(r.jurisdictions) & set(inc.jurisdictions):
        return False
    return not (r.levels and inc.level not in r.levels)


class Router:
    """Routing over a policy and the city's concrete units."""

    def __init__(self, policy: Policy, units: dict[str, Unit]) -> None:
        self.policy = policy
        self.units = units
        self._by_kind: dict[str, list[Unit]] = {}
        for u in units.values():
            self._by_kind.setdefault(u.kind, []).append(u)

    def resolve(self, kind: str, inc: Incident) -> list[str]:
        """The unit(s) of ``kind`` that cover the incident: a jurisdiction-bound unit whose
        code is the incident's street or district; among several units of the kind, the
        ones of the incident's network (the first one if none or no network matches: a
        rule that names a kind wants one of them, as the gas company for gas in a sewer)."""
        place = set(inc.jurisdictions)
        cands = [u for u in self._by_kind.get(kind, [])
                 if u.jurisdiction is None or u.jurisdiction in place]
        if len(cands) <= 1:
            return [u.id for u in cands]
        mine = [u for u in cands if inc.network is not None and inc.network in u.networks]
        return [u.id for u in mine] if mine else [cands[0].id]

    def route(self, inc: Incident) -> Assignment:
        """The first matching rule and its units (several in parallel: 协同处置)."""
        for r in self.policy.routes:
            if _matches(r, inc):
                ids: list[str] = []
                for kind in r.units:
                    for uid in self.resolve(kind, inc):
                        if uid not in ids:
                            ids.append(uid)
                if not ids:
                    raise RoutingError(f"incident {inc.id}: route {r.name!r} found no unit for "
                                       f"{', '.join(r.units)} at {', '.join(inc.jurisdictions) or 'no place'}")
                return Assignment(r.name, tuple(ids))
        raise RoutingError(f"incident {inc.id}: no routing rule matches (add a default rule)")

    def escalation(self, inc: Incident, tier: Tier) -> tuple[str, ...]:
        """The units that join when the incident reaches ``tier``."""
        ids: list[str] = []
        for kind in self.policy.escalation.get(tier, ()):
            for uid in self.resolve(kind, inc):
                if uid not in ids and uid not in inc.units:
                    ids.append(uid)
        return tuple(ids)

    def units_of(self, unit_ids: list[str] | tuple[str, ...]) -> list[Unit]:
        return [self.units[u] for u in unit_ids if u in self.units]
