"""Public warnings (预警发布): the message a city publishes, whatever the format or channel.

A :class:`PublicWarning` is what :mod:`rescity.io.cap` writes as CAP 1.2 and
:mod:`rescity.io.gbwarning` (``write_gb``) as the GB/T 35965.1-style Chinese early-warning
message. It carries the user-facing text in both English (``en-US``) and Chinese
(``zh-CN``); each format writes one ``<info>`` block per language.

Levels and the CAP triplet
--------------------------
The national four levels (红橙黄蓝; **level 1 = red is the highest**) map to the CAP
``severity`` / ``urgency`` / ``certainty`` triplet by :func:`cap_triplet`:

=====  ======  ==========  ========  =========  =========================
level  colour  zh          severity  urgency    certainty (observed / forecast)
=====  ======  ==========  ========  =========  =========================
1      red     红色预警    Extreme   Immediate  Observed / Likely
2      orange  橙色预警    Severe    Expected   Observed / Likely
3      yellow  黄色预警    Moderate  Future     Observed / Likely
4      blue    蓝色预警    Minor     Future     Observed / Likely
=====  ======  ==========  ========  =========  =========================

Why: the Emergency Response Law grades warnings 特别严重 / 严重 / 较重 / 一般
(particularly serious / serious / relatively serious / general), which are CAP 1.2's
Extreme ("extraordinary threat to life or property"), Severe ("significant threat"),
Moderate ("possible threat") and Minor ("minimal to no known threat") in order.
Urgency follows how soon people must act: a red warning asks for action now
(Immediate), an orange one within the hour (Expected, "responsive action should be
taken soon — within next hour"), yellow and blue ask people to prepare (Future).
Certainty depends on where the warning comes from, not on its level: a warning raised
from monitoring (a sensor has *measured* the hazard: methane in a manhole, a main's
pressure collapse) is ``Observed``; a forecast (a rainstorm expected, a model's
prediction) is ``Likely`` (p > ~50 %). ``PublicWarning.certainty`` overrides it
(``Possible``, ``Unlikely``, ``Unknown``) when the issuer judges otherwise.

Areas
-----
Polygons are shapely geometries in WGS84 (x = longitude, y = latitude, degrees),
without holes (CAP has none); the formats write them as CAP ``"lat,lon"`` pairs, closed,
at least 4 points. ``geocodes`` are 6-digit administrative division codes (GB/T 2260,
行政区划代码).

Identity and references
-----------------------
A warning is identified by ``(sender, identifier, sent)``. An Update or a Cancel
carries in ``references`` every earlier message of the same thread (the CAP rule: all
prior messages that are still in force), see :func:`warning_update` and
:func:`warning_cancel`. Times are timezone-aware and whole seconds (CAP's
``dateTime`` pattern has no fractions); construction truncates microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shapely.geometry import Polygon

from .city import ModelError


class Status(StrEnum):
    """CAP ``status``: how the message is to be handled."""

    ACTUAL = "Actual"
    EXERCISE = "Exercise"
    SYSTEM = "System"
    TEST = "Test"
    DRAFT = "Draft"


class MsgType(StrEnum):
    """CAP ``msgType`` (the subset a city publishes: Ack and Error are receivers' replies)."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


class Scope(StrEnum):
    """CAP ``scope``: who may see the message."""

    PUBLIC = "Public"
    RESTRICTED = "Restricted"
    PRIVATE = "Private"


class Category(StrEnum):
    """CAP ``category`` of the subject event."""

    GEO = "Geo"
    MET = "Met"
    SAFETY = "Safety"
    SECURITY = "Security"
    RESCUE = "Rescue"
    FIRE = "Fire"
    HEALTH = "Health"
    ENV = "Env"
    TRANSPORT = "Transport"
    INFRA = "Infra"
    CBRNE = "CBRNE"
    OTHER = "Other"


class Severity(StrEnum):
    EXTREME = "Extreme"
    SEVERE = "Severe"
    MODERATE = "Moderate"
    MINOR = "Minor"
    UNKNOWN = "Unknown"


class Urgency(StrEnum):
    IMMEDIATE = "Immediate"
    EXPECTED = "Expected"
    FUTURE = "Future"
    PAST = "Past"
    UNKNOWN = "Unknown"


class Certainty(StrEnum):
    OBSERVED = "Observed"
    LIKELY = "Likely"
    POSSIBLE = "Possible"
    UNLIKELY = "Unlikely"
    UNKNOWN = "Unknown"


class ResponseType(StrEnum):
    """CAP ``responseType``: the action recommended to the audience."""

    SHELTER = "Shelter"
    EVACUATE = "Evacuate"
    PREPARE = "Prepare"
    EXECUTE = "Execute"
    AVOID = "Avoid"
    MONITOR = "Monitor"
    ASSESS = "Assess"
    ALL_CLEAR = "AllClear"
    NONE = "None"


# -- levels ----------------------------------------------------------------------------------------
LEVEL_COLOURS: dict[int, str] = {1: "red", 2: "orange", 3: "yellow", 4: "blue"}
"""National level (1 = red, highest .. 4 = blue) -> colour name."""

LEVEL_COLOURS_ZH: dict[int, str] = {1: "红色", 2: "橙色", 3: "黄色", 4: "蓝色"}

_TRIPLET: dict[int, tuple[Severity, Urgency]] = {
    1: (Severity.EXTREME, Urgency.IMMEDIATE),
    2: (Severity.SEVERE, Urgency.EXPECTED),
    3: (Severity.MODERATE, Urgency.FUTURE),
    4: (Severity.MINOR, Urgency.FUTURE),
}


def _check_level(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= int(level) <= 4:
        raise ModelError(f"warning level must be 1 (red) .. 4 (blue), found {level!r}")
    return int(level)


def level_colour(level: int) -> str:
    """``"red"`` for level 1 .. ``"blue"`` for level 4."""
    return LEVEL_COLOURS[_check_level(level)]


def level_label_zh(level: int) -> str:
    """The Chinese name of the level: ``"红色预警"`` for level 1 .. ``"蓝色预警"`` for level 4."""
    return LEVEL_COLOURS_ZH[_check_level(level)] + "预警"


def level_label_en(level: int) -> str:
    """``"Red warning"`` for level 1 .. ``"Blue warning"`` for level 4."""
    return level_colour(level).capitalize() + " warning"


def cap_triplet(level: int, observed: bool = False) -> tuple[Severity, Urgency, Certainty]:
    """CAP (severity, urgency, certainty) of a national level (table in the module docstring).

    ``observed`` is True when monitoring measured the hazard (certainty ``Observed``),
    False for a forecast or a model's prediction (certainty ``Likely``).
    """
    severity, urgency = _TRIPLET[_check_level(level)]
    return severity, urgency, Certainty.OBSERVED if observed else Certainty.LIKELY


def level_of_severity(severity: Severity | str) -> int:
    """The national level whose CAP severity is ``severity`` (Extreme -> 1 .. Minor -> 4)."""
    for level, (sev, _) in _TRIPLET.items():
        if sev == severity:
            return level
    raise ModelError(f"no national level has CAP severity {severity!r}: expected Extreme, Severe, Moderate or Minor")


# -- hazards ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HazardType:
    """A kind of hazard a city warns the public about, with its names and CAP category."""

    key: str
    name_en: str
    name_zh: str
    category: Category


HAZARDS: dict[str, HazardType] = {
    h.key: h
    for h in (
        HazardType("gas_leak", "Gas leak", "燃气泄漏", Category.SAFETY),
        HazardType("waterlogging", "Urban waterlogging", "城市内涝", Category.MET),
        HazardType("main_break", "Water main break", "供水管道爆管", Category.INFRA),
        HazardType("bridge_overload", "Bridge overload", "桥梁超载", Category.TRANSPORT),
        HazardType("rainstorm", "Rainstorm", "暴雨", Category.MET),
        HazardType("power_outage", "Power outage", "停电", Category.INFRA),
        HazardType("pipe_burst", "Pipe burst", "管道爆裂", Category.INFRA),
        HazardType("sewer_gas", "Gas in sewers", "排水管道可燃气体聚集", Category.CBRNE),
        HazardType("ground_collapse", "Ground collapse", "路面塌陷", Category.GEO),
        HazardType("fire", "Fire", "火灾", Category.FIRE),
        HazardType("earthquake", "Earthquake", "地震", Category.GEO),
    )
}
"""Known hazard keys (``PublicWarning.hazard``); other keys are allowed with explicit texts."""


# -- the warning -----------------------------------------------------------------------------------
LANG_EN = "en-US"
LANG_ZH = "zh-CN"

_CAP_TOKEN = re.compile(r"[^\s,<&]+")
_ADMIN_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True, slots=True)
class WarningText:
    """The user-facing text of a warning in one language.

    ``event`` names the hazard ("Gas leak" / "燃气泄漏"); ``area_desc`` describes the
    area in words; ``sender_name`` is the issuing unit's readable name.
    """

    headline: str
    description: str
    instruction: str = ""
    event: str = ""
    area_desc: str = ""
    sender_name: str = ""


@dataclass(frozen=True, slots=True)
class Reference:
    """An earlier message: CAP ``references`` writes it as ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: datetime

    def __post_init__(self) -> None:
        _check_token("reference sender", self.sender)
        _check_token("reference identifier", self.identifier)
        object.__setattr__(self, "sent", _check_time("reference sent", self.sent))


def _check_token(what: str, value: str) -> None:
    if not isinstance(value, str) or not _CAP_TOKEN.fullmatch(value):
        raise ModelError(
            f"{what} must be non-empty without spaces, commas, '<' or '&' (CAP 1.2), found {value!r}"
        )


def _check_time(what: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ModelError(f"{what} must be a timezone-aware datetime, found {value!r}")
    off = value.utcoffset()
    assert off is not None
    if off % timedelta(minutes=1):
        raise ModelError(f"{what}: UTC offset must be whole minutes, found {off}")
    return value.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class PublicWarning:
    """One public warning message (CAP ``alert`` with an English and a Chinese ``info``).

    * ``identifier``, ``sender``: CAP tokens (no spaces, commas, ``<`` or ``&``);
      ``identifier`` is typically :func:`rescity.io.gbwarning.gb_identifier`'s.
    * ``sent``, ``onset``, ``expires``: timezone-aware, whole seconds.
    * ``level``: national level, 1 = red (highest) .. 4 = blue.
    * ``hazard``: a key of :data:`HAZARDS` (or another key, with explicit categories and
      event names); ``category`` defaults to the hazard's.
    * ``observed``: measured by monitoring (certainty Observed) rather than forecast
      (Likely); ``certainty`` overrides that (a value equal to the default is dropped).
    * ``polygons``: WGS84 (lon, lat) polygons without holes; ``geocodes``: 6-digit
      administrative division codes (GB/T 2260).
    * ``sender_code``: the 14-character GB/T 35965.1 issuing-unit code
      (6-digit division + 3-digit sector + 3-digit unit + 2-digit extension),
      see :func:`rescity.io.gbwarning.gb_sender_code`.
    * ``incidents``: ids of the incidents the warning is about (CAP ``incidents``).
    """

    identifier: str
    sender: str
    sent: datetime
    level: int
    hazard: str
    en: WarningText
    zh: WarningText
    status: Status = Status.ACTUAL
    msg_type: MsgType = MsgType.ALERT
    scope: Scope = Scope.PUBLIC
    restriction: str = ""
    addresses: str = ""
    references: tuple[Reference, ...] = ()
    incidents: tuple[str, ...] = ()
    note: str = ""
    category: tuple[Category, ...] = ()
    observed: bool = False
    certainty: Certainty | None = None
    response: tuple[ResponseType, ...] = ()
    onset: datetime | None = None
    expires: datetime | None = None
    polygons: tuple[Polygon, ...] = ()
    geocodes: tuple[str, ...] = ()
    sender_code: str = ""
    web: str = ""
    contact: str = ""

    def __post_init__(self) -> None:
        s = object.__setattr__
        _check_token("identifier", self.identifier)
        _check_token("sender", self.sender)
        s(self, "sent", _check_time("sent", self.sent))
        for name in ("onset", "expires"):
            v = getattr(self, name)
            if v is not None:
                s(self, name, _check_time(name, v))
        if self.onset is not None and self.expires is not None and self.expires < self.onset:
            raise ModelError(f"expires ({self.expires.isoformat()}) is before onset ({self.onset.isoformat()})")
        s(self, "level", _check_level(self.level))
        s(self, "status", Status(self.status))
        s(self, "msg_type", MsgType(self.msg_type))
        s(self, "scope", Scope(self.scope))
        if self.scope == Scope.RESTRICTED and not self.restriction:
            raise ModelError("scope Restricted needs a restriction (who may see it)")
        if self.scope == Scope.PRIVATE and not self.addresses:
            raise ModelError("scope Private needs addresses")
        s(self, "references", tuple(self.references))
        if self.msg_type != MsgType.ALERT and not self.references:
            raise ModelError(f"an {self.msg_type.value} must reference the earlier message(s)")
        s(self, "incidents", tuple(self.incidents))
        for inc in self.incidents:
            _check_token("incident id", inc)
        hz = HAZARDS.get(self.hazard)
        if not self.hazard or any(c.isspace() for c in self.hazard):
            raise ModelError(f"hazard must be a key without spaces, found {self.hazard!r}")
        cats = tuple(Category(c) for c in self.category)
        if not cats:
            if hz is None:
                raise ModelError(f"unknown hazard {self.hazard!r} needs an explicit category; known: {sorted(HAZARDS)}")
            cats = (hz.category,)
        s(self, "category", cats)
        for attr, default in (("en", hz.name_en if hz else ""), ("zh", hz.name_zh if hz else "")):
            text: WarningText = getattr(self, attr)
            if not text.event:
                if not default:
                    raise ModelError(f"unknown hazard {self.hazard!r} needs an explicit {attr}.event")
                text = replace(text, event=default)
            if not text.headline.strip():
                raise ModelError(f"{attr}.headline is empty")
            s(self, attr, text)
        if self.certainty is not None:
            c = Certainty(self.certainty)
            s(self, "certainty", None if c == cap_triplet(self.level, self.observed)[2] else c)
        s(self, "response", tuple(ResponseType(r) for r in self.response))
        polys = tuple(self.polygons)
        for i, p in enumerate(polys):
            if not isinstance(p, Polygon) or p.is_empty:
                raise ModelError(f"polygon {i} must be a non-empty shapely Polygon, found {type(p).__name__}")
            if p.interiors:
                raise ModelError(f"polygon {i} has holes, which CAP cannot carry")
            for x, y in p.exterior.coords:
                if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
                    raise ModelError(f"polygon {i}: ({x}, {y}) is not WGS84 lon/lat in degrees")
        s(self, "polygons", polys)
        s(self, "geocodes", tuple(self.geocodes))
        for g in self.geocodes:
            if not isinstance(g, str) or not _ADMIN_CODE.fullmatch(g):
                raise ModelError(f"geocode must be a 6-digit administrative division code, found {g!r}")

    # -- derived -------------------------------------------------------------------------------------
    @property
    def severity(self) -> Severity:
        return cap_triplet(self.level, self.observed)[0]

    @property
    def urgency(self) -> Urgency:
        return cap_triplet(self.level, self.observed)[1]

    @property
    def cap_certainty(self) -> Certainty:
        """The certainty written: the override, else Observed (monitored) or Likely (forecast)."""
        return self.certainty or cap_triplet(self.level, self.observed)[2]

    @property
    def colour(self) -> str:
        return level_colour(self.level)

    @property
    def reference(self) -> Reference:
        """This message as a reference for a later Update or Cancel."""
        return Reference(self.sender, self.identifier, self.sent)

    def texts(self) -> tuple[tuple[str, WarningText], ...]:
        """``((LANG_EN, en), (LANG_ZH, zh))``: one CAP ``info`` block per language."""
        return ((LANG_EN, self.en), (LANG_ZH, self.zh))


class _Keep:
    """Marker: keep the original's value."""


_KEEP = _Keep()


def _thread(original: PublicWarning) -> tuple[Reference, ...]:
    refs = tuple(r for r in original.references if r != original.reference)
    return (*refs, original.reference)


def warning_update(
    original: PublicWarning,
    *,
    identifier: str,
    sent: datetime,
    **changes: object,
) -> PublicWarning:
    """An Update of ``original``: same thread, new identifier and time, ``changes`` applied.

    ``references`` become the original's references plus the original itself (CAP:
    every earlier message still in force). ``changes`` are any other fields
    (``level=2``, ``en=WarningText(...)``, ``expires=...``).
    """
    if "references" in changes or "msg_type" in changes:
        raise ModelError("warning_update sets references and msg_type itself")
    if sent < original.sent:
        raise ModelError(f"an update is sent ({sent.isoformat()}) before its original ({original.sent.isoformat()})")
    return replace(
        original,
        identifier=identifier,
        sent=sent,
        msg_type=MsgType.UPDATE,
        references=_thread(original),
        **changes,  # type: ignore[arg-type]
    )


def warning_cancel(
    original: PublicWarning,
    *,
    identifier: str,
    sent: datetime,
    reason_en: str = "",
    reason_zh: str = "",
    en: WarningText | None = None,
    zh: WarningText | None = None,
    onset: datetime | None | _Keep = _KEEP,
    expires: datetime | None | _Keep = _KEEP,
    **changes: object,
) -> PublicWarning:
    """A Cancel of ``original`` (解除预警): references the thread, response ``AllClear``.

    Unless ``en``/``zh`` are given, the headlines become ``"Cancelled: <headline>"`` and
    ``"解除：<headline>"``, the descriptions the reasons (or a default sentence), and the
    instructions are cleared. ``expires`` becomes ``sent`` unless given.
    """
    if "references" in changes or "msg_type" in changes:
        raise ModelError("warning_cancel sets references and msg_type itself")
    if sent < original.sent:
        raise ModelError(f"a cancel is sent ({sent.isoformat()}) before its original ({original.sent.isoformat()})")
    en = en or replace(
        original.en,
        headline=f"Cancelled: {original.en.headline}",
        description=reason_en or "The warning is lifted.",
        instruction="",
    )
    zh = zh or replace(
        original.zh,
        headline=f"解除：{original.zh.headline}",
        description=reason_zh or "预警解除。",
        instruction="",
    )
    new_expires = sent if isinstance(expires, _Keep) else expires
    new_onset = original.onset if isinstance(onset, _Keep) else onset
    if new_onset is not None and new_expires is not None and new_expires < new_onset:
        new_onset = None  # the warning ends before its planned onset
    return replace(
        original,
        identifier=identifier,
        sent=sent,
        msg_type=MsgType.CANCEL,
        references=_thread(original),
        en=en,
        zh=zh,
        response=(ResponseType.ALL_CLEAR,),
        onset=new_onset,
        expires=new_expires,
        **changes,  # type: ignore[arg-type]
    )


__all__ = [
    "HAZARDS",
    "LANG_EN",
    "LANG_ZH",
    "LEVEL_COLOURS",
    "LEVEL_COLOURS_ZH",
    "Category",
    "Certainty",
    "HazardType",
    "MsgType",
    "PublicWarning",
    "Reference",
    "ResponseType",
    "Scope",
    "Severity",
    "Status",
    "Urgency",
    "WarningText",
    "cap_triplet",
    "level_colour",
    "level_label_en",
    "level_label_zh",
    "level_of_severity",
    "warning_cancel",
    "warning_update",
]

