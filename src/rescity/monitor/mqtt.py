"""MQTT ingestion with an exactly-once *effect* over at-least-once delivery.

Sensors and gateways publish on ``rescity/<network>/<sensor-id>`` (one reading or a
list of readings of that sensor) and ``rescity/<network>/_batch`` (a gateway's columnar
batch); the formats are in :mod:`rescity.monitor.decode`.

:class:`MqttIngestor` subscribes with QoS 1 on a *persistent session* (MQTT 5,
``clean_start=False``, a fixed client id, a session expiry) and acknowledges by hand
(paho ``manual_ack=True``). It collects messages for up to ``max_wait_ms`` or
``max_messages``, decodes them together, hands them to :meth:`Pipeline.ingest
<rescity.monitor.pipeline.Pipeline.ingest>` in **one** call (readings and dead letters
are written to the store there), and only **then** acknowledges them, in the order they
arrived. If the process dies before the acknowledgements leave, the broker redelivers
the batch to the same session when the worker comes back; the readings store ignores
what it already holds (primary key ``(sensor, ts)``) and the validator, seeded from the
store, rejects the copies as duplicates. So no accepted reading is lost and none is
counted twice.

Things the broker decides and no client can change (measured on Mosquitto 2.0 here):

* a client that does not announce a larger *Receive Maximum* gets at most
  ``max_inflight_messages`` (default 20) unacknowledged messages, which would cap a batch
  at 20 messages; the ingestor announces 65,535;
* while the ingestor is **offline**, Mosquitto queues at most ``max_queued_messages``
  (default **1,000**) messages for its session and drops the rest; production brokers
  need ``max_queued_messages`` raised (or 0) and ``max_queued_bytes`` set, or the
  NATS JetStream path (:mod:`rescity.monitor.nats`), which keeps the stream on disk;
* while it is online but slower than the publishers, unacknowledged messages pile up
  in flight; past about 55,000 per session (measured, Receive Maximum 65,535) plus the
  1,000 queued, Mosquitto drops QoS 1 messages too: it never slows a publisher down.
  An ingestor must keep up on average (batches bound the unacknowledged window to
  ``max_messages`` plus what arrives during one batch).

Publishing: :class:`MqttPublisher` keeps at most ``window`` QoS 1 messages
unacknowledged (paho fails beyond 65,535 in flight, and its own queue costs O(n) per
acknowledgement), driven from the calling thread. :func:`publish_readings` sends one
reading per message, :func:`publish_gateway_batches` gateway batches.

The broker URL comes from ``RESCITY_MQTT_URL`` (default ``mqtt://127.0.0.1:1883``;
``mqtts://`` for TLS; ``user:password@`` for credentials).
"""

from __future__ import annotations

import collections
import json
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .batch import ReadingBatch
from .decode import BATCH_SUFFIX, TOPIC_PREFIX, Decoded, Decoder, gateway_payload
from .pipeline import IngestResult, Pipeline
from .registry import SensorRegistry
from .validate import DeadLetter

__all__ = [
    "DEFAULT_URL",
    "ENV_URL",
    "TOPIC_FILTER",
    "BatchReport",
    "MqttConsumer",
    "MqttError",
    "MqttIngestor",
    "MqttPublisher",
    "SensorListCache",
    "decode_messages",
    "drop_session",
    "mqtt_url",
    "publish_gateway_batches",
    "publish_readings",
    "wall_clock_ms",
]

_loads: Callable[[bytes | bytearray | str], Any] = json.loads
try:  # about 2.4x faster than json on gateway batches; anything it refuses (NaN, bad
    # UTF-8, huge numbers) falls back to the Decoder, which uses json: same results
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - optional
    pass

DEFAULT_URL = "mqtt://127.0.0.1:1883"
ENV_URL = "RESCITY_MQTT_URL"
TOPIC_FILTER = f"{TOPIC_PREFIX}/#"
MAX_IN_FLIGHT = 65_535  # MQTT packet identifiers are 16 bit


class MqttError(RuntimeError):
    """The broker could not be reached, refused us, or the connection failed."""


def wall_clock_ms() -> int:
    """The wall clock in milliseconds since the epoch (UTC): the default ``now``."""
    return time.time_ns() // 1_000_000


def mqtt_url(url: str | None = None) -> str:
    """``url``, else ``$RESCITY_MQTT_URL``, else :data:`DEFAULT_URL`."""
    return url or os.environ.get(ENV_URL) or DEFAULT_URL


@dataclass(frozen=True)
class _Broker:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> _Broker:
        u = urlsplit(url if "://" in url else f"mqtt://{url}")
        scheme = u.scheme.lower()
        if scheme not in ("mqtt", "tcp", "mqtts", "ssl", "tls"):
            raise ValueError(f"MQTT URL {url!r}: scheme must be mqtt:// or mqtts://, got {u.scheme!r}")
        tls = scheme in ("mqtts", "ssl", "tls")
        return cls(u.hostname or "127.0.0.1", u.port or (8883 if tls else 1883), tls,
                   unquote(u.username) if u.username else None,
                   unquote(u.password) if u.password else None)

    def configure(self, client: mqtt.Client) -> None:
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)


def _connect_sync(client: mqtt.Client, broker: _Broker, timeout_s: float, **kwargs: Any) -> None:
    """Connect and pump the client in this thread until CONNACK (raises MqttError)."""
    try:
        client.connect(broker.host, broker.port, keepalive=60, **kwargs)
    except OSError as e:
        raise MqttError(f"cannot connect to the MQTT broker {broker.host}:{broker.port}: {e}") from e
    deadline = time.monotonic() + timeout_s
    while not client.is_connected():
        rc = client.loop(0.05)
        if rc != mqtt.MQTT_ERR_SUCCESS and not client.is_connected():
            raise MqttError(f"MQTT broker {broker.host}:{broker.port} closed the connection "
                            f"({mqtt.error_string(rc)}); refused?")
        if time.monotonic() > deadline:
            raise MqttError(f"no CONNACK from the MQTT broker {broker.host}:{broker.port} "
                            f"within {timeout_s} s")


# -- decoding many messages at once -------------------------------------------------------------
class SensorListCache:
    """The sensor indices of the id lists gateways send again and again.

    A gateway reports the same sensors in every batch; looking 1,000 freshly parsed ids
    up in a dict of 100,000 costs about 0.3-0.5 us each (cache misses), hashing the
    list as a tuple and finding it here about 0.05 us. Holds at most ``max_ids`` ids
    (default twice the registry), then starts over.
    """

    def __init__(self, registry: SensorRegistry, max_ids: int | None = None, min_len: int = 16) -> None:
        self.registry = registry
        self.max_ids = max_ids or max(100_000, 2 * len(registry))
        self.min_len = min_len
        self._d: dict[tuple[str, ...], np.ndarray] = {}
        self._ids = 0

    def lookup(self, sensors: list[str]) -> np.ndarray:
        """Indices of ``sensors`` (-1 where unknown); do not modify the result."""
        if len(sensors) < self.min_len:
            return self.registry.lookup(sensors)
        key = tuple(sensors)
        got = self._d.get(key)
        if got is None:
            got = self.registry.lookup(sensors)
            got.flags.writeable = False  # shared by every batch of this sensor list
            if self._ids + len(key) > self.max_ids:
                self._d.clear()
                self._ids = 0
            self._d[key] = got
            self._ids += len(key)
        return got


def decode_messages(decoder: Decoder, messages: Iterable[tuple[str, bytes]], now_ms: int,
                    cache: SensorListCache | None = None) -> Decoded:
    """Decode many ``(topic, payload)`` messages into one :class:`Decoded`.

    Single readings (``{"ts": .., "value": ..}`` on ``rescity/<network>/<sensor>``) are
    gathered and decoded in one :meth:`Decoder.rows` call; well-formed gateway batches of
    plain numbers are decoded with array operations (sensor lists looked up through
    ``cache``); everything else (lists, malformed messages, batches with unknown sensors
    or text values) goes through :class:`Decoder`, so the dead letters are exactly the
    ones decoding message by message gives.
    """
    sids: list[str] = []
    tss: list[Any] = []
    vals: list[Any] = []
    parts: list[ReadingBatch] = []
    dead: list[DeadLetter] = []
    for topic, payload in messages:
        p = topic.split("/")
        if len(p) == 3 and p[0] == TOPIC_PREFIX and p[2]:
            try:
                doc = _loads(payload)
            except ValueError:  # not JSON, not UTF-8: Decoder.message writes the dead letter
                doc = None
            if p[2] == BATCH_SUFFIX:
                d = _gateway_fast(decoder, doc, now_ms, cache) if type(doc) is dict else None
                if d is not None:
                    parts.append(d.batch)
                    dead.extend(d.dead)
                    continue
            elif type(doc) is dict and "ts" in doc and "value" in doc:
                sids.append(p[2])
                tss.append(doc["ts"])
                vals.append(doc["value"])
                continue
        d = decoder.message(topic, payload, now_ms)
        if len(d.batch):
            parts.append(d.batch)
        dead.extend(d.dead)
    if sids:
        d = decoder.rows(sids, tss, vals, now_ms)
        parts.append(d.batch)
        dead.extend(d.dead)
    return Decoded(ReadingBatch.concat(parts), [_storable(d) for d in dead])


_NUMBER = {int, float}


def _gateway_fast(decoder: Decoder, doc: dict[str, Any], now_ms: int,
                  cache: SensorListCache | None) -> Decoded | None:
    """A well-formed gateway batch of plain numbers, decoded with whole-array operations
    (type checks with ``map(type, ...)``, ``t0`` + ``dt`` in NumPy); None for anything
    else, which then goes through :meth:`Decoder.message` (same results, slower)."""
    sensors, values = doc.get("sensor"), doc.get("value")
    if type(sensors) is not list or type(values) is not list or len(sensors) != len(values):
        return None
    n = len(sensors)
    if not set(map(type, values)) <= _NUMBER or not set(map(type, sensors)) <= {str}:
        return None
    ts = doc.get("ts")
    if ts is not None:
        if type(ts) is not list or len(ts) != n or not set(map(type, ts)) <= {int}:
            return None
        t = np.array(ts, dtype=np.int64)
    else:
        t0, dt = doc.get("t0"), doc.get("dt")
        if type(t0) is not int:
            return None
        if dt is None:
            t = np.full(n, t0, dtype=np.int64)
        elif type(dt) is list and len(dt) == n and set(map(type, dt)) <= {int}:
            t = np.array(dt, dtype=np.int64) + t0
        else:
            return None
    v = np.array(values, dtype=np.float64)
    if cache is not None:
        idx = cache.lookup(sensors)
        if n and int(idx.min()) >= 0:
            return Decoded(ReadingBatch(idx, t, v), [])
    return decoder.columns(sensors, t, v, now_ms)


def _clean(text: str | None) -> str | None:
    return text.replace("\x00", "\ufffd") if text is not None and "\x00" in text else text


def _storable(d: DeadLetter) -> DeadLetter:
    """A dead letter PostgreSQL can store: text columns cannot hold NUL, and a message
    that makes the store write fail would come back forever (a poison message)."""
    if "\x00" not in f"{d.detail}{d.sensor}{d.value}{d.payload}":
        return d
    return replace(d, detail=_clean(d.detail) or "", sensor=_clean(d.sensor), value=_clean(d.value),
                   payload=_clean(d.payload))


# -- consuming ---------------------------------------------------------------------------------
class MqttConsumer:
    """A QoS 1 subscriber on a persistent MQTT 5 session that hands *batches* of messages
    to ``handler`` and acknowledges them only after ``handler`` returned.

    Single-threaded: :meth:`run` drives the network loop and the handler in the calling
    thread (no thread hand-off, no lock, acknowledgements go out in arrival order). If
    ``handler`` raises, nothing of the batch is acknowledged, the connection is closed
    and the exception propagates: the broker redelivers the batch to the next session.
    If the connection drops, the messages not yet handled are discarded (the broker
    redelivers them) and the consumer reconnects with back-off.
    """

    def __init__(self, client_id: str, handler: Callable[[list[mqtt.MQTTMessage]], None], *,
                 url: str | None = None, topics: Sequence[str] = (TOPIC_FILTER,),
                 max_messages: int = 10_000, max_wait_ms: int = 50,
                 session_expiry_s: int = 86_400, receive_maximum: int = MAX_IN_FLIGHT,
                 clean_start: bool = False, connect_timeout_s: float = 10.0) -> None:
        if not client_id:
            raise ValueError("a persistent session needs a fixed, non-empty client id")
        if not 1 <= receive_maximum <= MAX_IN_FLIGHT:
            raise ValueError(f"receive_maximum must be 1..{MAX_IN_FLIGHT}, got {receive_maximum}")
        self.client_id = client_id
        self.handler = handler
        self.url = mqtt_url(url)
        self.broker = _Broker.parse(self.url)
        self.topics = tuple(topics)
        self.max_messages = max_messages
        self.max_wait_s = max_wait_ms / 1000.0
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.clean_start = clean_start
        self.connect_timeout_s = connect_timeout_s
        self.stats = {"messages": 0, "batches": 0, "acked": 0, "reconnects": 0, "discarded": 0}
        self._inbox: list[mqtt.MQTTMessage] = []
        self._subscribed = False
        self._sub_mid: int | None = None
        self._error: str | None = None
        self.session_present = False
        self.client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5, manual_ack=True)
        self.broker.configure(c)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        return c

    def _connect_properties(self) -> Properties:
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = self.session_expiry_s
        p.ReceiveMaximum = self.receive_maximum
        return p

    # paho callbacks (run inside client.loop(), i.e. in our thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._error = f"the broker refused the connection: {reason}"
            return
        self.session_present = bool(getattr(flags, "session_present", False))
        opts = SubscribeOptions(qos=1)
        _, self._sub_mid = client.subscribe([(t, opts) for t in self.topics])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        if mid != self._sub_mid:
            return
        bad = [str(r) for r in reasons if r.is_failure]
        if bad:
            self._error = f"the broker refused the subscription to {self.topics}: {', '.join(bad)}"
            return
        self._subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.append(msg)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._subscribed = False

    # life cycle
    def start(self) -> None:
        """Connect, resume (or create) the session and subscribe; returns when the broker
        confirmed the subscription (raises :class:`MqttError`)."""
        self._subscribed = False
        self._error = None
        _connect_sync(self.client, self.broker, self.connect_timeout_s,
                      clean_start=self.clean_start, properties=self._connect_properties())
        deadline = time.monotonic() + self.connect_timeout_s
        while not self._subscribed:
            if self._error:
                raise MqttError(self._error)
            rc = self.client.loop(0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise MqttError(f"connection lost while subscribing: {mqtt.error_string(rc)}")
            if time.monotonic() > deadline:
                raise MqttError(f"no SUBACK within {self.connect_timeout_s} s")

    def close(self) -> None:
        """Disconnect (the session stays on the broker until its expiry)."""
        if self.client.is_connected():
            self.client.disconnect()
            self.client.loop(0.05)

    def _pump(self, timeout: float, room: int) -> int:
        """Read what the socket has, up to ``room`` more packets (waiting up to
        ``timeout`` for the first)."""
        c = self.client
        rc = c.loop(timeout)  # select + one packet + keep-alive
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return int(rc)
        # drain the socket without a select() per packet (the socket is non-blocking)
        for _ in range(room):
            n = len(self._inbox)
            rc = c.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return int(rc)
            if len(self._inbox) == n:
                break
        return mqtt.MQTT_ERR_SUCCESS

    def _reconnect(self, stop: threading.Event) -> None:
        self.stats["discarded"] += len(self._inbox)
        self._inbox.clear()  # the broker redelivers what we did not acknowledge
        delay = 0.1
        while not stop.is_set():
            self.stats["reconnects"] += 1
            try:
                self.client = self._new_client()
                self.start()
                return
            except MqttError:
                stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _flush(self, batch: list[mqtt.MQTTMessage]) -> None:
        try:
            self.handler(batch)
        except BaseException:
            # nothing acknowledged: the broker redelivers the batch to the next session
            try:
                self.client.disconnect()
            except Exception:  # noqa: BLE001 - the handler's error is the one to report
                pass
            raise
        ack = self.client.ack
        for m in batch:
            if m.qos:
                ack(m.mid, m.qos)
        self.stats["batches"] += 1
        self.stats["acked"] += len(batch)

    def run(self, stop: threading.Event | None = None, *, until: Callable[[], bool] | None = None) -> None:
        """Consume until ``stop`` is set (or ``until()`` is true); what was received is
        handled and acknowledged before returning. Call :meth:`start` first."""
        stop = stop or threading.Event()
        batch: list[mqtt.MQTTMessage] = []
        deadline = 0.0
        while True:
            if stop.is_set() or (until is not None and until()):
                break
            wait = 0.2 if not batch else max(0.0, deadline - time.monotonic())
            rc = self._pump(wait, max(self.max_messages - len(batch) - 1, 0))
            if self._inbox:
                if not batch:
                    deadline = time.monotonic() + self.max_wait_s
                self.stats["messages"] += len(self._inbox)
                batch.extend(self._inbox)
                self._inbox.clear()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self.stats["discarded"] += len(batch)
                batch = []
                self._reconnect(stop)
                continue
            if batch and (len(batch) >= self.max_messages or time.monotonic() >= deadline):
                self._flush(batch)
                batch = []
        if batch:
            self._flush(batch)
        # let the acknowledgements leave before the caller disconnects
        end = time.monotonic() + 1.0
        while self.client.want_write() and time.monotonic() < end:
            self.client.loop(0.01)


@dataclass
class BatchReport:
    """What one batch of messages did (handed to ``on_batch``)."""

    messages: int
    decoded: Decoded
    result: IngestResult
    now_ms: int
    done_ns: int  # time.time_ns() after the pipeline returned


def account(totals: dict[str, int], n_messages: int, decoded: Decoded, res: IngestResult) -> None:
    """Add one ingested batch to a worker's running totals."""
    totals["messages"] += n_messages
    totals["readings"] += len(decoded.batch) + sum(1 for d in decoded.dead if d.sensor is not None)
    totals["accepted"] += res.accepted
    totals["stored"] += res.stored
    totals["dead"] += len(res.dead)
    totals["transitions"] += len(res.transitions)
    totals["batches"] += 1


class MqttIngestor:
    """MQTT -> :class:`~rescity.monitor.pipeline.Pipeline`, acknowledging after the store
    write (see the module docstring).

    ``now``: the clock validation uses (milliseconds UTC; injectable for replays and
    tests). ``on_batch``: called after each batch, before its acknowledgement.
    """

    def __init__(self, pipeline: Pipeline, *, client_id: str = "rescity-ingest",
                 url: str | None = None, topics: Sequence[str] = (TOPIC_FILTER,),
                 now: Callable[[], int] = wall_clock_ms, max_messages: int = 10_000,
                 max_wait_ms: int = 50, session_expiry_s: int = 86_400,
                 on_batch: Callable[[BatchReport], None] | None = None,
                 source: str = "mqtt") -> None:
        self.pipeline = pipeline
        self.decoder = Decoder(pipeline.registry, source)
        self.cache = SensorListCache(pipeline.registry)
        self.now = now
        self.on_batch = on_batch
        self.source = source
        self.totals = {"messages": 0, "readings": 0, "accepted": 0, "stored": 0, "dead": 0,
                       "transitions": 0, "batches": 0}
        self.consumer = MqttConsumer(client_id, self._handle, url=url, topics=topics,
                                     max_messages=max_messages, max_wait_ms=max_wait_ms,
                                     session_expiry_s=session_expiry_s)

    def _handle(self, msgs: list[mqtt.MQTTMessage]) -> None:
        now = int(self.now())
        decoded = decode_messages(self.decoder, ((m.topic, bytes(m.payload)) for m in msgs), now, self.cache)
        res = self.pipeline.ingest(decoded, now, source=self.source)
        account(self.totals, len(msgs), decoded, res)
        if self.on_batch is not None:
            self.on_batch(BatchReport(len(msgs), decoded, res, now, time.time_ns()))

    def start(self) -> MqttIngestor:
        self.consumer.start()
        return self

    def run(self, stop: threading.Event | None = None, *, until: Callable[[], bool] | None = None) -> None:
        self.consumer.run(stop, until=until)

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> MqttIngestor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def drop_session(client_id: str, url: str | None = None) -> None:
    """Delete a persistent session (and its queued messages) from the broker."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    broker = _Broker.parse(mqtt_url(url))
    broker.configure(c)
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = 0
    _connect_sync(c, broker, 10.0, clean_start=True, properties=p)
    c.disconnect()
    c.loop(0.05)


# -- publishing -------------------------------------------------------------------------------
@dataclass
class MqttPublisher:
    """A publisher that keeps at most ``window`` QoS 1 messages unacknowledged.

    Driven from the calling thread (no network thread): :meth:`publish` returns once the
    message is written or queued in the window; :meth:`flush` waits for every
    acknowledgement. MQTT 3.1.1 by default (as most devices speak). Not thread-safe.
    """

    url: str | None = None
    client_id: str = ""
    qos: int = 1
    window: int = 1_000
    protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311
    connect_timeout_s: float = 10.0
    published: int = 0
    _pending: collections.deque[mqtt.MQTTMessageInfo] = field(default_factory=collections.deque)

    def __post_init__(self) -> None:
        if not 1 <= self.window < MAX_IN_FLIGHT:
            raise ValueError(f"window must be 1..{MAX_IN_FLIGHT - 1}, got {self.window}")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, got {self.qos}")
        self.client_id = self.client_id or f"rescity-pub-{uuid.uuid4().hex[:12]}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=self.protocol)
        self.client.max_inflight_messages_set(0)  # we keep the window; paho's queue is O(n) per ack
        self.client.max_queued_messages_set(0)
        self.broker = _Broker.parse(mqtt_url(self.url))
        self.broker.configure(self.client)
        _connect_sync(self.client, self.broker, self.connect_timeout_s)

    def _service(self, wait: float) -> None:
        rc = self.client.loop(wait)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"publisher lost the connection: {mqtt.error_string(rc)} "
                            f"({len(self._pending)} messages unacknowledged: publish them again)")

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve the connection (acknowledgements, keep-alive) for up to ``timeout_s``."""
        self._service(timeout_s)

    def publish(self, topic: str, payload: bytes | str) -> None:
        c = self.client
        if self.qos == 0:
            info = c.publish(topic, payload, 0)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise MqttError(f"publish on {topic!r} failed: {mqtt.error_string(info.rc)}")
            self.published += 1
            if c.want_write() or self.published % 512 == 0:
                self._service(0)
            return
        pending = self._pending
        while len(pending) >= self.window:
            while pending and pending[0].is_published():
                pending.popleft()
            if len(pending) >= self.window:
                self._service(0.01)
        info = c.publish(topic, payload, 1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish on {topic!r} failed: {mqtt.error_string(info.rc)}")
        pending.append(info)
        self.published += 1
        if self.published % 256 == 0:
            self._service(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every message is acknowledged (QoS 1) or written (QoS 0)."""
        deadline = time.monotonic() + timeout_s
        pending = self._pending
        while pending or self.client.want_write():
            while pending and pending[0].is_published():
                pending.popleft()
            if not pending and not self.client.want_write():
                break
            if time.monotonic() > deadline:
                raise MqttError(f"{len(pending)} messages not acknowledged within {timeout_s} s")
            self._service(0.01)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.client.disconnect()
            self.client.loop(0.05)

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_id(sid: str) -> str:
    if not sid or "/" in sid or "+" in sid or "#" in sid:
        raise ValueError(f"sensor id {sid!r} cannot be an MQTT topic level (no '/', '+', '#')")
    return sid


def _networks(network: str | Sequence[str], n: int) -> Sequence[str]:
    if isinstance(network, str):
        return [network] * n
    if len(network) != n:
        raise ValueError(f"{len(network)} networks for {n} readings")
    return network


def publish_readings(pub: MqttPublisher, sensors: Sequence[str], ts_ms: Sequence[int] | np.ndarray,
                     values: Sequence[float] | np.ndarray, network: str | Sequence[str]) -> int:
    """One message per reading on ``rescity/<network>/<sensor>``: ``{"ts": ms, "value": v}``.

    ``network``: one network name for all, or one per reading (e.g. ``registry.network``
    picked by sensor). Returns the number of messages published.
    """
    nets = _networks(network, len(sensors))
    for sid, net, t, v in zip(sensors, nets, np.asarray(ts_ms).tolist(), np.asarray(values).tolist(),
                              strict=True):
        pub.publish(f"{TOPIC_PREFIX}/{net}/{_check_id(sid)}",
                    b'{"ts":%d,"value":%s}' % (t, repr(float(v)).encode()))
    return len(sensors)


def publish_gateway_batches(pub: MqttPublisher, sensors: Sequence[str], ts_ms: Sequence[int] | np.ndarray,
                            values: Sequence[float] | np.ndarray, network: str | Sequence[str], *,
                            batch_size: int = 1_000) -> int:
    """Gateway batches (:func:`~rescity.monitor.decode.gateway_payload`) of up to
    ``batch_size`` readings on ``rescity/<network>/_batch``, one network per message.
    Returns the number of messages published."""
    nets = _networks(network, len(sensors))
    ts_l = np.asarray(ts_ms).tolist()
    v_l = np.asarray(values).tolist()
    by_net: dict[str, list[int]] = {}
    for i, net in enumerate(nets):
        by_net.setdefault(net, []).append(i)
    sent = 0
    for net, idx in by_net.items():
        topic = f"{TOPIC_PREFIX}/{net}/{BATCH_SUFFIX}"
        for a in range(0, len(idx), batch_size):
            part = idx[a:a + batch_size]
            pub.publish(topic, gateway_payload([sensors[i] for i in part], [ts_l[i] for i in part],
                                               [v_l[i] for i in part]))
            sent += 1
    return sent
