"""Decoding, validation, dead letters, the readings store and replay (both stores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point

from rescity.model import Sensor
from rescity.monitor.batch import DAY_MS, MINUTE_MS, ReadingBatch
from rescity.monitor.decode import Decoder, gateway_payload, parse_ts, topic_for
from rescity.monitor.pipeline import Pipeline
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.replay import replay_arrays
from rescity.monitor.validate import Reason, Validator
from rescity.store.monitoring import MonitoringStore, latest_sql
from rescity.store.testing import backend_params, make_test_store

NOW = 1_763_780_400_000  # 2025-11-22T03:00:00Z


def registry() -> SensorRegistry:
    return SensorRegistry.from_sensors(registry_sensors())


def test_registry_is_sorted_and_looks_up():
    reg = registry()
    assert list(reg.ids) == sorted(reg.ids)
    idx = reg.lookup(["water.n3.pressure", "nope"])
    assert reg.ids[idx[0]] == "water.n3.pressure" and idx[1] == -1
    assert reg.quantities == ("methane", "pressure")
    assert len(reg.of_quantity("pressure")) == 5


def test_each_invalid_kind_gets_its_reason():
    reg = registry()
    v = Validator(reg)
    s = reg.index["water.n1.pressure"]
    m = reg.index["drainage.j1.methane"]
    ok, rej = v.validate(ReadingBatch.of([s, s], [NOW - 2000, NOW - 1000], [40.0, 41.0]), NOW)
    assert len(ok) == 2 and not rej.reasons
    batch = ReadingBatch.of(
        [s, s, s, s, s, m, s],
        [NOW - 1000, NOW - 1500, NOW + 3_600_000, NOW - 30 * DAY_MS, NOW + 1, NOW + 2, NOW + 3],
        [41.0, 40.5, 40.0, 40.0, float("nan"), 120.0, 42.0],
    )
    ok, rej = v.validate(batch, NOW)
    got = sorted(zip(rej.batch.ts.tolist(), rej.reasons, strict=True))
    assert got == sorted([
        (NOW - 1000, Reason.DUPLICATE),
        (NOW - 1500, Reason.OUT_OF_ORDER),
        (NOW + 3_600_000, Reason.FUTURE),
        (NOW - 30 * DAY_MS, Reason.TOO_OLD),
        (NOW + 1, Reason.NOT_FINITE),
        (NOW + 2, Reason.OUT_OF_RANGE),
    ])
    assert ok.ts.tolist() == [NOW + 3]
    assert "outside the physical range [0.0, 100.0]" in rej.details[[r for _, r in got].index(Reason.OUT_OF_RANGE)] or any(
        "physical range" in d for d in rej.details)
    assert v.stats()["rejected"]["duplicate"] == 1


readings = st.lists(
    st.tuples(st.integers(0, 5), st.integers(-600, 600),
              st.one_of(st.floats(-20, 220), st.just(float("nan")), st.just(float("inf")))),
    min_size=0, max_size=60)


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(readings, min_size=1, max_size=5))
def test_nothing_valid_is_dropped_and_duplicates_never_count_twice(batches):
    """Every reading is either accepted or rejected with a reason; a (sensor, ts) is
    accepted at most once whatever the batching and redelivery; valid new readings in
    time order are all accepted."""
    reg = registry()
    v = Validator(reg)
    seen: set[tuple[int, int]] = set()
    newest: dict[int, int] = {}
    for rows in batches:
        b = ReadingBatch.of([r[0] for r in rows], [NOW + r[1] * 1000 for r in rows], [r[2] for r in rows])
        ok, rej = v.validate(b, NOW + 700_000)
        assert len(ok) + len(rej.batch) == len(b)
        keys = list(zip(ok.sensor.tolist(), ok.ts.tolist(), strict=True))
        assert len(set(keys)) == len(keys)
        assert not (set(keys) & seen)
        seen |= set(keys)
        # accepted readings are finite, in range, and newer than what came before
        assert np.all(np.isfinite(ok.value))
        assert np.all((ok.value >= reg.low[ok.sensor]) & (ok.value <= reg.high[ok.sensor]))
        for s, t in keys:
            assert t > newest.get(s, -(2**62)) or (s, t) in keys
        for s, t in keys:
            newest[s] = max(newest.get(s, t), t)
        # a rejected reading that was valid in itself is a duplicate or out of order
        for s, t, val, r in zip(rej.batch.sensor.tolist(), rej.batch.ts.tolist(),
                                rej.batch.value.tolist(), rej.reasons, strict=True):
            if np.isfinite(val) and reg.low[s] <= val <= reg.high[s]:
                assert r in (Reason.DUPLICATE, Reason.OUT_OF_ORDER)
                assert r != Reason.DUPLICATE or (s, t) in seen


def test_redelivery_after_restart_is_a_duplicate():
    reg = registry()
    s = reg.index["water.n2.pressure"]
    v = Validator(reg)
    v.validate(ReadingBatch.of([s] * 3, [NOW - 3000, NOW - 2000, NOW - 1000], [1.0, 2.0, 3.0]), NOW)
    fresh = Validator(reg)
    fresh.restore(np.array([s, s, s]), np.array([NOW - 3000, NOW - 2000, NOW - 1000]))
    ok, rej = fresh.validate(ReadingBatch.of([s, s], [NOW - 2000, NOW], [2.0, 4.0]), NOW)
    assert rej.reasons == [Reason.DUPLICATE] and ok.ts.tolist() == [NOW]


def test_decoder_message_kinds():
    reg = registry()
    d = Decoder(reg)
    one = d.message(topic_for("water", "water.n1.pressure"), json.dumps({"ts": NOW, "value": 41.0}), NOW)
    assert len(one.batch) == 1 and not one.dead
    many = d.message(topic_for("water", "water.n1.pressure"),
                     json.dumps([{"ts": "2025-11-22T03:00:00Z", "value": 1}, {"ts": NOW + 1, "value": "2.5"}]), NOW)
    assert many.batch.ts.tolist() == [NOW, NOW + 1] and many.batch.value.tolist() == [1.0, 2.5]
    gw = d.message("rescity/water/_batch", gateway_payload(["water.n1.pressure", "ghost"], [NOW, NOW], [1.0, 2.0]), NOW)
    assert len(gw.batch) == 1 and [x.reason for x in gw.dead] == [Reason.UNKNOWN_SENSOR]
    compact = d.message("rescity/water/_batch", json.dumps(
        {"sensor": ["water.n1.pressure", "water.n2.pressure"], "t0": NOW, "dt": [0, 500], "value": [1, 2]}), NOW)
    assert compact.batch.ts.tolist() == [NOW, NOW + 500]
    bad = {
        "rescity/water": "{}",
        topic_for("water", "water.n1.pressure"): "{not json",
        topic_for("water", "water.n2.pressure"): json.dumps({"value": 1}),
        topic_for("water", "water.n3.pressure"): json.dumps({"ts": NOW, "value": "high"}),
        topic_for("water", "water.n4.pressure"): json.dumps({"ts": "yesterday", "value": 1}),
        topic_for("water", "nope"): json.dumps({"ts": NOW, "value": 1}),
    }
    reasons = [d.message(t, p, NOW).dead[0].reason for t, p in bad.items()]
    assert reasons == [Reason.MALFORMED, Reason.MALFORMED, Reason.MALFORMED, Reason.NOT_NUMERIC,
                       Reason.MALFORMED, Reason.UNKNOWN_SENSOR]


@given(st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
       st.sampled_from(["rescity/water/water.n1.pressure", "rescity/water/_batch", "x/y"]))
@settings(max_examples=200, deadline=None)
def test_decoder_never_raises(payload, topic):
    out = Decoder(registry()).message(topic, payload, NOW)
    assert len(out.batch) + len(out.dead) >= 1


def test_parse_ts_refuses_naive_and_garbage():
    assert parse_ts("2025-11-22T03:00:00+00:00") == NOW
    for bad in ("2025-11-22T03:00:00", "soon", True, None, float("nan")):
        with pytest.raises(ValueError):
            parse_ts(bad)


@pytest.mark.parametrize("backend", backend_params())
def test_pipeline_stores_readings_once_and_dead_letters_with_reason(backend, tmp_path):
    store = make_test_store(backend, tmp_path)
    try:
        mon = MonitoringStore(store.engine)
        reg = registry()
        pipe = Pipeline.build(reg, sink=mon)
        d = Decoder(reg)
        sid = "water.n1.pressure"
        msgs = [(topic_for("water", sid), json.dumps({"ts": NOW + i * 1000, "value": 40 + i})) for i in range(5)]
        msgs += [(topic_for("water", "ghost"), json.dumps({"ts": NOW, "value": 1})),
                 (topic_for("water", sid), json.dumps({"ts": NOW + 1000, "value": 999}))]
        for t, p in msgs + msgs[:3]:  # the first three are redelivered
            pipe.ingest(d.message(t, p, NOW + 10_000), NOW + 10_000, "mqtt")
        assert mon.count_readings(sid) == 5
        ts, vals = mon.readings(sid)
        assert ts.tolist() == [NOW + i * 1000 for i in range(5)] and vals.tolist() == [40, 41, 42, 43, 44]
        counts = mon.dead_letter_counts()
        assert counts == {"unknown_sensor": 1, "out_of_range": 1, "duplicate": 3}
        letter = mon.dead_letters("out_of_range")[0]
        assert letter["sensor_uid"] == sid and "999" in letter["detail"]
        # a later day goes to its own partition on PostgreSQL, earlier readings stay
        mon.insert_readings([sid], np.array([NOW + 3 * DAY_MS]), np.array([45.0]))
        assert mon.count_readings(sid) == 6
        uids, latest = mon.latest()
        assert dict(zip(uids, latest.tolist(), strict=True))[sid] == NOW + 3 * DAY_MS
    finally:
        store.close()


def test_replay_runs_on_simulated_time():
    reg = registry()
    pipe = Pipeline.build(reg)
    n = 24 * 60
    ts = NOW - DAY_MS + np.arange(n) * MINUTE_MS
    sensors = ["water.n0.pressure"] * n
    stats = replay_arrays(pipe, sensors, ts, np.full(n, 40.0), step_ms=10 * MINUTE_MS)
    assert stats.accepted == n and stats.dead == 0
    assert stats.slices == 144 and stats.last_ms >= ts[-1]


def test_http_telemetry_needs_a_device_token_and_reports_rejections(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from rescity.api.app import create_app
    from rescity.model import City

    monkeypatch.setenv("RESCITY_INGEST_TOKENS", "dev-token-1")
    store = make_test_store("sqlite", tmp_path)
    city = City(name="t", center=(24.94, 60.17))
    from rescity.model import Network, NetworkType, Node

    net = Network("water", NetworkType.WATER)
    for i in range(5):
        net.add_node(Node(f"n{i}", "junction", Point(24.94, 60.17)))
    city.add_network(net)
    net2 = Network("drainage", NetworkType.DRAINAGE)
    net2.add_node(Node("j1", "junction", Point(24.95, 60.17)))
    city.add_network(net2)
    for s in registry_sensors():
        city.add_sensor(s)
    store.save_city(city)
    url = store.engine.url.render_as_string(hide_password=False)
    store.close()
    client = TestClient(create_app(url))
    import time as _time

    now = int(_time.time() * 1000)
    body = {"sensor": ["water.n1.pressure", "water.n1.pressure", "ghost", "water.n2.pressure"],
            "ts": [now - 2000, now - 1000, now, now], "value": [40.0, 40.5, 1.0, "abc"]}
    assert client.post("/api/telemetry", json=body).status_code == 401
    assert client.post("/api/telemetry", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.post("/api/telemetry", json=body, headers={"Authorization": "Bearer dev-token-1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "stored": 2, "rejected": {"unknown_sensor": 1, "not_numeric": 1}}
    again = client.post("/api/telemetry", json=body, headers={"Authorization": "Bearer dev-token-1"}).json()
    assert again["stored"] == 0 and again["rejected"]["duplicate"] == 2
    bad = client.post("/api/telemetry", json={"sensor": ["a"], "ts": [], "value": []},
                      headers={"Authorization": "Bearer dev-token-1"})
    assert bad.status_code == 422
    assert client.post("/api/telemetry", content=b"{nope", headers={
        "Authorization": "Bearer dev-token-1", "Content-Type": "application/json"}).status_code == 422


def registry_sensors() -> list[Sensor]:
    sensors = [Sensor(f"water.n{i}.pressure", f"water:n{i}", "pressure", Point(24.94, 60.17))
               for i in range(5)]
    sensors.append(Sensor("drainage.j1.methane", "drainage:j1", "methane", Point(24.95, 60.17)))
    return sensors


def test_a_failed_store_write_can_be_retried_without_losing_readings():
    class FlakySink:
        def __init__(self):
            self.rows: set[tuple[str, int]] = set()
            self.fail = True

        def write(self, ids, sensor, ts, values, dead=(), events=(), alarms=()):
            if self.fail:
                self.fail = False
                raise OSError("database went away")
            new = {(ids[s], int(t)) for s, t in zip(sensor.tolist(), ts.tolist(), strict=True)} - self.rows
            self.rows |= new
            return len(new)

    reg = registry()
    sink = FlakySink()
    pipe = Pipeline.build(reg, sink=sink)
    d = Decoder(reg)
    msg = d.message(topic_for("water", "water.n1.pressure"), json.dumps([{"ts": NOW, "value": 40}, {"ts": NOW + 1, "value": 41}]), NOW)
    with pytest.raises(OSError):
        pipe.ingest(msg, NOW)
    res = pipe.ingest(msg, NOW)  # the redelivery after the failure
    assert res.accepted == 2 and res.stored == 2 and not res.dead
    again = pipe.ingest(msg, NOW)  # a second redelivery is now a duplicate
    assert again.accepted == 0 and [x.reason for x in again.dead] == [Reason.DUPLICATE] * 2


class _Stage:
    """A warning stage that opens one alarm per accepted batch (for the transaction tests)."""

    def __init__(self) -> None:
        self.sink = None
        self.n = 0

    def process(self, batch):
        from types import SimpleNamespace

        self.n += 1
        ev = SimpleNamespace(alarm_id=f"a{self.n}", model="m", asset="water:n1", ts_ms=int(batch.ts.max()),
                             kind="opened", level_before=0, level_after=3, value=1.0, details={})
        alarm = SimpleNamespace(id=f"a{self.n}", model="m", asset="water:n1", state="firing", level=3,
                                opened_ms=ev.ts_ms, updated_ms=ev.ts_ms)
        self.sink([ev], [alarm])
        return [ev]


@pytest.mark.parametrize("backend", backend_params())
def test_readings_dead_letters_and_alarm_events_commit_together(backend, tmp_path):
    """One batch is one transaction: a failure while writing its alarm events leaves
    none of its readings or dead letters behind; the pipeline then refuses to go on
    (its engine is ahead of the store) and a rebuilt one stores everything once."""
    store = make_test_store(backend, tmp_path)
    try:
        mon = MonitoringStore(store.engine)
        reg = registry()
        d = Decoder(reg)
        sid = "water.n1.pressure"
        rows = [{"ts": NOW + i, "value": 40 + i} for i in range(5)] + [{"ts": NOW + 9, "value": 999}]
        msg = d.message(topic_for("water", sid), json.dumps(rows), NOW + 10_000)

        class BrokenAlarms(MonitoringStore):
            @staticmethod
            def _write_alarms(conn, ev, al):
                raise ConnectionError("database went away while writing alarm events")

        stage = _Stage()
        pipe = Pipeline.build(reg, sink=BrokenAlarms(store.engine), engine=stage)
        with pytest.raises(ConnectionError):
            pipe.ingest(msg, NOW + 10_000)
        assert mon.count_readings() == 0 and mon.dead_letter_counts() == {} and mon.alarm_events() == []
        from rescity.monitor.pipeline import PipelineStale

        with pytest.raises(PipelineStale):
            pipe.ingest(msg, NOW + 10_000)
        # rebuilt from the store (what a worker does), the redelivered batch goes in once
        pipe = Pipeline.build(reg, sink=MonitoringStore(store.engine), engine=_Stage())
        pipe.restore(*mon.latest(per_sensor=16))
        res = pipe.ingest(msg, NOW + 10_000)
        assert res.accepted == 5 and res.stored == 5
        assert mon.count_readings(sid) == 5
        assert mon.dead_letter_counts() == {"out_of_range": 1}
        assert [e["alarm_id"] for e in mon.alarm_events()] == ["a1"]
        assert [a["id"] for a in mon.alarms()] == ["a1"]
    finally:
        store.close()


keys = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30)), min_size=0, max_size=40)


@pytest.mark.parametrize("backend", backend_params())
def test_the_readings_store_never_stores_a_key_twice(backend, tmp_path):
    """Any sequence of writes (overlapping, repeated, duplicates inside one write) leaves
    each (sensor, ts) stored once with its first value; ``write`` counts only new rows;
    ``latest`` gives the newest timestamps of every sensor."""
    store = make_test_store(backend, tmp_path)
    ids = [f"s{i}" for i in range(5)]

    @settings(max_examples=25, deadline=None)
    @given(writes=st.lists(keys, min_size=1, max_size=4))
    def check(writes):
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM reading")
        mon = MonitoringStore(store.engine)
        first: dict[tuple[int, int], float] = {}
        for n, rows in enumerate(writes):
            vals = [float(n * 100 + j) for j in range(len(rows))]
            expect_new = len({r for r in rows if r not in first})
            for r, v in zip(rows, vals, strict=True):
                first.setdefault(r, v)
            got = mon.write(ids, np.array([r[0] for r in rows], dtype=np.int32),
                            np.array([NOW + r[1] for r in rows], dtype=np.int64), np.array(vals))
            assert got == expect_new
        assert mon.count_readings() == len(first)
        for i, sid in enumerate(ids):
            ts, vals = mon.readings(sid)
            want = sorted((t, v) for (s, t), v in first.items() if s == i)
            assert ts.tolist() == [NOW + t for t, _ in want] and vals.tolist() == [v for _, v in want]
        uids, latest = mon.latest(per_sensor=3)
        got_latest: dict[str, list[int]] = {}
        for u, t in zip(uids, latest.tolist(), strict=True):
            got_latest.setdefault(u, []).append(t)
        want_latest = {ids[i]: sorted((NOW + t for (s, t) in first if s == i), reverse=True)[:3]
                       for i in range(5) if any(s == i for s, _ in first)}
        assert got_latest == want_latest

    try:
        check()
    finally:
        store.close()


@pytest.mark.parametrize("backend", backend_params())
def test_latest_is_an_index_scan(backend, tmp_path):
    """``latest`` reads the primary-key index per sensor instead of scanning the table."""
    store = make_test_store(backend, tmp_path)
    try:
        mon = MonitoringStore(store.engine)
        mon.write(["a", "b"], np.array([0, 1] * 50, dtype=np.int32), NOW + np.arange(100), np.zeros(100))
        sql = latest_sql(backend)
        with store.engine.connect() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql("ANALYZE reading")
                conn.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: ask what it can do
                plan = " ".join(r[0] for r in conn.execute(sa.text(f"EXPLAIN {sql}"), {"k": 16, "lo": 0}))
                assert "Index Only Scan Backward" in plan or "Index Scan Backward" in plan, plan
            else:
                plan = " ".join(str(r[-1]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"),
                                                                 {"k": 16, "lo": 0}))
                assert "SCAN r " not in f"{plan} " and "SEARCH r USING PRIMARY KEY" in plan, plan
        uids, ts = mon.latest(per_sensor=2)
        assert uids == ["a", "a", "b", "b"] and ts.tolist() == [NOW + 98, NOW + 96, NOW + 99, NOW + 97]
    finally:
        store.close()


def test_monitor_does_not_import_outer_layers():
    """Dependencies point inward: nothing in ``rescity.monitor`` imports the service, API
    or CLI layers (the worker gets its pipeline factory from the service layer)."""
    import ast
    from pathlib import Path

    import rescity.monitor

    root = Path(rescity.monitor.__file__).parent
    outer = ("rescity.service", "rescity.api", "rescity.cli")
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        funcs = [(n.name, n.lineno, n.end_lineno) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for node in ast.walk(tree):
            mods = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for mod in mods:
                if mod.startswith(outer):
                    inside = [f for f, a, b in funcs if a <= node.lineno <= (b or a)]
                    found.append((path.name, inside[-1] if inside else None, mod))
    assert found == [], found
