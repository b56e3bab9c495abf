"""The audit chain: pure checks, and tampering directly in the database on both backends."""

from __future__ import annotations

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from rescity.respond.audit import AuditRecord, seal, verify

from .conftest import CELLS, COMMANDER, T0


def chain(n: int) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    for i in range(n):
        out.append(seal(out[-1] if out else None, ts_ms=T0 + i, actor="a", action="note",
                        entity="incident", entity_id="I1", before="new", after="new",
                        data={"text": f"note {i}", "值": i}))
    return out


def test_intact_chain_verifies():
    c = chain(5)
    assert verify(c, head=(5, c[-1].hash)).ok
    assert verify([], head=None).ok


@given(n=st.integers(2, 12), data=st.data())
def test_any_single_edit_delete_or_swap_is_caught(n, data):
    c = chain(n)
    i = data.draw(st.integers(0, n - 1))
    kind = data.draw(st.sampled_from(["edit", "delete", "swap", "truncate"]))
    if kind == "edit":
        r = c[i]
        c[i] = AuditRecord(**{**r.content(), "data": {**r.data, "text": "rewritten"},
                              "prev_hash": r.prev_hash, "hash": r.hash})
        bad = i + 1
    elif kind == "delete":
        del c[i]
        bad = i + 1
    elif kind == "swap":
        j = (i + 1) % n
        c[i], c[j] = c[j], c[i]
        bad = min(i, j) + 1
    else:
        head = (n, c[-1].hash)
        v = verify(c[:i], head=head)
        assert not v.ok and "head" in v.reason
        return
    v = verify(c, head=(n, chain(n)[-1].hash))
    assert not v.ok and v.bad_seq == bad, (kind, i, v)


def _svc_with_events(svc):
    lon, lat = CELLS["D1-S1-G1"]
    inc = svc.open_incident(COMMANDER, title="gas", type="gas_leak", level=1, ts_ms=T0, lon=lon,
                            lat=lat, network="gas")
    svc.act(COMMANDER, inc.id, "verify", T0 + 1000)
    svc.act(COMMANDER, inc.id, "dispatch", T0 + 2000)
    svc.act(COMMANDER, inc.id, "note", T0 + 3000, {"text": "crew en route"})
    assert svc.verify_audit().ok
    return inc


def _seq(svc, action):
    return [r.seq for r in svc.rs.audit_records() if r.action == action][-1]


def test_edit_in_the_database_is_caught_and_named(svc, store):
    _svc_with_events(svc)
    n = _seq(svc, "note")
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET body = replace(body, 'crew en route', 'all fine') WHERE seq = :n"), {"n": n})
    v = svc.verify_audit()
    assert not v.ok and v.bad_seq == n and "edited" in v.reason


def test_actor_rewrite_is_caught(svc, store):
    _svc_with_events(svc)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2"))
    v = svc.verify_audit()
    assert not v.ok and v.bad_seq == 2


def test_delete_in_the_middle_and_at_the_end_are_caught(svc, store):
    _svc_with_events(svc)
    n = _seq(svc, "note")  # the newest record
    with store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq = :n"), {"n": n})
    v = svc.verify_audit()
    assert not v.ok and v.bad_seq == n and "head" in v.reason
    with store.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    v = svc.verify_audit()
    assert not v.ok and v.bad_seq == 2 and "missing" in v.reason


def test_reorder_is_caught(svc, store):
    _svc_with_events(svc)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET seq = 100 WHERE seq = 2"))
        c.execute(sa.text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
        c.execute(sa.text("UPDATE audit_log SET seq = 3 WHERE seq = 100"))
    v = svc.verify_audit()
    assert not v.ok and v.bad_seq == 2


def test_projection_edit_is_caught(svc, store):
    inc = _svc_with_events(svc)
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE incident SET state = 'closed' WHERE id = :i"), {"i": inc.id})
    v = svc.verify_audit()
    assert not v.ok and inc.id in v.reason and "state" in v.reason


def test_chain_continues_after_many_writers(svc):
    """Appends from separate transactions chain on one another (the head is locked)."""
    import threading

    lon, lat = CELLS["D2-S1-G1"]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(5):
                svc.open_incident(COMMANDER, title=f"t{k}.{j}", type="waterlogging", level=3,
                                  ts_ms=T0 + j, lon=lon, lat=lat, network="drainage")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    v = svc.verify_audit()
    assert v.ok and v.records == 20
    assert len({d["id"] for d in svc.rs.incident_docs()}) == 20
