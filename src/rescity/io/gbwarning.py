"""The Chinese national early-warning message, GB/T 35965.1-2018 style (应急信息交互协议 第1部分：预警信息).

The standard's text and schema are not available offline here; this module follows
what its normative Annex A (取值规则及说明) says, as reproduced by public copies and
by the provincial data standards built on it (e.g. DB63/T 1748-2019, DB12/T 1128-2022),
and calls the result **GB/T 35965.1 style**.

Identifier (预警信息唯一标识, A.1.1), 31 characters::

    ZZZZZZ DDD UUU XX _ YYYYMMDDhhmmss _ N
    |----- sender code ---|   |-- time ---|   sequence

* ``ZZZZZZ``: 6-digit administrative division code of the issuer (GB/T 2260), e.g.
  ``320600`` Nantong; its first two digits must be a province-level code (or the whole
  code ``100000``, the national level).
* ``DDD``: 3-digit sector (institution/industry) code (GB/T 4657).
* ``UUU``: 3-digit secondary code inside the issuing unit, default ``000``.
* ``XX``: 2-digit extension, default ``00``.
  The 14 characters ``ZZZZZZDDDUUUXX`` are the issuing-unit code (发布单位代码, A.1.2),
  written in ``<senderCode>``.
* ``YYYYMMDDhhmmss``: the time the warning was entered, **Beijing time** (UTC+08:00),
  GB/T 7408 basic format (A.1.3.1); :func:`gb_identifier` converts any aware time.
* ``N``: sequence number of the messages of one unit within one second, one digit
  0..9 counting from 0.

The XML message mirrors CAP, whose structure the standard adopts, with the standard's
element names: root ``<alert>`` (no namespace) with ``identifier``, ``sender``,
``senderCode``, ``sendTime`` (extended format ``YYYY-MM-DDThh:mm:ss+08:00``, Beijing
time), ``status``, ``msgType``, ``scope``, ``restriction``, ``addresses``, ``note``,
``references`` and one ``<info>`` per language (``zh-CN`` first, then ``en-US``) with
``language``, ``eventType``, ``urgency``, ``severity`` (the colour of the level: ``Red``,
``Orange``, ``Yellow``, ``Blue``), ``certainty``, ``onset``, ``expires``, ``senderName``,
``headline``, ``description``, ``instruction``, ``web``, ``contact`` and ``<area>``
(``areaDesc``, ``polygon`` as CAP ``"lat,lon"`` pairs, ``geocode`` as bare 6-digit codes).

Limitations and ResCity extensions: ``eventType`` carries ResCity's hazard key
(``gas_leak``), not a GB/T 35561 event code (the mapping table is not built);
``incidents``, ``category``, ``responseType`` and ``<parameter>`` ``observed`` are
written (as in CAP) so that the message reads back as the warning written.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from shapely.geometry import Polygon

from rescity.io.cap import (
    build_model_error,
    format_polygon,
    format_time,
    language_key,
    parse_enum,
    parse_polygon,
    parse_references,
    parse_time,
    parse_xml,
    write_optional_header,
    xml_text,
)
from rescity.io.errors import FormatError
from rescity.model.city import ModelError
from rescity.model.publication import (
    LANG_EN,
    LANG_ZH,
    Category,
    Certainty,
    MsgType,
    PublicWarning,
    ResponseType,
    Scope,
    Status,
    WarningText,
)

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
CONTENT_TYPE = "application/xml"

_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
_GB_ID = re.compile(r"(?P<unit>[0-9]{14})_(?P<time>[0-9]{14})_(?P<seq>[0-9])")
_COLOURS = {1: "Red", 2: "Orange", 3: "Yellow", 4: "Blue"}
_LEVELS = {v: k for k, v in _COLOURS.items()}


def _digits(what: str, value: str, n: int) -> str:
    if not isinstance(value, str) or len(value) != n or not value.isascii() or not value.isdigit():
        raise ValueError(f"{what} must be {n} ASCII digits, found {value!r}")
    return value


FICTIONAL_PREFIX = "99"
"""Division codes starting with 99 (no province has it) mark fictional cities such as the
demo city; ResCity accepts them and publishes their warnings as exercises only
(``status`` Exercise), never as actual warnings."""


def is_fictional(code: str) -> bool:
    return code.startswith(FICTIONAL_PREFIX)


def check_admin_code(code: str) -> str:
    """A 6-digit GB/T 2260 administrative division code (province prefix checked; the
    fictional prefix 99 is accepted, see :data:`FICTIONAL_PREFIX`)."""
    _digits("administrative division code", code, 6)
    if code != "100000" and code[:2] not in _PROVINCES and not is_fictional(code):
        raise ValueError(
            f"administrative division code {code!r} starts with {code[:2]!r}, "
            f"which is no province-level code (expected one of {' '.join(sorted(_PROVINCES))}, or 100000)"
        )
    return code


def gb_sender_code(admin_code: str, sector_code: str, unit_code: str = "000", ext_code: str = "00") -> str:
    """The 14-character issuing-unit code ``ZZZZZZDDDUUUXX`` (division, sector, unit, extension)."""
    check_admin_code(admin_code)
    _digits("sector code (GB/T 4657)", sector_code, 3)
    _digits("unit code", unit_code, 3)
    _digits("extension code", ext_code, 2)
    return admin_code + sector_code + unit_code + ext_code


def gb_identifier(
    admin_code: str,
    sector_code: str,
    sent: datetime,
    seq: int,
    *,
    unit_code: str = "000",
    ext_code: str = "00",
) -> str:
    """The 31-character identifier ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` (layout in the module doc).

    ``sent`` must be timezone-aware; it is written in Beijing time. ``seq`` is 0..9.
    """
    unit = gb_sender_code(admin_code, sector_code, unit_code, ext_code)
    if not isinstance(sent, datetime) or sent.tzinfo is None or sent.utcoffset() is None:
        raise ValueError(f"sent must be a timezone-aware datetime, found {sent!r}")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 9:
        raise ValueError(f"sequence number must be an integer 0..9 (one digit), found {seq!r}")
    return f"{unit}_{sent.astimezone(BEIJING):%Y%m%d%H%M%S}_{seq}"


def parse_gb_identifier(identifier: str) -> tuple[str, str, str, str, datetime, int]:
    """``(admin_code, sector_code, unit_code, ext_code, sent (Beijing time), seq)`` of an identifier."""
    m = _GB_ID.fullmatch(identifier)
    if m is None:
        raise ValueError(f"expected ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N (31 characters), found {identifier!r}")
    unit = m["unit"]
    check_admin_code(unit[:6])
    try:
        sent = datetime.strptime(m["time"], "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
    except ValueError:
        raise ValueError(f"identifier {identifier!r}: {m['time']!r} is not a valid YYYYMMDDhhmmss time") from None
    return unit[:6], unit[6:9], unit[9:12], unit[12:14], sent, int(m["seq"])


# -- writing ---------------------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    e = ET.SubElement(parent, tag)
    if text is not None:
        e.text = xml_text(tag, text)
    return e


def _bj(t: datetime) -> str:
    return format_time(t.astimezone(BEIJING))


def write_gb(w: PublicWarning) -> bytes:
    """The warning as a GB/T 35965.1-style XML message (UTF-8). Needs ``w.sender_code``."""
    if not w.sender_code:
        raise ValueError("a GB/T 35965.1 message needs the issuing-unit code (PublicWarning.sender_code)")
    root = ET.Element("alert")
    _sub(root, "identifier", w.identifier)
    _sub(root, "sender", w.sender)
    _sub(root, "senderCode", w.sender_code)
    _sub(root, "sendTime", _bj(w.sent))
    _sub(root, "status", w.status.value)
    _sub(root, "msgType", w.msg_type.value)
    _sub(root, "scope", w.scope.value)
    write_optional_header(root, w, _sub)
    for lang, text in ((LANG_ZH, w.zh), (LANG_EN, w.en)):
        info = _sub(root, "info")
        _sub(info, "language", lang)
        _sub(info, "eventType", w.hazard)
        _sub(info, "eventName", text.event)
        for c in w.category:
            _sub(info, "category", c.value)
        for r in w.response:
            _sub(info, "responseType", r.value)
        _sub(info, "urgency", w.urgency.value)
        _sub(info, "severity", _COLOURS[w.level])
        _sub(info, "certainty", w.cap_certainty.value)
        if w.onset is not None:
            _sub(info, "onset", _bj(w.onset))
        if w.expires is not None:
            _sub(info, "expires", _bj(w.expires))
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
        p = _sub(info, "parameter")
        _sub(p, "valueName", "observed")
        _sub(p, "value", "true" if w.observed else "false")
        if text.area_desc or w.polygons or w.geocodes:
            area = _sub(info, "area")
            _sub(area, "areaDesc", text.area_desc)
            for poly in w.polygons:
                _sub(area, "polygon", format_polygon(poly))
            for g in w.geocodes:
                _sub(area, "geocode", g)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# -- reading ---------------------------------------------------------------------------------------
def _opt(parent: ET.Element, tag: str, source: str, where: str) -> str | None:
    found = parent.findall(tag)
    if len(found) > 1:
        raise FormatError(source, f"<{tag}> appears {len(found)} times, at most once allowed", field=f"{where}/{tag}")
    return (found[0].text or "") if found else None


def _req(parent: ET.Element, tag: str, source: str, where: str) -> str:
    v = _opt(parent, tag, source, where)
    if v is None:
        raise FormatError(source, f"missing required element <{tag}>", field=f"{where}/{tag}")
    return v


def read_gb(data: bytes, source: str = "<bytes>") -> PublicWarning:
    """Read a message written by :func:`write_gb`; errors name ``source`` and the element."""
    root = parse_xml(data, source)
    if root.tag != "alert":
        raise FormatError(source, f"expected root element <alert>, found <{root.tag}>", field="alert")
    a = "alert"
    identifier = _req(root, "identifier", source, a).strip()
    sender_code = _req(root, "senderCode", source, a).strip()
    if not re.fullmatch(r"[0-9]{14}", sender_code):
        raise FormatError(source, f"senderCode must be 14 digits, found {sender_code!r}", field=f"{a}/senderCode")
    refs_text = _opt(root, "references", source, a)
    infos: dict[str, tuple[str, ET.Element]] = {}
    for i, info in enumerate(root.findall("info"), start=1):
        w = f"{a}/info[{i}]"
        lang = _req(info, "language", source, w)
        key = language_key(lang)
        if key is None or key in infos:
            raise FormatError(source, f"expected one zh-CN and one en-US <info>, found {lang!r}", field=f"{w}/language")
        infos[key] = (w, info)
    for key, tag in (("zh", LANG_ZH), ("en", LANG_EN)):
        if key not in infos:
            raise FormatError(source, f"expected an <info> block in {tag}", field=f"{a}/info")
    texts: dict[str, WarningText] = {}
    common: dict[str, object] = {}
    for key in ("zh", "en"):
        w, info = infos[key]
        severity = _req(info, "severity", source, w).strip()
        if severity not in _LEVELS:
            raise FormatError(source, f"severity must be Red, Orange, Yellow or Blue, found {severity!r}", field=f"{w}/severity")
        certainty = parse_enum(Certainty, _req(info, "certainty", source, w), source, f"{w}/certainty",
                               [c.value for c in Certainty])
        observed = None
        for p in info.findall("parameter"):
            if (p.findtext("valueName") or "").strip() == "observed":
                v = (p.findtext("value") or "").strip()
                if v not in ("true", "false"):
                    raise FormatError(source, f"observed must be true or false, found {v!r}", field=f"{w}/parameter")
                observed = v == "true"
        area_desc = ""
        polygons: tuple[Polygon, ...] = ()
        geocodes: tuple[str, ...] = ()
        areas = info.findall("area")
        if len(areas) > 1:
            raise FormatError(source, f"one <area> per <info> is supported, found {len(areas)}", field=f"{w}/area")
        if areas:
            wa = f"{w}/area"
            area_desc = _req(areas[0], "areaDesc", source, wa)
            polygons = tuple(parse_polygon(e.text or "", source, f"{wa}/polygon[{k}]")
                             for k, e in enumerate(areas[0].findall("polygon"), start=1))
            geocodes = tuple((e.text or "").strip() for e in areas[0].findall("geocode"))
        texts[key] = WarningText(
            headline=_opt(info, "headline", source, w) or "",
            description=_opt(info, "description", source, w) or "",
            instruction=_opt(info, "instruction", source, w) or "",
            event=_opt(info, "eventName", source, w) or "",
            area_desc=area_desc,
            sender_name=_opt(info, "senderName", source, w) or "",
        )
        if key == "zh":
            onset_t = _opt(info, "onset", source, w)
            expires_t = _opt(info, "expires", source, w)
            common = dict(
                hazard=_req(info, "eventType", source, w).strip(),
                level=_LEVELS[severity],
                certainty=certainty,
                observed=certainty == Certainty.OBSERVED if observed is None else observed,
                category=tuple(parse_enum(Category, e.text, source, f"{w}/category", [c.value for c in Category])
                               for e in info.findall("category")),
                response=tuple(parse_enum(ResponseType, e.text, source, f"{w}/responseType",
                                          [x.value for x in ResponseType]) for e in info.findall("responseType")),
                onset=parse_time(onset_t, source, f"{w}/onset") if onset_t is not None else None,
                expires=parse_time(expires_t, source, f"{w}/expires") if expires_t is not None else None,
                polygons=polygons,
                geocodes=geocodes,
                web=(_opt(info, "web", source, w) or "").strip(),
                contact=_opt(info, "contact", source, w) or "",
            )
    try:
        return PublicWarning(
            identifier=identifier,
            sender=_req(root, "sender", source, a).strip(),
            sender_code=sender_code,
            sent=parse_time(_req(root, "sendTime", source, a), source, f"{a}/sendTime"),
            status=parse_enum(Status, _req(root, "status", source, a), source, f"{a}/status", [s.value for s in Status]),
            msg_type=parse_enum(MsgType, _req(root, "msgType", source, a), source, f"{a}/msgType",
                                [m.value for m in MsgType]),
            scope=parse_enum(Scope, _req(root, "scope", source, a), source, f"{a}/scope", [s.value for s in Scope]),
            restriction=_opt(root, "restriction", source, a) or "",
            addresses=_opt(root, "addresses", source, a) or "",
            note=_opt(root, "note", source, a) or "",
            references=parse_references(refs_text, source, f"{a}/references") if refs_text else (),
            incidents=tuple((_opt(root, "incidents", source, a) or "").split()),
            en=texts["en"],
            zh=texts["zh"],
            **common,  # type: ignore[arg-type]
        )
    except ModelError as exc:
        raise build_model_error(source, exc) from None


__all__ = [
    "BEIJING",
    "CONTENT_TYPE",
    "FICTIONAL_PREFIX",
    "check_admin_code",
    "is_fictional",
    "gb_identifier",
    "gb_sender_code",
    "parse_gb_identifier",
    "read_gb",
    "write_gb",
]
