"""Incidents (事件): what the response loop handles, from an alarm group, a citizen report,
an inspection or a person.

An incident's current state is *derived* from its events (see
:mod:`rescity.respond.lifecycle`): :class:`Incident` is the fold of its
:class:`IncidentEvent` list, and the events are the records of the audit chain.

States (闭环处置)::

    new -> verified -> dispatched -> accepted -> on_site -> resolved -> reviewed -> closed
     \\        \\
      +--------+-> dismissed (a false alarm, with a reason)
    resolved -> on_site           (the check failed: rework)
    resolved | reviewed | closed | dismissed -> verified   (reopen)
    any open state -> merged      (a duplicate, folded into another incident)

Tiers of response, in escalation order: street/town first response -> district ->
city specialists -> national/specialist teams (街镇先期处置 -> 区县 -> 市级 -> 专业队伍).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .enums import _ZH, _Labelled


class IncidentState(_Labelled):
    NEW = "new"
    VERIFIED = "verified"
    DISMISSED = "dismissed"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    REVIEWED = "reviewed"
    CLOSED = "closed"
    MERGED = "merged"

    @property
    def is_open(self) -> bool:
        """Still needs someone to act (not closed, dismissed or merged)."""
        return self not in (IncidentState.CLOSED, IncidentState.DISMISSED, IncidentState.MERGED)


class IncidentSource(_Labelled):
    ALARM = "alarm"  # an incident candidate of the alarm book
    CITIZEN = "citizen"  # a 12345 report
    INSPECTION = "inspection"  # found by an inspector or grid worker
    MANUAL = "manual"  # entered by a person at the command centre


class Tier(_Labelled):
    """Who holds the incident, in escalation order."""

    STREET = "street"
    DISTRICT = "district"
    CITY = "city"
    SPECIALIST = "specialist"

    @property
    def rank(self) -> int:
        return list(Tier).index(self)

    @property
    def next(self) -> Tier | None:
        order = list(Tier)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None


class Action(_Labelled):
    """What a person (or the clock) does to an incident. State-changing actions first."""

    CREATE = "create"
    VERIFY = "verify"
    DISMISS = "dismiss"
    DISPATCH = "dispatch"
    ACCEPT = "accept"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    REJECT = "reject"  # the check of a resolution failed: back on site (rework)
    REVIEW = "review"
    CLOSE = "close"
    REOPEN = "reopen"
    MERGE = "merge"
    # no state change
    ESCALATE = "escalate"
    DEADLINE_MISSED = "deadline_missed"
    LINK = "link"
    NOTE = "note"
    ATTACH = "attach"
    ADD_TASK = "add_task"
    COMPLETE_TASK = "complete_task"
    SET_LEVEL = "set_level"
    ADD_ALARMS = "add_alarms"
    ABSORB = "absorb"  # the target of a merge records the merged incident
    REPLY = "reply"  # a message to the citizen(s) who reported it
    ADD_REPORT = "add_report"  # a citizen report joined this incident (deduplicated)


_ZH.update({
    "new": "新建", "verified": "已核实", "dismissed": "已排除（误报）", "dispatched": "已派单",
    "accepted": "已接单", "on_site": "已到场", "resolved": "已处置", "reviewed": "已审核",
    "closed": "已办结", "merged": "已合并",
    "alarm": "监测预警", "citizen": "市民报告", "inspection": "巡查发现", "manual": "人工录入",
    "city": "市级", "specialist": "专业队伍",
    "create": "创建", "verify": "核实", "dismiss": "排除", "dispatch": "派单", "accept": "接单",
    "arrive": "到场", "resolve": "处置完成", "reject": "退回重办", "review": "审核", "close": "办结",
    "reopen": "重新打开", "merge": "合并", "escalate": "升级", "deadline_missed": "超时",
    "link": "关联", "note": "备注", "attach": "附件", "add_task": "分派任务",
    "complete_task": "完成任务", "set_level": "调整级别", "add_alarms": "追加预警",
    "absorb": "并入", "reply": "答复", "add_report": "追加市民报告",
})
"""zh-CN labels of the states, sources, tiers and actions (``label_zh``)."""


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One change of one incident: who (``actor``), when (``ts_ms``, ms since the epoch
    UTC), what (``action`` and ``data``), state before and after."""

    incident_id: str
    ts_ms: int
    actor: str
    action: Action
    before: IncidentState | None
    after: IncidentState
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    id: str
    unit: str
    text: str
    done_ms: int | None = None


@dataclass
class Incident:
    """The current state of one incident (the fold of its events).

    ``level`` is national (1 red .. 4 blue). ``grid``/``street``/``district`` are the
    jurisdiction codes of its place; ``units`` the unit ids handling it (in parallel);
    ``due`` maps a milestone (``acknowledge``, ``arrive``, ``resolve``) to its deadline in
    ms since the epoch, for the current tier.
    """

    id: str
    title: str
    type: str
    level: int
    state: IncidentState
    source: IncidentSource
    created_ms: int
    updated_ms: int
    lon: float | None = None
    lat: float | None = None
    grid: str | None = None
    street: str | None = None
    district: str | None = None
    network: str | None = None
    asset: str | None = None
    owner: str | None = None
    description: str = ""
    title_zh: str | None = None
    alarm_ids: list[str] = field(default_factory=list)
    alarm_groups: list[str] = field(default_factory=list)  # incident candidates of the alarm book
    models: list[str] = field(default_factory=list)
    reporter: str | None = None  # the citizen's account (12345 reports)
    report_refs: list[str] = field(default_factory=list)
    tier: Tier = Tier.STREET
    units: list[str] = field(default_factory=list)
    accepted_by: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    merged_into: str | None = None
    merged: list[str] = field(default_factory=list)
    due: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)  # milestones missed at the current tier
    dispatched_ms: int | None = None
    verified_ms: int | None = None
    accepted_ms: int | None = None
    arrived_ms: int | None = None
    resolved_ms: int | None = None
    closed_ms: int | None = None
    dismissed_reason: str | None = None
    false_alarm: bool = False
    replies: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[IncidentEvent] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state.is_open

    @property
    def jurisdictions(self) -> tuple[str, ...]:
        """The codes of its place, smallest first (grid, street, district; known ones only)."""
        return tuple(c for c in (self.grid, self.street, self.district) if c)
