"""Public warning release (预警发布): an incident becomes a public warning for its area, as
CAP 1.2 or the GB/T 35965.1-style message, handed to the configured channels; updates
and cancellations reference the earlier messages of the same incident.

The warning's identifier is the GB/T 35965.1 one (:func:`rescity.io.gbwarning.gb_identifier`:
the city's 6-digit division code, the issuing unit's sector and unit codes, the time in
Beijing time, a one-digit sequence number) in both formats. The area is the incident's
street (or district: ``publication.area_level`` of the response policy), its polygon and
the city's division code; the level maps to CAP severity / urgency / certainty as
:func:`rescity.model.publication.cap_triplet` documents. A city whose division code is
fictional (99xxxx, as the demo city's) publishes exercises only.

Every publication is stored (its exact bytes) and recorded on the audit chain with the
receipts of its channels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from shapely.geometry import MultiPolygon, Polygon

from rescity.io.cap import CONTENT_TYPE as CAP_CONTENT_TYPE
from rescity.io.cap import read_cap, write_cap
from rescity.io.gbwarning import gb_identifier, gb_sender_code, is_fictional, read_gb, write_gb
from rescity.model.incident import Incident
from rescity.model.levels import WarningLevel
from rescity.model.publication import (
    HAZARDS,
    Category,
    MsgType,
    PublicWarning,
    Status,
    WarningText,
    warning_cancel,
    warning_update,
)
from rescity.respond.access import AccessDenied, Role, User, in_place
from rescity.respond.publish import Publisher, PublishReceipt

from .respond import NotFound, ResponseService

FORMATS = ("cap", "gb")
GB_CONTENT_TYPE = "application/xml"


@dataclass(frozen=True)
class Published:
    """A published message: the warning, its encoded bytes and the channels' receipts."""

    warning: PublicWarning
    format: str
    payload: bytes
    content_type: str
    receipts: tuple[PublishReceipt, ...]


def _check_rights(user: User, inc: Incident) -> None:
    if user.role == Role.COMMANDER:
        return
    if user.role == Role.DISTRICT_OFFICER and in_place(user, inc.jurisdictions):
        return
    raise AccessDenied(f"{user.username} ({user.role.value}) may not publish warnings for "
                       f"incident {inc.id}")


def hazard_of(svc: ResponseService, incident_type: str) -> str:
    """The hazard key of a warning for an incident type (policy ``publication.hazards``)."""
    if incident_type in HAZARDS:
        return incident_type
    for rule in svc.policy.publication.hazards:
        if any(fnmatchcase(incident_type, p) for p in rule.types):
            return rule.hazard
    return incident_type


def _polygons(geom: Any) -> tuple[Polygon, ...]:
    if isinstance(geom, Polygon):
        return (Polygon(geom.exterior),)
    if isinstance(geom, MultiPolygon):
        return tuple(Polygon(p.exterior) for p in geom.geoms)
    return ()


def _decode(doc: dict[str, Any]) -> PublicWarning:
    data = doc["payload"].encode("utf-8")
    return read_cap(data, "stored CAP") if doc["format"] == "cap" else read_gb(data, "stored GB")


def build_warning(svc: ResponseService, inc: Incident, *, ts_ms: int, admin_code: str,
                  seq: int, msg_type: MsgType = MsgType.ALERT,
                  previous: PublicWarning | None = None, note_en: str = "",
                  note_zh: str = "") -> PublicWarning:
    """The public warning of ``inc`` at ``ts_ms`` (an Alert, or an Update / Cancel of
    ``previous``)."""
    pub = svc.policy.publication
    sent = dt.datetime.fromtimestamp(ts_ms // 1000, dt.UTC)
    ident = gb_identifier(admin_code, pub.sector_code, sent, seq, unit_code=pub.unit_code)
    if msg_type != MsgType.ALERT:
        if previous is None:
            raise ValueError(f"incident {inc.id}: nothing published yet to {msg_type.value.lower()}")
        if msg_type == MsgType.CANCEL:
            return warning_cancel(previous, identifier=ident, sent=sent,
                                  reason_en=note_en or f"Incident {inc.id} is {inc.state.value}.",
                                  reason_zh=note_zh or f"事件{inc.id}已{inc.state.label_zh}。")
    level = WarningLevel(inc.level)
    code = getattr(inc, pub.area_level.value) or inc.street or inc.district
    area = svc.jurisdictions.get(code or "")
    area_en = area.name if area else (code or "the area")
    area_zh = (area.name_zh or area.name) if area else (code or "该区域")
    hazard = hazard_of(svc, inc.type)
    h = HAZARDS.get(hazard)
    ev_en, ev_zh = (h.name_en, h.name_zh) if h else (inc.type.replace("_", " ").capitalize(), inc.type)
    texts = pub.instructions.get(hazard) or pub.instructions["default"]
    colour_en = level.colour.capitalize()
    en = WarningText(
        headline=f"{colour_en} warning: {ev_en} in {area_en}",
        description=(f"{inc.title}. {inc.description}".strip() + (f" {note_en}" if note_en else "")).strip(),
        instruction=texts.en, event=ev_en, area_desc=area_en, sender_name=pub.sender_name)
    zh = WarningText(
        headline=f"{area_zh}{ev_zh}{level.label_zh}预警",
        description=(f"{inc.title_zh or inc.title}。" + (inc.description or "") + note_zh).strip(),
        instruction=texts.zh, event=ev_zh, area_desc=area_zh, sender_name=pub.sender_name_zh)
    expires = sent + dt.timedelta(hours=pub.expires_h[level.colour])
    fields: dict[str, Any] = dict(
        level=int(level), hazard=hazard, en=en, zh=zh, observed=inc.source.value == "alarm",
        onset=sent, expires=expires, polygons=_polygons(area.geometry) if area else (),
        geocodes=(admin_code,), incidents=(inc.id,),
        status=Status.EXERCISE if is_fictional(admin_code) else Status.ACTUAL,
        sender_code=gb_sender_code(admin_code, pub.sector_code, pub.unit_code),
    )
    if h is None:
        fields["category"] = (Category.OTHER,)
    if msg_type == MsgType.UPDATE:
        assert previous is not None
        return warning_update(previous, identifier=ident, sent=sent, **fields)
    return PublicWarning(identifier=ident, sender=pub.sender, sent=sent, **fields)


def publish(svc: ResponseService, user: User, incident_id: str, *, ts_ms: int,
            fmt: str = "cap", msg_type: MsgType | str = MsgType.ALERT,
            channels: Sequence[Publisher] = (), note_en: str = "", note_zh: str = "") -> Published:
    """Publish (or update, or cancel) the public warning of an incident: build it, encode
    it, hand it to ``channels``, store it and record it on the audit chain."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    mt = MsgType(msg_type.capitalize() if isinstance(msg_type, str) else msg_type)
    inc = svc.incident(user, incident_id)
    _check_rights(user, inc)
    if mt == MsgType.ALERT and not inc.is_open:
        raise ValueError(f"incident {inc.id} is {inc.state.value}: publish an update or a cancel")
    city = svc.rs.city_row()
    if city is None:
        raise NotFound("no city in the store (build or import one first)")
    previous_docs = svc.rs.publications(inc.id)
    previous = _decode(previous_docs[-1]["doc"]) if previous_docs else None
    if mt == MsgType.ALERT and previous is not None and previous.msg_type != MsgType.CANCEL:
        raise ValueError(f"incident {inc.id} already has a warning out ({previous.identifier}): "
                         "publish an update or a cancel")
    second = ts_ms // 1000 * 1000
    seq = sum(1 for p in svc.rs.publications() if p["sent_ms"] // 1000 * 1000 == second)
    if seq > 9:
        raise ValueError("at most 10 warnings per second (the identifier's sequence is one digit)")
    w = build_warning(svc, inc, ts_ms=ts_ms, admin_code=city["admin_code"], seq=seq, msg_type=mt,
                      previous=previous, note_en=note_en, note_zh=note_zh)
    payload = write_cap(w) if fmt == "cap" else write_gb(w)
    ctype = CAP_CONTENT_TYPE if fmt == "cap" else GB_CONTENT_TYPE
    receipts = tuple(ch.publish(w, payload, ctype) for ch in channels)
    rec = [{"channel": r.channel, "target": r.target, "ok": r.ok, "status": r.status,
            "detail": r.detail, "attempts": r.attempts} for r in receipts]
    with svc.rs.tx() as tx:
        tx.audit(ts_ms=ts_ms, actor=user.username, action=f"publish_{mt.value.lower()}",
                 entity="publication", entity_id=w.identifier,
                 data={"incident": inc.id, "format": fmt, "level": w.level, "msg_type": mt.value,
                       "sha256": hashlib.sha256(payload).hexdigest(), "receipts": rec,
                       "references": [r.identifier for r in w.references]})
        tx.put_publication(w.identifier, inc.id, mt.value, ts_ms,
                           {"format": fmt, "payload": payload.decode("utf-8"), "receipts": rec,
                            "headline": w.en.headline, "headline_zh": w.zh.headline})
    return Published(w, fmt, payload, ctype, receipts)
