"""Who may see and do what (权限): roles scoped to jurisdictions and networks.

=================  ==========================================  ==============================
role               sees                                        may do
=================  ==========================================  ==============================
commander          every incident and report                   every action
district_officer   incidents in their jurisdictions            verify, dismiss, dispatch,
                                                               escalate, review, reject,
                                                               close, reopen, merge, link,
                                                               tasks, level, notes, replies
operator           incidents of their networks (in their       accept, arrive, resolve, notes,
                   jurisdictions, if any) or dispatched to     attachments, complete tasks —
                   their unit                                  for their own unit's incidents
grid_worker        incidents in their streets/grid cells       create (inspection), verify,
                                                               dismiss, notes, attachments,
                                                               replies
citizen            their own reports only                      file reports, follow them
auditor            everything                                  nothing (read only)
=================  ==========================================  ==============================

Live warnings (alarms) follow the same scopes as incidents: an alarm is seen by whoever
would see an incident at its place on its network (:func:`can_read_alarm`). The twin's
layers (networks, sensors) are for staff: every role but citizens (:func:`can_see_twin`).

Every check is a pure function of the user and the incident, so the API, the CLI and the
dashboard share one rule book, and a test can try every role against every incident.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from rescity.model.enums import _ZH, _Labelled
from rescity.model.incident import Action, Incident


class Role(_Labelled):
    COMMANDER = "commander"
    DISTRICT_OFFICER = "district_officer"
    OPERATOR = "operator"
    GRID_WORKER = "grid_worker"
    CITIZEN = "citizen"
    AUDITOR = "auditor"


_ZH.update({"commander": "城市指挥长", "district_officer": "区县值班员", "operator": "部门/企业操作员",
            "grid_worker": "网格员", "citizen": "市民", "auditor": "审计员"})


class AccessDenied(PermissionError):
    """The user may not see or do this (the API answers 403, or 404 where even the
    existence of the record is not theirs to know)."""


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``jurisdictions``: the codes it is scoped to (district, street or grid);
    ``networks``: the network types or names an operator answers for; ``unit``: the
    responsible unit an operator belongs to."""

    username: str
    role: Role
    jurisdictions: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    unit: str | None = None
    display_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)


SYSTEM = User("system", Role.COMMANDER, display_name="ResCity")
"""The platform itself (the clock, the alarm rules), acting with full rights."""

A = Action
_WRITE: dict[Role, frozenset[Action]] = {
    Role.COMMANDER: frozenset(Action),
    Role.DISTRICT_OFFICER: frozenset({A.CREATE, A.VERIFY, A.DISMISS, A.DISPATCH, A.ESCALATE,
                                      A.REVIEW, A.REJECT, A.CLOSE, A.REOPEN, A.MERGE, A.LINK,
                                      A.ADD_TASK, A.COMPLETE_TASK, A.SET_LEVEL, A.NOTE,
                                      A.ATTACH, A.REPLY, A.ADD_ALARMS}),
    Role.OPERATOR: frozenset({A.CREATE, A.ACCEPT, A.ARRIVE, A.RESOLVE, A.NOTE, A.ATTACH,
                              A.COMPLETE_TASK}),
    Role.GRID_WORKER: frozenset({A.CREATE, A.VERIFY, A.DISMISS, A.NOTE, A.ATTACH, A.REPLY}),
    Role.CITIZEN: frozenset(),
    Role.AUDITOR: frozenset(),
}
_UNIT_BOUND = frozenset({A.ACCEPT, A.ARRIVE, A.RESOLVE, A.COMPLETE_TASK})
"""Operator actions that need the incident to be dispatched to the operator's unit."""


def in_place(user: User, codes: tuple[str, ...] | list[str]) -> bool:
    """The place (jurisdiction codes, smallest first) is within the user's scope."""
    return bool(set(user.jurisdictions) & set(codes))


def can_read(user: User, inc: Incident) -> bool:
    r = user.role
    if r in (Role.COMMANDER, Role.AUDITOR):
        return True
    if r in (Role.DISTRICT_OFFICER, Role.GRID_WORKER):
        return in_place(user, inc.jurisdictions)
    if r == Role.OPERATOR:
        if user.unit is not None and user.unit in inc.units:
            return True
        if inc.network is None or inc.network not in user.networks:
            return False
        return not user.jurisdictions or in_place(user, inc.jurisdictions)
    return False


def can_read_alarm(user: User, networks: Collection[str], codes: tuple[str, ...] | list[str]) -> bool:
    """May ``user`` see an alarm on a network known by ``networks`` (its name and type) at a place
    with jurisdiction ``codes``? The incident rule without the unit clause (an alarm is
    dispatched to nobody): commander and auditor everything; district officers and grid
    workers their places; operators their networks (within their jurisdictions, if any)."""
    r = user.role
    if r in (Role.COMMANDER, Role.AUDITOR):
        return True
    if r in (Role.DISTRICT_OFFICER, Role.GRID_WORKER):
        return in_place(user, codes)
    if r == Role.OPERATOR:
        if not set(networks) & set(user.networks):
            return False
        return not user.jurisdictions or in_place(user, codes)
    return False


def can_see_twin(user: User) -> bool:
    """The lifeline networks and sensors (critical infrastructure) are for staff only."""
    return user.role != Role.CITIZEN


def can_act(user: User, inc: Incident, action: Action | str) -> bool:
    act = Action(action)
    if act not in _WRITE[user.role] or not can_read(user, inc):
        return False
    return not (user.role == Role.OPERATOR and act in _UNIT_BOUND
                and (user.unit is None or user.unit not in inc.units))


def can_create(user: User, codes: tuple[str, ...], network: str | None) -> bool:
    """May ``user`` open an incident at a place with these codes, on this network?"""
    r = user.role
    if r == Role.COMMANDER:
        return True
    if Action.CREATE not in _WRITE[r]:
        return False
    if r == Role.OPERATOR:
        return network is not None and network in user.networks and (
            not user.jurisdictions or in_place(user, codes))
    return in_place(user, codes)


def check_read(user: User, inc: Incident) -> None:
    if not can_read(user, inc):
        raise AccessDenied(f"{user.username} ({user.role.value}) may not see incident {inc.id}")


def check_act(user: User, inc: Incident, action: Action | str) -> None:
    check_read(user, inc)
    if not can_act(user, inc, action):
        why = ""
        if user.role == Role.OPERATOR and Action(action) in _UNIT_BOUND:
            why = f" (it is not dispatched to unit {user.unit})"
        raise AccessDenied(f"{user.username} ({user.role.value}) may not {Action(action).value} "
                           f"incident {inc.id}{why}")


def can_audit(user: User) -> bool:
    return user.role in (Role.AUDITOR, Role.COMMANDER)
