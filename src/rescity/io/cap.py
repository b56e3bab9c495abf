"""CAP 1.2 (OASIS Common Alerting Protocol) for public warnings: ``write_cap`` / ``read_cap``.

The message follows the OASIS CAP 1.2 schema (namespace
``urn:oasis:names:tc:emergency:cap:1.2``), elements in the order the XSD's sequences
require; the tests validate every written message against the official XSD.

How a :class:`~rescity.model.publication.PublicWarning` is written:

* ``alert``: identifier, sender, sent, status, msgType, scope, restriction, addresses,
  note, references (``sender,identifier,sent`` triples, space separated), incidents.
* two ``info`` blocks, ``en-US`` then ``zh-CN``, each with category, event,
  responseType, urgency/severity/certainty (:func:`~rescity.model.publication.cap_triplet`),
  eventCode ``rescity:hazard`` (the hazard key), onset, expires, senderName, headline,
  description, instruction, web, contact, the parameters below and one ``area``
  (areaDesc, polygons as ``"lat,lon"`` pairs, closed; geocodes with valueName
  ``GB/T 2260``: 6-digit administrative division codes).
* parameters: ``rescity:level`` (1 red .. 4 blue), ``rescity:colour``, ``rescity:observed``
  (``true`` when measured by monitoring) and ``rescity:senderCode`` (the GB/T 35965.1
  issuing-unit code), so a message read back is the warning written.

Times are written as ``YYYY-MM-DDThh:mm:ss+hh:mm`` (the XSD's pattern: no fractions, no
``Z``). Coordinates are written in positional decimal notation with the shortest digits
that read back to the same float. Limitations: only ``Alert``/``Update``/``Cancel``; a
message read must carry an English and a Chinese ``info``; ``circle``, ``resource``,
``altitude``/``ceiling`` and signatures are not modelled (an error names them).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from shapely.geometry import Polygon

from rescity.io.errors import FormatError
from rescity.model.city import ModelError
from rescity.model.publication import (
    LANG_EN,
    LANG_ZH,
    Category,
    Certainty,
    MsgType,
    PublicWarning,
    Reference,
    ResponseType,
    Scope,
    Status,
    WarningText,
    level_colour,
    level_of_severity,
)

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPE = "application/cap+xml"
GEOCODE_NAME = "GB/T 2260"
P_HAZARD = "rescity:hazard"
P_LEVEL = "rescity:level"
P_COLOUR = "rescity:colour"
P_OBSERVED = "rescity:observed"
P_SENDER_CODE = "rescity:senderCode"

_EN_TAGS = ("en-us", "en")
_ZH_TAGS = ("zh-cn", "zh", "zh-hans", "zh-hans-cn")

E = TypeVar("E")


# -- shared helpers (also used by the GB message) --------------------------------------------------
def format_time(t: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+hh:mm`` (CAP 1.2 dateTime pattern)."""
    return t.isoformat(timespec="seconds")


def format_number(x: float) -> str:
    """The shortest positional decimal that reads back as the same float (no exponent)."""
    s = format(Decimal(repr(float(x))), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def format_polygon(p: Polygon) -> str:
    """A WGS84 polygon as CAP ``"lat,lon lat,lon ..."``, closed (first point repeated)."""
    coords = list(p.exterior.coords)
    if coords[0] != coords[-1]:
        coords.append(coords[0])
    return " ".join(f"{format_number(y)},{format_number(x)}" for x, y, *_ in coords)


def parse_polygon(text: str, source: str, where: str) -> Polygon:
    """Parse CAP ``"lat,lon ..."`` (at least 4 pairs, first == last) into a lon/lat Polygon."""
    pairs = text.split()
    pts: list[tuple[float, float]] = []
    for k, pair in enumerate(pairs):
        parts = pair.split(",")
        if len(parts) != 2:
            raise FormatError(source, f"point {k + 1} must be 'lat,lon', found {pair!r}", field=where)
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except ValueError:
            raise FormatError(source, f"point {k + 1} is not numeric: {pair!r}", field=where) from None
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise FormatError(source, f"point {k + 1} ({pair}) is outside WGS84 lat/lon ranges", field=where)
        pts.append((lon, lat))
    if len(pts) < 4:
        raise FormatError(source, f"a polygon needs at least 4 points, found {len(pts)}", field=where)
    if pts[0] != pts[-1]:
        raise FormatError(source, "a polygon must be closed (first point == last point)", field=where)
    return Polygon(pts)


def parse_time(text: str | None, source: str, where: str) -> datetime:
    if not text:
        raise FormatError(source, "expected a date-time, found nothing", field=where)
    t = text.strip()
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        raise FormatError(source, f"expected YYYY-MM-DDThh:mm:ss+hh:mm, found {t!r}", field=where) from None
    if value.tzinfo is None:
        raise FormatError(source, f"the time {t!r} has no UTC offset", field=where)
    return value


def parse_enum(cls: Callable[[str], E], text: str | None, source: str, where: str, allowed: Iterable[str]) -> E:
    try:
        return cls((text or "").strip())
    except ValueError:
        raise FormatError(
            source, f"expected one of {', '.join(allowed)}, found {text!r}", field=where
        ) from None


def format_references(refs: Iterable[Reference]) -> str:
    return " ".join(f"{r.sender},{r.identifier},{format_time(r.sent)}" for r in refs)


def parse_references(text: str, source: str, where: str) -> tuple[Reference, ...]:
    out = []
    for tok in text.split():
        parts = tok.split(",")
        if len(parts) != 3:
            raise FormatError(source, f"a reference is 'sender,identifier,sent', found {tok!r}", field=where)
        try:
            out.append(Reference(parts[0], parts[1], parse_time(parts[2], source, where)))
        except ModelError as exc:
            raise FormatError(source, str(exc), field=where) from None
    return tuple(out)


def language_key(lang: str) -> str | None:
    """``"en"`` or ``"zh"`` for a language tag we read, else None."""
    low = lang.strip().lower()
    if low in _EN_TAGS:
        return "en"
    if low in _ZH_TAGS:
        return "zh"
    return None


def parse_xml(data: bytes, source: str) -> ET.Element:
    if not isinstance(data, bytes | bytearray):
        raise FormatError(source, f"expected XML bytes, found {type(data).__name__}")
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise FormatError(source, "DTDs and entity declarations are not accepted")
    try:
        return ET.fromstring(bytes(data))
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise FormatError(source, f"not well-formed XML: {exc}", line=line) from None


def build_model_error(source: str, exc: ModelError) -> FormatError:
    return FormatError(source, f"the message is not a valid public warning: {exc}")


# -- writing ---------------------------------------------------------------------------------------
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(tag: str, text: str) -> str:
    """``text`` if XML 1.0 can carry it, else ValueError naming the element and the character."""
    m = _NOT_XML.search(text)
    if m:
        raise ValueError(f"<{tag}> contains {m.group()!r}, which XML 1.0 cannot carry")
    return text


def _q(tag: str) -> str:
    return f"{{{CAP_NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    e = ET.SubElement(parent, _q(tag))
    if text is not None:
        e.text = xml_text(tag, text)
    return e


def _pair(parent: ET.Element, tag: str, name: str, value: str) -> None:
    e = _sub(parent, tag)
    _sub(e, "valueName", name)
    _sub(e, "value", value)


def write_optional_header(root: ET.Element, w: PublicWarning,
                          sub: Callable[[ET.Element, str, str], ET.Element]) -> None:
    """The optional alert elements both formats write after ``scope``, in the CAP order:
    restriction, addresses, note, references (``sender,identifier,sent`` each), incidents."""
    for tag, text in (("restriction", w.restriction), ("addresses", w.addresses), ("note", w.note),
                      ("references", format_references(w.references) if w.references else ""),
                      ("incidents", " ".join(w.incidents))):
        if text:
            sub(root, tag, text)


def write_cap(w: PublicWarning) -> bytes:
    """The warning as a CAP 1.2 XML document (UTF-8 bytes, with an XML declaration)."""
    ET.register_namespace("", CAP_NS)
    root = ET.Element(_q("alert"))
    _sub(root, "identifier", w.identifier)
    _sub(root, "sender", w.sender)
    _sub(root, "sent", format_time(w.sent))
    _sub(root, "status", w.status.value)
    _sub(root, "msgType", w.msg_type.value)
    _sub(root, "scope", w.scope.value)
    write_optional_header(root, w, _sub)
    for lang, text in w.texts():
        info = _sub(root, "info")
        _sub(info, "language", lang)
        for c in w.category:
            _sub(info, "category", c.value)
        _sub(info, "event", text.event)
        for r in w.response:
            _sub(info, "responseType", r.value)
        _sub(info, "urgency", w.urgency.value)
        _sub(info, "severity", w.severity.value)
        _sub(info, "certainty", w.cap_certainty.value)
        _pair(info, "eventCode", P_HAZARD, w.hazard)
        if w.onset is not None:
            _sub(info, "onset", format_time(w.onset))
        if w.expires is not None:
            _sub(info, "expires", format_time(w.expires))
        if text.sender_name:
            _sub(info, "senderName", text.sender_name)
        _sub(info, "headline", text.headline)
        if text.description:
            _sub(info, "description", text.description)
        if text.instruction:
            _sub(info, "instruction", text.instruction)
        if w.web:
            _sub(info, "web", w.web)
        if w.contact:
            _sub(info, "contact", w.contact)
        _pair(info, "parameter", P_LEVEL, str(w.level))
        _pair(info, "parameter", P_COLOUR, level_colour(w.level))
        _pair(info, "parameter", P_OBSERVED, "true" if w.observed else "false")
        if w.sender_code:
            _pair(info, "parameter", P_SENDER_CODE, w.sender_code)
        if text.area_desc or w.polygons or w.geocodes:
            area = _sub(info, "area")
            _sub(area, "areaDesc", text.area_desc)
            for p in w.polygons:
                _sub(area, "polygon", format_polygon(p))
            for g in w.geocodes:
                _pair(area, "geocode", GEOCODE_NAME, g)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# -- reading ---------------------------------------------------------------------------------------
class _Reader:
    """Reads elements of one namespace (or none) with errors that name the element."""

    def __init__(self, source: str, ns: str | None) -> None:
        self.source = source
        self.ns = ns

    def q(self, tag: str) -> str:
        return f"{{{self.ns}}}{tag}" if self.ns else tag

    def name(self, e: ET.Element) -> str:
        return e.tag.split("}", 1)[-1]

    def all(self, parent: ET.Element, tag: str) -> list[ET.Element]:
        return parent.findall(self.q(tag))

    def opt(self, parent: ET.Element, tag: str, where: str) -> str | None:
        found = self.all(parent, tag)
        if len(found) > 1:
            raise FormatError(self.source, f"<{tag}> appears {len(found)} times, at most once allowed", field=f"{where}/{tag}")
        return (found[0].text or "") if found else None

    def req(self, parent: ET.Element, tag: str, where: str) -> str:
        v = self.opt(parent, tag, where)
        if v is None:
            raise FormatError(self.source, f"missing required element <{tag}>", field=f"{where}/{tag}")
        return v

    def pairs(self, parent: ET.Element, tag: str, where: str) -> list[tuple[str, str]]:
        out = []
        for e in self.all(parent, tag):
            name = self.opt(e, "valueName", f"{where}/{tag}")
            value = self.opt(e, "value", f"{where}/{tag}")
            if name is None or value is None:
                raise FormatError(self.source, "needs <valueName> and <value>", field=f"{where}/{tag}")
            out.append((name, value))
        return out


def _split_infos(r: _Reader, infos: list[ET.Element], where: str) -> dict[str, tuple[int, ET.Element]]:
    by_lang: dict[str, tuple[int, ET.Element]] = {}
    for i, info in enumerate(infos, start=1):
        lang = r.opt(info, "language", f"{where}[{i}]") or "en-US"
        key = language_key(lang)
        if key is None:
            raise FormatError(r.source, f"language must be en-US or zh-CN, found {lang!r}", field=f"{where}[{i}]/language")
        if key in by_lang:
            raise FormatError(r.source, f"two <info> blocks in language {lang!r}", field=f"{where}[{i}]/language")
        by_lang[key] = (i, info)
    for key, tag in (("en", LANG_EN), ("zh", LANG_ZH)):
        if key not in by_lang:
            raise FormatError(r.source, f"expected an <info> block in {tag}", field=where)
    return by_lang


def read_cap(data: bytes, source: str = "<bytes>") -> PublicWarning:
    """Read a CAP 1.2 message written by :func:`write_cap` (or a compatible producer).

    Raises :class:`~rescity.io.errors.FormatError` naming ``source`` and the element.
    """
    root = parse_xml(data, source)
    if root.tag != f"{{{CAP_NS}}}alert":
        raise FormatError(source, f"expected <alert> in namespace {CAP_NS}, found {root.tag!r}", field="alert")
    r = _Reader(source, CAP_NS)
    a = "alert"
    identifier = r.req(root, "identifier", a).strip()
    sender = r.req(root, "sender", a).strip()
    sent = parse_time(r.req(root, "sent", a), source, f"{a}/sent")
    status = parse_enum(Status, r.req(root, "status", a), source, f"{a}/status", [s.value for s in Status])
    msg_type = parse_enum(MsgType, r.req(root, "msgType", a), source, f"{a}/msgType", [m.value for m in MsgType])
    scope = parse_enum(Scope, r.req(root, "scope", a), source, f"{a}/scope", [s.value for s in Scope])
    refs_text = r.opt(root, "references", a)
    references = parse_references(refs_text, source, f"{a}/references") if refs_text else ()
    incidents = tuple((r.opt(root, "incidents", a) or "").split())
    by_lang = _split_infos(r, r.all(root, "info"), f"{a}/info")

    texts: dict[str, WarningText] = {}
    common: dict[str, object] = {}
    for key in ("en", "zh"):
        i, info = by_lang[key]
        w = f"{a}/info[{i}]"
        for tag in ("resource",):
            if r.all(info, tag):
                raise FormatError(source, f"<{tag}> is not supported", field=f"{w}/{tag}")
        cats = tuple(
            parse_enum(Category, e.text, source, f"{w}/category", [c.value for c in Category])
            for e in r.all(info, "category")
        )
        if not cats:
            raise FormatError(source, "missing required element <category>", field=f"{w}/category")
        response = tuple(
            parse_enum(ResponseType, e.text, source, f"{w}/responseType", [x.value for x in ResponseType])
            for e in r.all(info, "responseType")
        )
        r.req(info, "urgency", w)
        severity = r.req(info, "severity", w).strip()
        certainty = parse_enum(
            Certainty, r.req(info, "certainty", w), source, f"{w}/certainty", [c.value for c in Certainty]
        )
        codes = dict(r.pairs(info, "eventCode", w))
        params = dict(r.pairs(info, "parameter", w))
        if P_HAZARD not in codes:
            raise FormatError(source, f"missing <eventCode> {P_HAZARD!r} (the hazard key)", field=f"{w}/eventCode")
        if P_LEVEL in params:
            try:
                level = int(params[P_LEVEL])
            except ValueError:
                raise FormatError(source, f"{P_LEVEL} must be 1..4, found {params[P_LEVEL]!r}", field=f"{w}/parameter") from None
        else:
            try:
                level = level_of_severity(severity)
            except ValueError as exc:
                raise FormatError(source, str(exc), field=f"{w}/severity") from None
        observed_text = params.get(P_OBSERVED)
        if observed_text not in (None, "true", "false"):
            raise FormatError(source, f"{P_OBSERVED} must be true or false, found {observed_text!r}", field=f"{w}/parameter")
        observed = certainty == Certainty.OBSERVED if observed_text is None else observed_text == "true"
        onset_t = r.opt(info, "onset", w)
        expires_t = r.opt(info, "expires", w)
        areas = r.all(info, "area")
        if len(areas) > 1:
            raise FormatError(source, f"one <area> per <info> is supported, found {len(areas)}", field=f"{w}/area")
        area_desc = ""
        polygons: tuple[Polygon, ...] = ()
        geocodes: tuple[str, ...] = ()
        if areas:
            ar = areas[0]
            wa = f"{w}/area"
            area_desc = r.req(ar, "areaDesc", wa)
            for tag in ("circle", "altitude", "ceiling"):
                if r.all(ar, tag):
                    raise FormatError(source, f"<{tag}> is not supported", field=f"{wa}/{tag}")
            polygons = tuple(
                parse_polygon(e.text or "", source, f"{wa}/polygon[{k}]")
                for k, e in enumerate(r.all(ar, "polygon"), start=1)
            )
            geocodes = tuple(v.strip() for _, v in r.pairs(ar, "geocode", wa))
        texts[key] = WarningText(
            headline=r.opt(info, "headline", w) or "",
            description=r.opt(info, "description", w) or "",
            instruction=r.opt(info, "instruction", w) or "",
            event=r.req(info, "event", w),
            area_desc=area_desc,
            sender_name=r.opt(info, "senderName", w) or "",
        )
        if key == "en":
            common = dict(
                category=cats,
                response=response,
                certainty=certainty,
                level=level,
                observed=observed,
                hazard=codes[P_HAZARD].strip(),
                onset=parse_time(onset_t, source, f"{w}/onset") if onset_t is not None else None,
                expires=parse_time(expires_t, source, f"{w}/expires") if expires_t is not None else None,
                polygons=polygons,
                geocodes=geocodes,
                web=(r.opt(info, "web", w) or "").strip(),
                contact=r.opt(info, "contact", w) or "",
                sender_code=params.get(P_SENDER_CODE, "").strip(),
            )
    try:
        return PublicWarning(
            identifier=identifier,
            sender=sender,
            sent=sent,
            status=status,
            msg_type=msg_type,
            scope=scope,
            restriction=r.opt(root, "restriction", a) or "",
            addresses=r.opt(root, "addresses", a) or "",
            note=r.opt(root, "note", a) or "",
            references=references,
            incidents=incidents,
            en=texts["en"],
            zh=texts["zh"],
            **common,  # type: ignore[arg-type]
        )
    except ModelError as exc:
        raise build_model_error(source, exc) from None


__all__ = ["CAP_NS", "CONTENT_TYPE", "read_cap", "write_cap"]
