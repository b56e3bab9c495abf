"""Ingestion end to end through Mosquitto, in one run.

Run:  .venv/bin/python bench/bench_ingest.py [--seconds 8] [--sensors 100000] [--db URL] [--quick]
      [--store-only]  (only the runs into --db: validation only, and engine + alarm book,
      whose readings, dead letters and alarm events commit in one transaction per batch)

(a) Gateway batches (1,000 readings per message, the compact ``t0`` form, QoS 1) from a
    publisher process -> Mosquitto -> :class:`rescity.monitor.mqtt.MqttIngestor` in this
    process: decode, validate, warning engine and alarm book (the default catalogue over a
    water network of ``--sensors`` pressure sensors, when the engine is available), then
    the acknowledgement. The sink is the embedded path **without a database** (readings
    are validated and evaluated, not written); ``--db`` adds a run with the readings
    store. Latency is per message, from just before the publisher's ``publish`` call to
    the end of the pipeline call for the batch holding it (validated, evaluated by the
    engine, alarm events produced). Two runs: offered at the goal rate (1 M readings/s)
    and as fast as it goes (the publisher stays at most 200 messages ahead of what was
    processed, so the latency is the latency of a loaded system).
(b) One reading per message (QoS 1) over 10,000 sensor topics: one publisher process
    (a raw-socket MQTT client that writes pre-encoded packets, so that the subscribers
    and not paho's ~5-10,000 messages/s publish path set the pace; up to 40,000
    messages, all may be in flight at once: none dropped), and two subscriber processes on the
    same stream at the same time: a bare paho subscriber (MQTT 5, counts messages,
    automatic acknowledgement) and our ingestor (same pipeline as (a), manual
    acknowledgement after each batch). Messages/s each drained, and the CPU each process
    spent per 1,000 messages (the fairer figure on a shared 2-core machine).

Prints a table; no assertions. Needs Mosquitto on ``$RESCITY_MQTT_URL`` (default
mqtt://127.0.0.1:1883). Numbers depend on everything else running on the machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import threading
import time
import uuid
from typing import Any

import numpy as np

MS = 1_000_000  # ns per ms
BATCH = 1_000


# -- the city of the bench -------------------------------------------------------------------------
def make_pipeline(n_sensors: int, db: str | None = None, engine: bool = True) -> tuple[Any, str]:
    """A water network of ``n_sensors`` junctions with a pressure sensor each, and the
    pipeline over it: the warning stage of the default catalogue if available."""
    from shapely.geometry import Point

    from rescity.model import City, Network, NetworkType, Node, Sensor
    from rescity.monitor.pipeline import Pipeline
    from rescity.monitor.registry import SensorRegistry

    city = City("Benchby", (120.15, 30.25))
    net = Network("water", NetworkType.WATER)
    for i in range(n_sensors):
        net.add_node(Node(f"J{i}", "junction", Point(120.1 + (i % 1000) * 1e-4, 30.2 + (i // 1000) * 1e-4)))
    city.add_network(net)
    for i in range(n_sensors):
        city.add_sensor(Sensor(f"P{i:06d}", f"water:J{i}", "pressure", net.nodes[f"J{i}"].geometry))
    reg = SensorRegistry.from_city(city)
    sink = None
    if db:
        from rescity.store import Store
        from rescity.store.monitoring import MonitoringStore

        store = Store.open(db)
        sink = MonitoringStore(store.engine)
    stage, what = None, "validate only (no engine)"
    if engine:
        try:
            from rescity.monitor.warnings import warning_stage
        except ImportError:
            what = "validate only (no engine available)"
        else:
            stage = warning_stage(reg, city=city)
            what = f"engine ({len(stage.engine.models)} models) + alarm book"
    return Pipeline.build(reg, sink=sink, engine=stage), what


# -- (a) gateway batches ---------------------------------------------------------------------------
def _payloads(n_sensors: int) -> tuple[list[bytes], list[bytes]]:
    """Per slice of 1,000 sensors: the part of the payload after ``{"t0":<ms>`` (normal
    values, and one with 5 sensors at 8 m: a pressure drop)."""
    ids = [f"P{i:06d}" for i in range(n_sensors)]
    normal, drop = [], []
    for a in range(0, n_sensors, BATCH):
        vals = [40.0 + (i % 10) for i in range(a, a + BATCH)]
        body = ',"sensor":' + json.dumps(ids[a:a + BATCH], separators=(",", ":"))
        normal.append((body + ',"value":' + json.dumps(vals, separators=(",", ":")) + "}").encode())
        drop.append((body + ',"value":' + json.dumps([8.0] * 5 + vals[5:], separators=(",", ":")) + "}").encode())
    return normal, drop


def publish_batches(topic: str, n_sensors: int, seconds: float, rate: float, base_ms: int,
                    pub_ns: Any, processed: Any, sent: Any, ready: Any, max_ahead: int) -> None:
    """Publisher process of (a): message ``m`` carries t0 = base + m ms (so the
    subscriber finds ``m`` from the readings' timestamps); ``rate`` messages/s (0: as
    fast as the backlog allows)."""
    from rescity.monitor.mqtt import MqttPublisher

    normal, drop = _payloads(n_sensors)
    slices = len(normal)
    pub = MqttPublisher(window=500)
    ready.wait()
    t0 = time.perf_counter()
    m = 0
    limit = len(pub_ns)
    while m < limit:
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        if rate > 0:
            due = t0 + m / rate
            if now < due:
                time.sleep(min(due - now, 0.002))
                continue
        if m - processed.value > max_ahead:
            pub.poll(0.0005)
            continue
        body = (drop if m % 997 == 500 else normal)[m % slices]
        pub_ns[m] = time.time_ns()
        pub.publish(topic, b'{"t0":%d' % (base_ms + m) + body)
        m += 1
    pub.close()
    sent.value = m


def run_gateway(args: argparse.Namespace, rate_readings: float, label: str, db: str | None = None,
                engine: bool = True, max_ahead: int = 200) -> dict[str, Any]:
    from rescity.monitor.mqtt import MqttIngestor, drop_session
    from rescity.monitor.worker import tune_gc

    gc.unfreeze()
    pipe, what = make_pipeline(args.sensors, db, engine)
    tune_gc()  # what the worker process does
    tag = uuid.uuid4().hex[:8]
    topic = f"rescity/b{tag}/_batch"
    base_ms = time.time_ns() // MS - 60_000
    n_max = int(args.seconds * max(rate_readings, 3e6) / BATCH) + 10
    ctx = mp.get_context("spawn")
    pub_ns = ctx.RawArray("q", n_max)
    processed, sent = ctx.RawValue("q", 0), ctx.RawValue("q", -1)
    ready = ctx.Event()
    lat: list[np.ndarray] = []
    alarm_lat: list[float] = []
    readings = [0]
    first_last = [0, 0]

    def on_batch(rep: Any) -> None:
        ts = rep.decoded.batch.ts
        if not len(ts):
            return
        seq, counts = np.unique(ts - base_ms, return_counts=True)
        sent_at = np.frombuffer(pub_ns, dtype=np.int64)[seq]
        lat.append(np.repeat((rep.done_ns - sent_at) / 1e6, counts))
        for tr in rep.result.transitions:
            alarm_lat.append((rep.done_ns - pub_ns[int(tr.ts_ms) - base_ms]) / 1e6)
        readings[0] += len(ts)
        processed.value = int(seq.max()) + 1
        if not first_last[0]:
            first_last[0] = rep.done_ns
        first_last[1] = rep.done_ns

    cid = f"bench-{tag}"
    ing = MqttIngestor(pipe, client_id=cid, topics=[f"rescity/b{tag}/#"], max_messages=max_ahead,
                       max_wait_ms=10, on_batch=on_batch, session_expiry_s=60)
    ing.start()
    p = ctx.Process(target=publish_batches, args=(topic, args.sensors, args.seconds, rate_readings / BATCH,
                                                  base_ms, pub_ns, processed, sent, ready, max_ahead))
    p.start()
    time.sleep(1.0)  # the publisher has built its payloads and connected
    cpu0 = time.process_time()
    ready.set()
    deadline = time.monotonic() + args.seconds + 30

    def done() -> bool:
        return (sent.value >= 0 and processed.value >= sent.value) or time.monotonic() > deadline

    ing.run(until=done)
    cpu = time.process_time() - cpu0
    ing.close()
    p.join(10)
    drop_session(cid)
    wall = (first_last[1] - first_last[0]) / 1e9 or float("nan")
    all_lat = np.concatenate(lat) if lat else np.array([np.nan])
    return {
        "case": label, "pipeline": what + (" + store" if db else ""),
        "offered": rate_readings, "readings": readings[0], "published": sent.value * BATCH,
        "rate": readings[0] / wall, "p50": float(np.percentile(all_lat, 50)),
        "p99": float(np.percentile(all_lat, 99)), "max": float(all_lat.max()),
        "alarms": len(alarm_lat), "alarm_p99": float(np.percentile(alarm_lat, 99)) if alarm_lat else float("nan"),
        "cpu_us_per_reading": cpu / max(readings[0], 1) * 1e6,
    }


# -- (b) one reading per message -------------------------------------------------------------------
def bare_subscriber(prefix: str, sent: Any, ready: Any, out: Any) -> None:
    """A plain paho subscriber: QoS 1, automatic acknowledgement, counts messages (same
    garbage-collector settings as our worker, so the comparison is about the code)."""
    import paho.mqtt.client as mqtt

    from rescity.monitor.worker import tune_gc

    tune_gc()
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    n = [0, 0, 0]

    def on_message(c: Any, u: Any, m: Any) -> None:
        n[0] += 1
        if n[0] == 1:
            n[1] = time.time_ns()
        n[2] = time.time_ns()

    def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(f"{prefix}/#", qos=1)

    def on_subscribe(*_: Any) -> None:
        ready.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bare-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 65_535
    c.on_message, c.on_connect, c.on_subscribe = on_message, on_connect, on_subscribe
    c.connect("127.0.0.1", 1883, properties=props)
    cpu0 = time.process_time()
    idle = time.monotonic()
    last = 0
    while True:
        c.loop(0.05)
        if n[0] != last:
            last, idle = n[0], time.monotonic()
        if sent.value >= 0 and (n[0] >= sent.value or time.monotonic() - idle > 3):
            break
    out.put({"who": "bare paho", "messages": n[0], "first": n[1], "last": n[2],
             "cpu": time.process_time() - cpu0})
    c.disconnect()


def our_subscriber(prefix: str, n_sensors: int, sent: Any, ready: Any, out: Any) -> None:
    from rescity.monitor.mqtt import MqttIngestor, drop_session
    from rescity.monitor.worker import tune_gc

    pipe, what = make_pipeline(n_sensors)
    tune_gc()  # what the worker process does
    n = [0, 0, 0]

    def on_batch(rep: Any) -> None:
        n[0] += rep.messages
        if not n[1]:
            n[1] = rep.done_ns
        n[2] = rep.done_ns

    cid = f"ours-{uuid.uuid4().hex[:8]}"
    ing = MqttIngestor(pipe, client_id=cid, topics=[f"{prefix}/#"], max_messages=2_000,
                       max_wait_ms=20, on_batch=on_batch, session_expiry_s=60)
    ing.start()
    ready.set()
    cpu0 = time.process_time()
    idle = [time.monotonic(), 0]

    def done() -> bool:
        if n[0] != idle[1]:
            idle[:] = [time.monotonic(), n[0]]
        return sent.value >= 0 and (n[0] >= sent.value or time.monotonic() - idle[0] > 3)

    ing.run(until=done)
    cpu = time.process_time() - cpu0
    ing.close()
    drop_session(cid)
    out.put({"who": f"our ingestor ({what})", "messages": n[0], "first": n[1], "last": n[2],
             "cpu": cpu, "accepted": pipe.totals["accepted"], "dead": pipe.totals["dead"]})


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def raw_publisher(host: str, port: int, prefix: str, n_sensors: int, n_messages: int, base_ms: int,
                  done: Any) -> None:
    """A minimal MQTT 3.1.1 QoS 1 publisher: every PUBLISH packet encoded up front and
    written with one ``sendall``, the PUBACKs read by a thread. Python's paho publishes
    ~5-10,000 QoS 1 messages/s here (it would be the bottleneck); this one lets
    Mosquitto and the subscribers set the pace. Messages rotate over ``n_sensors``
    sensor topics, one reading each."""
    import socket

    topics = [f"{prefix}/P{i:06d}".encode() for i in range(n_sensors)]
    buf = bytearray()
    for k in range(n_messages):
        i = k % n_sensors
        t = topics[i]
        body = len(t).to_bytes(2, "big") + t + ((k % 65_535) + 1).to_bytes(2, "big") + \
            b'{"ts":%d,"value":%d.5}' % (base_ms + k, 40 + i % 7)
        buf += b"\x32" + _varint(len(body)) + body
    cid = f"rawpub-{uuid.uuid4().hex[:8]}".encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    sock = socket.create_connection((host, port))
    sock.sendall(b"\x10" + _varint(len(var)) + var)
    assert sock.recv(4)[:1] == b"\x20", "no CONNACK"
    acks = [0]

    def read() -> None:
        pending = b""
        while acks[0] < n_messages:
            data = sock.recv(65_536)
            if not data:
                return
            pending += data
            acks[0] += len(pending) // 4  # PUBACK: 0x40 0x02 id id
            pending = pending[len(pending) // 4 * 4:]

    th = threading.Thread(target=read, daemon=True)
    th.start()
    sock.sendall(buf)
    th.join(120)
    sock.sendall(b"\xe0\x00")
    sock.close()
    done.value = acks[0]


def run_singles(args: argparse.Namespace) -> list[dict[str, Any]]:
    from urllib.parse import urlsplit

    from rescity.monitor.mqtt import mqtt_url

    ctx = mp.get_context("spawn")
    prefix = f"rescity/s{uuid.uuid4().hex[:8]}"
    sent = ctx.RawValue("q", -1)
    acked = ctx.RawValue("q", -1)
    out = ctx.Queue()
    r1, r2 = ctx.Event(), ctx.Event()
    n_sensors = 10_000
    base_ms = time.time_ns() // MS - 600_000
    # all may be in flight at once: Mosquitto 2.0.11 dropped beyond ~55,000 unacknowledged
    # messages per session here even with Receive Maximum 65,535
    n_messages = int(min(40_000, 5_000 * args.seconds))
    subs = [ctx.Process(target=bare_subscriber, args=(prefix, sent, r1, out)),
            ctx.Process(target=our_subscriber, args=(prefix, n_sensors, sent, r2, out))]
    for s in subs:
        s.start()
    r1.wait(60)
    r2.wait(120)
    u = urlsplit(mqtt_url())
    sent.value = n_messages
    pub = ctx.Process(target=raw_publisher, args=(u.hostname or "127.0.0.1", u.port or 1883, prefix,
                                                  n_sensors, n_messages, base_ms, acked))
    pub.start()
    pub.join(180)
    res = [out.get(timeout=180), out.get(timeout=180)]
    for s in subs:
        s.join(10)
    for r in res:
        wall = (r["last"] - r["first"]) / 1e9
        r["sent"] = sent.value
        r["publisher"] = f"a raw-socket QoS 1 publisher over {n_sensors:,} sensor topics ({acked.value:,} acknowledged)"
        r["rate"] = r["messages"] / wall if wall > 0 else float("nan")
        r["cpu_ms_per_1000"] = r["cpu"] / max(r["messages"], 1) * 1e6
    return sorted(res, key=lambda r: r["who"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--db", help="also run (a) with readings written to this store (sqlite:///... or postgresql://...)")
    ap.add_argument("--quick", action="store_true", help="3 s runs, 20,000 sensors")
    ap.add_argument("--store-only", action="store_true",
                    help="only the runs into --db (validation only, and engine + alarm book)")
    args = ap.parse_args()
    if args.store_only and not args.db:
        ap.error("--store-only needs --db")
    if args.quick:
        args.seconds, args.sensors = 3.0, 20_000
    print(f"bench_ingest: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
          f"{args.sensors:,} sensors, {args.seconds:.0f} s per run\n")
    rows = [] if args.store_only else [
        run_gateway(args, 1e6, "(a) gateway batches, offered 1 M/s"),
        run_gateway(args, 0, "(a) gateway batches, max (<= 200 msgs ahead)"),
        run_gateway(args, 1e6, "(a) gateway batches, offered 1 M/s", engine=False),
        run_gateway(args, 0, "(a) gateway batches, max (<= 200 msgs ahead)", engine=False)]
    if args.db:
        rows.append(run_gateway(args, 0, "(a) gateway batches, max (<= 20 ahead), into the store", args.db,
                                engine=False, max_ahead=20))
        if args.store_only:  # readings, dead letters and alarm events in one transaction per batch
            rows.append(run_gateway(args, 0, "(a) gateway batches, max (<= 20 ahead), into the store",
                                    args.db, engine=True, max_ahead=20))
    print(f"{'case':56} {'pipeline':42} {'readings/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'alarm trs':>9} {'alarm p99':>9} {'CPU us/rdg':>10}")
    for r in rows:
        print(f"{r['case']:56} {r['pipeline']:42} {r['rate']:>11,.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
              f"{r['max']:>8.1f} {r['alarms']:>9} {r['alarm_p99']:>9.1f} {r['cpu_us_per_reading']:>10.2f}")
        if r["readings"] != r["published"]:
            print(f"   !! published {r['published']:,} readings, processed {r['readings']:,}")
    print()
    if args.store_only:
        return
    singles = run_singles(args)
    bare = next(r for r in singles if r["who"] == "bare paho")
    print(f"(b) one reading per message, QoS 1, both subscribers on one stream: {singles[0]['sent']:,} "
          f"messages from {singles[0]['publisher']}")
    print(f"{'subscriber':72} {'received':>9} {'msgs/s':>9} {'vs bare':>8} {'CPU ms/1000':>11}")
    for r in singles:
        print(f"{r['who']:72} {r['messages']:>9,} {r['rate']:>9,.0f} {r['rate'] / bare['rate']:>8.0%} "
              f"{r['cpu_ms_per_1000']:>11.1f}")


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
