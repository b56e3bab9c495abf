"""MQTT ingestion against the real Mosquitto: end to end into both stores, every kind of
bad message into the dead-letter store with its reason, acknowledgement only after the
store write, and a worker process SIGKILLed mid-stream losing nothing and counting
nothing twice."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from rescity.monitor import mqtt as mqtt_module
from rescity.monitor.decode import Decoder, gateway_payload
from rescity.monitor.mqtt import (
    MqttIngestor,
    MqttPublisher,
    SensorListCache,
    decode_messages,
    drop_session,
    publish_gateway_batches,
    publish_readings,
)
from rescity.monitor.pipeline import Pipeline
from rescity.monitor.registry import SensorRegistry
from rescity.store.monitoring import MonitoringStore
from rescity.store.testing import backend_params

from .ingest_helpers import (
    WorkerProcess,
    check_alarms_not_duplicated,
    check_exactly_once,
    city_store,
    db_url,
    engine_available,
    low_pressure_streams,
    make_stream,
    open_alarm_keys,
    require_mqtt,
    sensor_ids,
    stored_keys,
    tag,
    wait_until,
    water_sensors,
)

NOW = 1_763_780_400_000  # 2025-11-22T03:00:00Z


@pytest.fixture
def mosquitto() -> None:
    """Mosquitto must be up (the test fails otherwise, unless RESCITY_SKIP_BROKERS=1)."""
    require_mqtt()


@contextlib.contextmanager
def running(ingestor: MqttIngestor) -> Iterator[MqttIngestor]:
    """The ingestor subscribed and consuming in a thread; stopped and its session dropped after."""
    ingestor.start()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingestor.run(stop)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            errors.append(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    try:
        yield ingestor
    finally:
        stop.set()
        th.join(10)
        with contextlib.suppress(Exception):
            ingestor.close()
        drop_session(ingestor.consumer.client_id)
    if errors:
        raise errors[0]


@pytest.mark.parametrize("parser", ["default", "json"])
def test_decode_messages_gives_what_decoding_one_by_one_gives(parser, monkeypatch):
    if parser == "json":  # without the optional orjson
        monkeypatch.setattr(mqtt_module, "_loads", json.loads)
    reg = SensorRegistry.from_sensors(water_sensors(30))
    dec = Decoder(reg)
    ids = sensor_ids(30)
    msgs = [
        ("rescity/w/PT-J000", b'{"ts": 1000, "value": 41.5}'),
        ("rescity/w/PT-J001", b'[{"ts": 1000, "value": 1}, {"ts": 2000, "value": 2}]'),
        ("rescity/w/_batch", gateway_payload(["PT-J002", "NOPE"], [1000, 1000], [3.0, 4.0])),
        ("rescity/w/_batch", gateway_payload(ids[3:28], range(25), [40.0] * 25)),  # cached list
        ("rescity/w/_batch", gateway_payload(ids[3:28], range(100, 125), [41] * 25)),  # cache hit
        ("rescity/w/_batch", gateway_payload(ids[3:27] + ["GHOST"], range(200, 225), [1.0] * 25)),
        ("rescity/w/_batch", json.dumps({"sensor": ids[:20], "t0": 5000, "dt": list(range(20)),
                                         "value": [2.5] * 20}).encode()),
        ("rescity/w/_batch", json.dumps({"sensor": ids[:20], "t0": 6000, "value": [2] * 20}).encode()),
        ("rescity/w/_batch", json.dumps({"sensor": ids[:20], "ts": [7000] * 20,
                                         "value": ["2.5"] * 19 + ["x"]}).encode()),  # text values
        ("rescity/w/_batch", json.dumps({"sensor": ids[:20], "ts": ["2025-11-22T03:00:00Z"] * 20,
                                         "value": [True] + [1.0] * 19}).encode()),
        ("rescity/w/PT-J000", b"not json"),
        ("rescity/w", b"{}"),
        ("rescity/w/PT-J002", b'{"ts": 3000, "value": "abc"}'),
    ]
    cache = SensorListCache(reg)
    together = decode_messages(dec, msgs, NOW, cache)
    one_by_one = [dec.message(t, p, NOW) for t, p in msgs]
    rows = sorted(zip(together.batch.sensor.tolist(), together.batch.ts.tolist(),
                      together.batch.value.tolist(), strict=True))
    expect = sorted(r for d in one_by_one for r in zip(d.batch.sensor.tolist(), d.batch.ts.tolist(),
                                                       d.batch.value.tolist(), strict=True))
    assert rows == expect and len(rows) == 4 + 25 + 25 + 24 + 20 + 20 + 19 + 19
    assert sorted((d.reason, d.detail) for d in together.dead) == sorted(
        (d.reason, d.detail) for x in one_by_one for d in x.dead)
    assert len(cache._d) >= 2


def test_publisher_never_has_more_than_its_window_in_flight(mosquitto):
    t = tag()
    with MqttPublisher(window=50) as pub:
        most = 0
        for i in range(1500):
            pub.publish(f"rescity/{t}/PT-J000", b'{"ts":%d,"value":1}' % i)
            most = max(most, len(pub._pending))
        pub.flush()
        assert most <= 50 and not pub._pending and pub.published == 1500


@pytest.mark.parametrize("backend", backend_params())
def test_mqtt_end_to_end_every_format_lands_in_the_store(mosquitto, backend, tmp_path):
    store = city_store(backend, tmp_path, 20)
    mon = MonitoringStore(store.engine)
    pipe = Pipeline.build(SensorRegistry.from_sensors(store.get_sensors()), sink=mon)
    t = tag()
    now = int(time.time() * 1000)
    s = make_stream(20, 30, start_ms=now - 3_600_000)
    with running(MqttIngestor(pipe, client_id=f"test-{t}", topics=[f"rescity/{t}/#"])):
        with MqttPublisher() as pub:
            # readings 0..199 one per message, 200..499 as gateway batches, the rest as
            # t0/dt batches and per-sensor lists
            publish_readings(pub, s.sensors[:200], s.ts[:200], s.values[:200], t)
            publish_gateway_batches(pub, s.sensors[200:500], s.ts[200:500], s.values[200:500], t,
                                    batch_size=64)
            t0 = int(s.ts[500])
            pub.publish(f"rescity/{t}/_batch", json.dumps({
                "sensor": s.sensors[500:560], "t0": t0, "dt": [int(x) - t0 for x in s.ts[500:560]],
                "value": s.values[500:560].tolist()}).encode())
            for sid in sensor_ids(20):
                idx = [i for i in range(560, 600) if s.sensors[i] == sid]
                pub.publish(f"rescity/{t}/{sid}", json.dumps(
                    [{"ts": int(s.ts[i]), "value": float(s.values[i])} for i in idx]).encode())
        wait_until(lambda: mon.count_readings() >= len(s), 20, "all readings stored")
    got = {(u, tt): v for u, tt, v in _rows(store)}
    assert set(got) == s.keys()
    assert all(got[(u, int(tt))] == v for u, tt, v in zip(s.sensors, s.ts, s.values, strict=True))
    assert mon.dead_letter_counts() == {}
    store.close()


def _rows(store) -> list[tuple[str, int, float]]:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return [(r[0], int(r[1]), float(r[2]))
                for r in conn.execute(sa.text("SELECT s.sensor_uid, r.ts_ms, r.value FROM reading r "
                                                "JOIN reading_sensor s ON s.id = r.sensor_id"))]


@pytest.mark.parametrize("backend", backend_params())
def test_mqtt_every_kind_of_bad_message_is_a_dead_letter_with_its_reason(mosquitto, backend, tmp_path):
    store = city_store(backend, tmp_path, 10)
    mon = MonitoringStore(store.engine)
    pipe = Pipeline.build(SensorRegistry.from_sensors(store.get_sensors()), sink=mon)
    t = tag()
    top = f"rescity/{t}"
    ids = sensor_ids(10)
    ing = MqttIngestor(pipe, client_id=f"test-{t}", topics=[f"{top}/#"], now=lambda: NOW)
    with running(ing), MqttPublisher() as pub:
        # phase 1: two good readings per sensor, stored before the bad ones arrive
        for dt in (-60_000, -50_000):
            for sid in ids:
                pub.publish(f"{top}/{sid}", json.dumps({"ts": NOW + dt, "value": 40.0}).encode())
        pub.flush()
        wait_until(lambda: mon.count_readings() == 20, 15, "phase 1 stored")
        bad = [
            (top, b'{"ts": 1, "value": 1}', "malformed"),  # topic too short
            (f"{top}/PT-J000/extra", b'{"ts": 1, "value": 1}', "malformed"),  # topic too long
            (f"{top}/PT-J001", b"hello", "malformed"),  # not JSON
            (f"{top}/PT-J001", b"\xff\xfe\x00", "malformed"),  # not UTF-8
            (f"{top}/PT-J001", b'{"value": 3}', "malformed"),  # no ts
            (f"{top}/_batch", b'{"sensor": ["PT-J001"], "ts": [1]}', "malformed"),  # no value
            (f"{top}/_batch", b'{"sensor": ["PT-J001", "PT-J002"], "ts": [1], "value": [1, 2]}',
             "malformed"),  # lists of different lengths
            (f"{top}/PT-J002", json.dumps({"ts": "yesterday", "value": 1}).encode(), "malformed"),
            (f"{top}/NOPE", json.dumps({"ts": NOW - 1000, "value": 1}).encode(), "unknown_sensor"),
            (f"{top}/PT-J003", json.dumps({"ts": NOW - 1000, "value": "abc"}).encode(), "not_numeric"),
            (f"{top}/PT-J003", json.dumps({"ts": NOW - 900, "value": None}).encode(), "not_numeric"),
            # NUL inside text: PostgreSQL refuses it; must not become a poison message
            (f"{top}/PT-J003", b'{"ts": %d, "value": "4\\u00002"}' % (NOW - 800), "not_numeric"),
            (f"{top}/PT-J004", b'{"ts": %d, "value": NaN}' % (NOW - 1000), "not_finite"),
            (f"{top}/PT-J004", b'{"ts": %d, "value": Infinity}' % (NOW - 900), "not_finite"),
            (f"{top}/PT-J004", b'{"ts": %d, "value": "-inf"}' % (NOW - 800), "not_finite"),
            (f"{top}/PT-J005", json.dumps({"ts": NOW - 1000, "value": 500.0}).encode(), "out_of_range"),
            (f"{top}/PT-J005", json.dumps({"ts": NOW - 900, "value": -50.0}).encode(), "out_of_range"),
            (f"{top}/PT-J006", json.dumps({"ts": NOW + 3_600_000, "value": 40.0}).encode(), "future"),
            (f"{top}/PT-J007", json.dumps({"ts": NOW - 30 * 86_400_000, "value": 40.0}).encode(), "too_old"),
            (f"{top}/PT-J000", json.dumps({"ts": NOW - 50_000, "value": 40.0}).encode(), "duplicate"),
            (f"{top}/PT-J001", json.dumps({"ts": NOW - 55_000, "value": 40.0}).encode(), "out_of_order"),
        ]
        good = [  # valid ones mixed in, also inside a batch with an unknown sensor
            (f"{top}/_batch", gateway_payload(["PT-J008", "GHOST"], [NOW - 1000, NOW - 1000], [41.0, 1.0])),
            (f"{top}/PT-J009", b'{"ts": "2025-11-22T02:59:59Z", "value": "42.5"}'),
        ]
        for topic, payload, _ in bad:
            pub.publish(topic, payload)
        for topic, payload in good:
            pub.publish(topic, payload)
        pub.flush()
        expected: dict[str, int] = {}
        for *_, reason in bad:
            expected[reason] = expected.get(reason, 0) + 1
        expected["unknown_sensor"] += 1  # GHOST
        wait_until(lambda: sum(mon.dead_letter_counts().values()) >= sum(expected.values())
                   and mon.count_readings() >= 22, 15, "dead letters and readings stored")
    assert mon.dead_letter_counts() == expected
    assert mon.count_readings() == 22
    assert ("PT-J009", NOW - 1000) in set(stored_keys(store))
    letters = mon.dead_letters(limit=100)
    raw = {d["payload"] for d in letters if d["reason"] == "malformed"}
    assert "hello" in raw  # the raw message is kept for decode failures
    assert all(d["detail"] and d["source"] == "mqtt" for d in letters)
    assert {d["sensor_uid"] for d in letters if d["reason"] == "out_of_range"} == {"PT-J005"}
    store.close()


class _FailOnce:
    """A sink whose first write fails (the database went away)."""

    def __init__(self, inner: MonitoringStore) -> None:
        self.inner = inner
        self.failed = False

    def write(self, *args, **kwargs) -> int:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database went away")
        return self.inner.write(*args, **kwargs)


def test_a_batch_whose_store_write_fails_is_not_acknowledged_and_comes_back(mosquitto, tmp_path):
    store = city_store("sqlite", tmp_path, 10)
    mon = MonitoringStore(store.engine)
    reg = SensorRegistry.from_sensors(store.get_sensors())
    t = tag()
    cid = f"test-{t}"
    s = make_stream(10, 20, start_ms=int(time.time() * 1000) - 600_000)
    sink = _FailOnce(mon)
    first = MqttIngestor(Pipeline.build(reg, sink=sink), client_id=cid, topics=[f"rescity/{t}/#"],
                         session_expiry_s=120)
    first.start()
    with MqttPublisher() as pub:
        publish_readings(pub, s.sensors, s.ts, s.values, t)
    deadline = time.monotonic() + 15
    with pytest.raises(ConnectionError, match="database went away"):
        first.run(until=lambda: time.monotonic() > deadline)
    assert mon.count_readings() == 0
    # a new process: pipeline rebuilt from the store, same session -> the broker redelivers
    pipe = Pipeline.build(reg, sink=mon)
    pipe.restore(*mon.latest(per_sensor=16))
    with running(MqttIngestor(pipe, client_id=cid, topics=[f"rescity/{t}/#"])):
        wait_until(lambda: mon.count_readings() >= len(s), 15, "redelivered readings stored")
    check_exactly_once(store, s)
    store.close()


# -- the worker process, killed ----------------------------------------------------------------------
def _publish_paced(t: str, s, *, every: int = 37, single: int = 12, chunk: int = 20,
                   pause_s: float = 0.04) -> threading.Thread:
    """Publish ``s`` in time order from a thread: of every ``every`` readings, ``single``
    one per message and the rest as one gateway batch; ``chunk`` messages at a time with
    a pause between."""

    def run() -> None:
        msgs: list[tuple[str, bytes]] = []
        for a in range(0, len(s), every):
            for i in range(a, min(a + single, len(s))):
                msgs.append((f"rescity/{t}/{s.sensors[i]}",
                             b'{"ts":%d,"value":%r}' % (int(s.ts[i]), float(s.values[i]))))
            b, e = a + single, min(a + every, len(s))
            if b < e:
                msgs.append((f"rescity/{t}/_batch", gateway_payload(s.sensors[b:e], s.ts[b:e], s.values[b:e])))
        assert len(msgs) < 1000  # Mosquitto queues 1000 messages for an offline session, drops the rest
        with MqttPublisher() as pub:
            for k, (topic, payload) in enumerate(msgs):
                pub.publish(topic, payload)
                if k % chunk == chunk - 1:
                    pub.flush()
                    time.sleep(pause_s)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def _worker(url: str, t: str, *extra: str) -> WorkerProcess:
    w = WorkerProcess("mqtt", "--db", url, "--client-id", f"test-{t}", "--topic", f"rescity/{t}/#",
                      "--batch-max", "200", "--max-wait-ms", "20", "--session-expiry-s", "300",
                      "--progress-s", "0", *extra)
    w.wait_for(r"^ready ", 60)
    return w


@pytest.mark.postgres
def test_mqtt_worker_sigkilled_mid_stream_loses_nothing_and_counts_nothing_twice(mosquitto, tmp_path):
    store = city_store("postgresql", tmp_path, 40)
    url = db_url(store)
    t = tag()
    # 37 readings per sensor, 20 s apart: the low sensors hold 8 m for 12 minutes (alarms)
    s = make_stream(40, 37, start_ms=int(time.time() * 1000) - 3_600_000, low=(3, 7))
    mon = MonitoringStore(store.engine)
    w = _worker(url, t)
    try:
        pub = _publish_paced(t, s)  # 520 messages
        wait_until(lambda: mon.count_readings() > len(s) // 3, 20, "a third of the stream stored")
        w.kill()
        stored_at_kill = mon.count_readings()
        time.sleep(0.3)
        w = _worker(url, t)
        pub.join(30)
        wait_until(lambda: mon.count_readings() >= len(s), 30, "every reading stored")
        time.sleep(0.3)  # nothing more may arrive
    finally:
        assert w.stop() == 0
        drop_session(f"test-{t}")
    assert stored_at_kill < len(s), "the kill came after the stream: nothing was tested"
    check_exactly_once(store, s)
    store.close()


@pytest.mark.postgres
def test_mqtt_worker_killed_between_store_write_and_ack_gets_the_batch_again(mosquitto, tmp_path):
    store = city_store("postgresql", tmp_path, 40)
    url = db_url(store)
    t = tag()
    s = make_stream(40, 20, start_ms=int(time.time() * 1000) - 3_600_000, low=(5,))
    mon = MonitoringStore(store.engine)
    w = _worker(url, t, "--fault-kill-after-writes", "2")
    try:
        pub = _publish_paced(t, s)
        w.wait_for(r"^fault: SIGKILL", 30)
        w.proc.wait(10)
        assert w.proc.returncode == -9
        w = _worker(url, t)
        pub.join(30)
        wait_until(lambda: mon.count_readings() >= len(s), 30, "every reading stored")
        time.sleep(0.3)
    finally:
        assert w.stop() == 0
        drop_session(f"test-{t}")
    check_exactly_once(store, s)
    # the batch written before the kill came back and was recognised, not stored again
    assert mon.dead_letter_counts().get("duplicate", 0) > 0
    store.close()


def test_stream_helper_is_in_time_order_per_sensor():
    s = make_stream(5, 4, start_ms=0)
    for sid in set(s.sensors):
        ts = [int(x) for u, x in zip(s.sensors, s.ts, strict=True) if u == sid]
        assert ts == sorted(ts) and len(set(ts)) == 4
    assert np.all(np.diff(s.ts) > 0)


@pytest.mark.postgres
def test_mqtt_worker_sigkilled_during_an_alarm_continues_it_after_restart(mosquitto, tmp_path):
    if not engine_available():
        pytest.skip("no warning engine in this build")
    store = city_store("postgresql", tmp_path, 10)
    url = db_url(store)
    t = tag()
    first, second = low_pressure_streams(10, 4, int(time.time() * 1000) - 3_600_000)
    mon = MonitoringStore(store.engine)
    w = _worker(url, t)
    try:
        _publish_paced(t, first).join(30)
        wait_until(lambda: ("pressure_low", "water:J004") in open_alarm_keys(store), 20,
                   "the low-pressure alarm opened")
        w.kill()
        w = _worker(url, t)
        _publish_paced(t, second).join(30)
        wait_until(lambda: mon.count_readings() >= len(first) + len(second), 20, "every reading stored")
        time.sleep(0.3)
    finally:
        assert w.stop() == 0
        drop_session(f"test-{t}")
    n = open_alarm_keys(store).count(("pressure_low", "water:J004"))
    assert n == 1, (f"{n} open pressure_low alarms on water:J004 after the worker restart: the warning "
                    "stage must rebuild its alarm book from the stored alarm events (AlarmBook.restore)")
    check_alarms_not_duplicated(store)
    store.close()
