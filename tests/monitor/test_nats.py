"""NATS JetStream ingestion against the real server: partitioning by sensor, end to end
into both stores, bad messages through the MQTT bridge into dead letters, and worker
processes SIGKILLed mid-stream losing nothing and counting nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import zlib
from collections.abc import Iterator

import pytest

from rescity.monitor.decode import gateway_payload
from rescity.monitor.mqtt import MqttPublisher, drop_session
from rescity.monitor.nats import (
    HDR_TOPIC,
    Layout,
    MqttNatsBridge,
    NatsPublisher,
    NatsWorker,
    delete_stream,
    partition_of,
    partitions_of,
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
    require_nats,
    sensor_ids,
    tag,
    wait_until,
)

NOW = 1_763_780_400_000  # 2025-11-22T03:00:00Z


@pytest.fixture
def layout() -> Iterator[Layout]:
    """A stream and subject prefix of this test only (2 partitions), deleted after."""
    require_nats()
    t = tag()
    lay = Layout(partitions=2, stream=f"RESCITY_T{t}", prefix=f"rescity_t{t}")
    yield lay
    asyncio.run(delete_stream(lay.stream))


def test_partition_of_is_crc32_of_the_id_and_spreads_sensors():
    ids = [f"water.n{i}.pressure" for i in range(4000)]
    ks = partitions_of(ids, 8)
    assert ks.tolist() == [zlib.crc32(s.encode()) % 8 for s in ids]
    assert partition_of("PT-J000", 4) == zlib.crc32(b"PT-J000") % 4 == 3  # fixed forever
    counts = [int((ks == k).sum()) for k in range(8)]
    assert min(counts) > 400 and max(counts) < 600


def test_route_sends_each_reading_to_its_sensors_partition():
    pub = NatsPublisher(Layout(partitions=4, stream="X", prefix="rc"))
    ids = sensor_ids(30)
    routed = pub.route("rescity/water/_batch", gateway_payload(ids, [1] * 30, [2.0] * 30))
    seen = []
    for subject, body, hdr in routed:
        k = int(subject.split(".")[1][1:])
        doc = json.loads(body)
        assert subject.endswith(".water") and hdr[HDR_TOPIC] == "rescity/water/_batch"
        assert all(partition_of(s, 4) == k for s in doc["sensor"])
        assert len(doc["ts"]) == len(doc["value"]) == len(doc["sensor"])
        seen += doc["sensor"]
    assert sorted(seen) == ids and len(routed) == len({partition_of(s, 4) for s in ids})
    [(subject, body, _)] = pub.route("rescity/water/PT-J007", b'{"ts":1,"value":2}')
    assert subject == f"rc.p{partition_of('PT-J007', 4)}.water" and body == b'{"ts":1,"value":2}'
    [(subject, body, _)] = pub.route("rescity/water/_batch", b"garbage")  # the worker dead-letters it
    assert body == b"garbage"


async def _drain(workers: list[NatsWorker], done, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise AssertionError("workers did not ingest everything in time")
        for w in workers:
            await w.run_once()


@pytest.mark.parametrize("backend", backend_params())
def test_nats_end_to_end_each_partition_worker_sees_only_its_sensors(backend, tmp_path, layout):
    store = city_store(backend, tmp_path, 20)
    mon = MonitoringStore(store.engine)
    reg = SensorRegistry.from_sensors(store.get_sensors())
    s = make_stream(20, 25, start_ms=int(time.time() * 1000) - 3_600_000)
    seen: dict[int, set[str]] = {0: set(), 1: set()}

    async def scenario() -> None:
        async with NatsPublisher(layout) as pub:
            await pub.publish_readings(s.sensors, s.ts, s.values, "water", batch_size=40)
            assert pub.published > 0 and pub.duplicates == 0
            # the same messages again (a publisher retrying): JetStream drops the copies
            await pub.publish_readings(s.sensors, s.ts, s.values, "water", batch_size=40)
            assert pub.duplicates == pub.published // 2
        workers = []
        for k in (0, 1):
            def note(rep, k=k):
                seen[k].update(reg.ids[i] for i in rep.decoded.batch.sensor.tolist())
            workers.append(await NatsWorker(Pipeline.build(reg, sink=mon), k, layout,
                                            on_batch=note).start())
        try:
            await _drain(workers, lambda: mon.count_readings() >= len(s))
        finally:
            for w in workers:
                await w.close()

    asyncio.run(scenario())
    check_exactly_once(store, s)
    assert mon.dead_letter_counts() == {}
    for k in (0, 1):
        assert seen[k] and all(partition_of(sid, 2) == k for sid in seen[k])
    store.close()


@contextlib.contextmanager
def _bridge(layout: Layout, t: str) -> Iterator[MqttNatsBridge]:
    br = MqttNatsBridge(layout, client_id=f"test-bridge-{t}", topics=[f"rescity/{t}/#"])
    br.start()
    stop = threading.Event()
    th = threading.Thread(target=br.run, args=(stop,), daemon=True)
    th.start()
    try:
        yield br
    finally:
        stop.set()
        th.join(10)
        br.close()
        drop_session(f"test-bridge-{t}")


@pytest.mark.parametrize("backend", backend_params())
def test_bad_messages_through_the_mqtt_bridge_become_dead_letters_with_reasons(backend, tmp_path, layout):
    require_mqtt()
    store = city_store(backend, tmp_path, 10)
    mon = MonitoringStore(store.engine)
    reg = SensorRegistry.from_sensors(store.get_sensors())
    t = tag()
    top = f"rescity/{t}"
    bad = [
        (f"{top}/PT-J000/extra", b'{"ts": 1, "value": 1}', "malformed"),
        (f"{top}/PT-J001", b"hello\x00", "malformed"),
        (f"{top}/_batch", b'{"sensor": ["PT-J001"], "ts": [1]}', "malformed"),
        (f"{top}/NOPE", json.dumps({"ts": NOW - 1000, "value": 1}).encode(), "unknown_sensor"),
        (f"{top}/PT-J003", json.dumps({"ts": NOW - 1000, "value": "abc"}).encode(), "not_numeric"),
        (f"{top}/PT-J004", b'{"ts": %d, "value": NaN}' % (NOW - 1000), "not_finite"),
        (f"{top}/PT-J005", json.dumps({"ts": NOW - 1000, "value": 500.0}).encode(), "out_of_range"),
        (f"{top}/PT-J006", json.dumps({"ts": NOW + 3_600_000, "value": 40.0}).encode(), "future"),
        (f"{top}/PT-J007", json.dumps({"ts": NOW - 30 * 86_400_000, "value": 40.0}).encode(), "too_old"),
    ]
    ids = sensor_ids(10)
    good = gateway_payload(ids + ["GHOST"], [NOW - 5000] * 11, [41.0] * 11)  # spans both partitions

    async def scenario() -> None:
        workers = [await NatsWorker(Pipeline.build(reg, sink=mon), k, layout, now=lambda: NOW).start()
                   for k in (0, 1)]
        try:
            with _bridge(layout, t), MqttPublisher() as pub:
                pub.publish(f"{top}/_batch", good)
                for topic, payload, _ in bad:
                    pub.publish(topic, payload)
                # then duplicate and out of order, after the good batch is stored
                pub.flush()
                await _drain(workers, lambda: mon.count_readings() >= 10)
                pub.publish(f"{top}/PT-J008", json.dumps({"ts": NOW - 5000, "value": 41.0}).encode())
                pub.publish(f"{top}/PT-J009", json.dumps({"ts": NOW - 6000, "value": 41.0}).encode())
                pub.flush()
                await _drain(workers, lambda: sum(mon.dead_letter_counts().values()) >= len(bad) + 3)
        finally:
            for w in workers:
                await w.close()

    asyncio.run(scenario())
    expected: dict[str, int] = {}
    for *_, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    expected["unknown_sensor"] += 1
    expected["duplicate"] = expected["out_of_order"] = 1
    assert mon.dead_letter_counts() == expected
    assert mon.count_readings() == 10
    assert {d["source"] for d in mon.dead_letters(limit=100)} <= {"nats:p0", "nats:p1"}
    store.close()


# -- worker processes, killed --------------------------------------------------------------------
def _publish_paced(layout: Layout, s, *, chunk: int = 100, pause_s: float = 0.05) -> threading.Thread:
    """Publish ``s`` in time order from a thread, ``chunk`` readings (gateway batches of 25)
    at a time with a pause between."""

    def run() -> None:
        async def go() -> None:
            async with NatsPublisher(layout) as pub:
                for a in range(0, len(s), chunk):
                    b = a + chunk
                    await pub.publish_readings(s.sensors[a:b], s.ts[a:b], s.values[a:b], "water",
                                               batch_size=25)
                    await asyncio.sleep(pause_s)

        asyncio.run(go())

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def _worker(url: str, layout: Layout, k: int, *extra: str) -> WorkerProcess:
    w = WorkerProcess("nats", "--db", url, "--partition", str(k), "--partitions", str(layout.partitions),
                      "--stream", layout.stream, "--prefix", layout.prefix, "--batch", "20",
                      "--max-wait-ms", "20", "--progress-s", "0", *extra)
    return w


def _ready(*ws: WorkerProcess) -> list[str]:
    return [w.wait_for(r"^ready .*replays=(\d+)", 60).group(1) for w in ws]


@pytest.mark.postgres
def test_nats_worker_sigkilled_mid_stream_loses_nothing_and_counts_nothing_twice(tmp_path, layout):
    store = city_store("postgresql", tmp_path, 40)
    url = db_url(store)
    mon = MonitoringStore(store.engine)
    s = make_stream(40, 40, start_ms=int(time.time() * 1000) - 3_600_000, low=(3, 7, 11))
    # the stream and consumers first, so the workers create nothing concurrently
    w0, w1 = _worker(url, layout, 0), _worker(url, layout, 1)
    try:
        _ready(w0, w1)
        pub = _publish_paced(layout, s)
        wait_until(lambda: mon.count_readings() > len(s) // 3, 20, "a third of the stream stored")
        w0.kill()
        stored_at_kill = mon.count_readings()
        time.sleep(0.3)
        w0 = _worker(url, layout, 0)
        _ready(w0)
        pub.join(30)
        wait_until(lambda: mon.count_readings() >= len(s), 30, "every reading stored")
        time.sleep(0.3)
    finally:
        assert w0.stop() == 0 and w1.stop() == 0
    assert stored_at_kill < len(s), "the kill came after the stream: nothing was tested"
    check_exactly_once(store, s)
    store.close()


@pytest.mark.postgres
def test_nats_worker_killed_between_store_write_and_ack_replays_that_batch_first(tmp_path, layout):
    store = city_store("postgresql", tmp_path, 40)
    url = db_url(store)
    mon = MonitoringStore(store.engine)
    s = make_stream(40, 25, start_ms=int(time.time() * 1000) - 3_600_000, low=(5,))
    w0 = _worker(url, layout, 0, "--fault-kill-after-writes", "2")
    w1 = _worker(url, layout, 1)
    try:
        _ready(w0, w1)
        pub = _publish_paced(layout, s)
        w0.wait_for(r"^fault: SIGKILL", 30)
        w0.proc.wait(10)
        assert w0.proc.returncode == -9
        w0 = _worker(url, layout, 0)
        assert _ready(w0) == ["1"]  # found the unacknowledged batch and replays it first
        pub.join(30)
        wait_until(lambda: mon.count_readings() >= len(s), 30, "every reading stored")
        time.sleep(0.3)
    finally:
        assert w0.stop() == 0 and w1.stop() == 0
    check_exactly_once(store, s)
    assert mon.dead_letter_counts().get("duplicate", 0) > 0
    store.close()


@pytest.mark.postgres
def test_nats_worker_sigkilled_during_an_alarm_continues_it_after_restart(tmp_path, layout):
    if not engine_available():
        pytest.skip("no warning engine in this build")
    store = city_store("postgresql", tmp_path, 10)
    url = db_url(store)
    first, second = low_pressure_streams(10, 4, int(time.time() * 1000) - 3_600_000)
    k = partition_of("PT-J004", layout.partitions)
    mon = MonitoringStore(store.engine)
    ws = {j: _worker(url, layout, j) for j in range(layout.partitions)}
    try:
        _ready(*ws.values())
        _publish_paced(layout, first).join(30)
        wait_until(lambda: ("pressure_low", "water:J004") in open_alarm_keys(store), 20,
                   "the low-pressure alarm opened")
        ws[k].kill()
        ws[k] = _worker(url, layout, k)
        _ready(ws[k])
        _publish_paced(layout, second).join(30)
        wait_until(lambda: mon.count_readings() >= len(first) + len(second), 20, "every reading stored")
        time.sleep(0.3)
    finally:
        assert all(w.stop() == 0 for w in ws.values())
    n = open_alarm_keys(store).count(("pressure_low", "water:J004"))
    assert n == 1, (f"{n} open pressure_low alarms on water:J004 after the worker restart: the warning "
                    "stage must rebuild its alarm book from the stored alarm events (AlarmBook.restore)")
    check_alarms_not_duplicated(store)
    store.close()
