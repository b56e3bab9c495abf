"""Public warnings from incidents: CAP 1.2 valid against the OASIS XSD, the GB/T
35965.1-style message, updates and cancels that reference the original, rights, the
audit record; from the service, the CLI and the API."""

from __future__ import annotations

import hashlib
import json

import pytest
from lxml import etree
from typer.testing import CliRunner

from rescity.io.cap import read_cap
from rescity.io.gbwarning import parse_gb_identifier, read_gb
from rescity.model import City
from rescity.model.publication import MsgType, Status
from rescity.respond.access import AccessDenied
from rescity.respond.publish import FilePublisher
from rescity.service.publication import publish
from rescity.service.respond import ResponseService
from tests.store.citydata import jurisdictions

from .conftest import CELLS, COMMANDER, D1, D2, GAS_OP, T0
from .test_cap import _cap_xsd_path

MIN = 60_000


@pytest.fixture(scope="module")
def xsd():
    return etree.XMLSchema(etree.parse(str(_cap_xsd_path())))


def _city(admin_code: str) -> City:
    c = City(name="Test city", name_zh="测试市", center=(24.94, 60.17), admin_code=admin_code)
    for j in jurisdictions():
        c.add_jurisdiction(j)
    return c


@pytest.fixture
def psvc(store):
    store.save_city(_city("320600"))
    return ResponseService(store)


def _gas(svc):
    lon, lat = CELLS["D1-S1-G1"]
    return svc.open_incident(COMMANDER, title="Methane 2.1 %LEL in manhole M12 next to a gas main",
                             title_zh="燃气管线旁检查井甲烷浓度2.1%LEL", type="methane_manhole",
                             level=1, ts_ms=T0, lon=lon, lat=lat, network="gas",
                             source="alarm", dispatch=True)


def test_alert_update_cancel_thread_valid_cap(psvc, xsd, tmp_path):
    inc = _gas(psvc)
    a = publish(psvc, COMMANDER, inc.id, ts_ms=T0 + MIN, channels=[FilePublisher(tmp_path)])
    assert xsd.validate(etree.fromstring(a.payload)), xsd.error_log
    w = read_cap(a.payload)
    assert w.level == 1 and w.hazard == "sewer_gas" and w.status == Status.ACTUAL
    assert w.severity.value == "Extreme" and w.urgency.value == "Immediate"
    assert w.cap_certainty.value == "Observed"  # it came from monitoring
    assert w.geocodes == ("320600",) and w.incidents == (inc.id,)
    assert "Street 1.1" in w.en.headline and "红色预警" in w.zh.headline
    assert w.polygons and w.polygons[0].contains(__import__("shapely").Point(*CELLS["D1-S1-G1"]))
    admin, sector, unit, ext, sent, seq = parse_gb_identifier(w.identifier)
    assert admin == "320600" and seq == 0
    assert a.receipts[0].ok and (tmp_path / a.receipts[0].target.split("/")[-1]).exists()
    with pytest.raises(ValueError, match="already has a warning out"):
        publish(psvc, COMMANDER, inc.id, ts_ms=T0 + 2 * MIN)
    u = publish(psvc, COMMANDER, inc.id, ts_ms=T0 + 30 * MIN, msg_type="update")
    assert xsd.validate(etree.fromstring(u.payload)), xsd.error_log
    assert u.warning.msg_type == MsgType.UPDATE
    assert [r.identifier for r in u.warning.references] == [w.identifier]
    c = publish(psvc, COMMANDER, inc.id, ts_ms=T0 + 90 * MIN, msg_type="cancel", fmt="gb")
    back = read_gb(c.payload)
    assert back.msg_type == MsgType.CANCEL
    assert [r.identifier for r in back.references] == [w.identifier, u.warning.identifier]
    # every publication is on the audit chain with the hash of its exact bytes
    recs = [r for r in psvc.rs.audit_records(entity="publication")]
    assert [r.action for r in recs] == ["publish_alert", "publish_update", "publish_cancel"]
    assert recs[0].data["sha256"] == hashlib.sha256(a.payload).hexdigest()
    assert psvc.verify_audit().ok


def test_rights_and_bad_input(psvc):
    inc = _gas(psvc)
    with pytest.raises(AccessDenied):
        publish(psvc, GAS_OP, inc.id, ts_ms=T0 + MIN)
    with pytest.raises(LookupError):  # not in D2's scope: it does not exist for them
        publish(psvc, D2, inc.id, ts_ms=T0 + MIN)
    with pytest.raises(ValueError, match="format"):
        publish(psvc, D1, inc.id, ts_ms=T0 + MIN, fmt="pdf")
    with pytest.raises(ValueError, match="nothing published yet"):
        publish(psvc, D1, inc.id, ts_ms=T0 + MIN, msg_type="update")
    assert publish(psvc, D1, inc.id, ts_ms=T0 + MIN, fmt="gb").warning.level == 1


def test_a_fictional_city_publishes_exercises_only(store, xsd):
    store.save_city(_city("990100"))
    svc = ResponseService(store)
    inc = _gas(svc)
    res = publish(svc, COMMANDER, inc.id, ts_ms=T0 + MIN)
    assert res.warning.status == Status.EXERCISE
    assert xsd.validate(etree.fromstring(res.payload))


def test_cli_publish_and_audit_verify(store, tmp_path, xsd):
    from rescity.cli import app

    store.save_city(_city("320600"))
    svc = ResponseService(store)
    inc = _gas(svc)
    runner = CliRunner()
    out = tmp_path / "w.xml"
    r = runner.invoke(app, ["publish", "--incident", inc.id, "--format", "cap", "--out", str(out),
                            "--db", store.url, "--now", "2026-01-01T00:05:00Z"])
    assert r.exit_code == 0, r.output
    assert xsd.validate(etree.parse(str(out)))
    r = runner.invoke(app, ["incidents", "list", "--json", "--db", store.url])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["id"] == inc.id
    r = runner.invoke(app, ["incidents", "act", inc.id, "accept", "--db", store.url,
                            "--now", "2026-01-01T00:06:00Z"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["audit", "verify", "--db", store.url])
    assert r.exit_code == 0 and "intact" in r.stdout
    import sqlalchemy as sa

    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET actor = 'nobody' WHERE seq = 3"))
    r = runner.invoke(app, ["audit", "verify", "--db", store.url])
    assert r.exit_code == 1 and "record 3" in r.output
