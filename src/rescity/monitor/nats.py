"""NATS JetStream ingestion, partitioned by sensor so workers scale out.

Layout (:class:`Layout`): readings travel on subjects ``<prefix>.p<k>.<network>``
(``rescity.p3.water``) where ``k = crc32(sensor id) % P`` (:func:`partition_of`: stable
across processes, machines and Python versions, unlike ``hash``). One stream
(``RESCITY``) holds the subjects of all ``P`` partitions on disk; each partition has one
durable pull consumer (``RESCITY_p<k>``) read by one :class:`NatsWorker`. Every reading
of a sensor goes through the same worker, in order, so the per-sensor state of the
validator and the warning engine stays in one process.

Messages: the payload is a gateway batch (``{"sensor": [...], "ts": [...], "value":
[...]}``, see :mod:`rescity.monitor.decode`) whose sensors all fall in partition ``k``.
A message forwarded from MQTT by :class:`MqttNatsBridge` may instead carry its MQTT
topic in the header ``Rescity-Topic`` and the MQTT payload unchanged; the worker then
decodes it exactly as the MQTT ingestor would (malformed messages become dead letters in
the worker, with their reason). Every message carries ``Nats-Msg-Id`` (a hash of subject
and payload) so a publisher that retries after a crash does not store a message twice
within the stream's duplicate window.

Exactly-once effect: a worker fetches a batch, hands it to :meth:`Pipeline.ingest
<rescity.monitor.pipeline.Pipeline.ingest>` in one call (store write included) and only
then acknowledges each message of it (``AckPolicy.EXPLICIT``). A worker killed before
the acknowledgements must get that batch again *before* anything newer, or the
validator would reject its readings as out of order: so a starting worker that finds
unacknowledged deliveries on its consumer recreates the consumer at the ack floor
(first unacknowledged stream sequence) instead of waiting ``ack_wait_s`` for a
redelivery that would come after newer messages. (``AckPolicy.ALL`` is not used: the
acknowledgement of a newer batch would silently acknowledge an older one that was never
stored.) The idempotent readings store and the validator seeded from it turn the copies
into ``duplicate`` dead letters. Unlike an offline MQTT session, the stream keeps
everything published while workers are down (bounded by ``max_age_s``/``max_bytes``).
One partition has exactly one worker at a time.

``P`` is fixed for a deployment: changing it moves sensors between partitions; drain the
stream (all consumers caught up) and restart every worker after the change.

URL from ``RESCITY_NATS_URL`` (default ``nats://127.0.0.1:4222``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
import numpy as np
from nats.js import api

from .decode import BATCH_SUFFIX, TOPIC_PREFIX, Decoder, gateway_payload
from .mqtt import (
    BatchReport,
    MqttConsumer,
    SensorListCache,
    account,
    decode_messages,
    wall_clock_ms,
)
from .pipeline import Pipeline

__all__ = [
    "DEFAULT_URL",
    "ENV_URL",
    "HDR_TOPIC",
    "Layout",
    "MqttNatsBridge",
    "NatsPublisher",
    "NatsWorker",
    "delete_stream",
    "ensure_consumer",
    "ensure_stream",
    "nats_url",
    "partition_of",
    "partitions_of",
]

DEFAULT_URL = "nats://127.0.0.1:4222"
ENV_URL = "RESCITY_NATS_URL"
HDR_TOPIC = "Rescity-Topic"
HDR_MSG_ID = "Nats-Msg-Id"

log = logging.getLogger(__name__)


def nats_url(url: str | None = None) -> str:
    """``url``, else ``$RESCITY_NATS_URL``, else :data:`DEFAULT_URL`."""
    return url or os.environ.get(ENV_URL) or DEFAULT_URL


def partition_of(key: str, partitions: int) -> int:
    """The partition of a sensor id (CRC-32 of its UTF-8 bytes modulo ``partitions``)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def partitions_of(keys: Iterable[str], partitions: int) -> np.ndarray:
    """:func:`partition_of` for many keys (int32 array)."""
    crc = zlib.crc32
    return np.fromiter((crc(k.encode("utf-8")) % partitions for k in keys), dtype=np.int32)


def _token(network: str) -> str:
    """A network name as one subject token (no '.', wildcards or spaces)."""
    t = "".join("_" if c in ".*> \t\r\n" else c for c in network)
    return t or "_"


@dataclass(frozen=True)
class Layout:
    """Stream name, subject prefix and partition count of a deployment."""

    partitions: int = 4
    stream: str = "RESCITY"
    prefix: str = TOPIC_PREFIX

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {self.partitions}")
        if not self.stream or any(c in self.stream for c in ".*> \t"):
            raise ValueError(f"stream name {self.stream!r} must be non-empty without '.', '*', '>', spaces")
        if not self.prefix or any(c in self.prefix for c in "*> \t"):
            raise ValueError(f"subject prefix {self.prefix!r} must be non-empty without wildcards")

    def check(self, k: int) -> int:
        if not 0 <= k < self.partitions:
            raise ValueError(f"partition {k} outside 0..{self.partitions - 1}")
        return k

    def subject(self, k: int, network: str) -> str:
        return f"{self.prefix}.p{k}.{_token(network)}"

    def filter(self, k: int) -> str:
        """The subjects of partition ``k``."""
        return f"{self.prefix}.p{k}.*"

    def durable(self, k: int) -> str:
        """The durable consumer of partition ``k``."""
        return f"{self.stream}_p{k}"

    @property
    def subjects(self) -> list[str]:
        return [self.filter(k) for k in range(self.partitions)]


# -- stream and consumers --------------------------------------------------------------------------
async def ensure_stream(js: Any, layout: Layout, *, max_age_s: float = 7 * 86_400,
                        max_bytes: int = -1, duplicate_window_s: float = 120.0,
                        storage: api.StorageType = api.StorageType.FILE) -> api.StreamInfo:
    """Create the stream, or add the partitions' subjects it lacks (never removes any)."""
    try:
        info = await js.stream_info(layout.stream)
    except nats.js.errors.NotFoundError:
        cfg = api.StreamConfig(name=layout.stream, subjects=layout.subjects,
                               retention=api.RetentionPolicy.LIMITS, storage=storage,
                               max_age=max_age_s, max_bytes=max_bytes,
                               duplicate_window=duplicate_window_s,
                               description="ResCity readings, partitioned by sensor")
        try:
            return await js.add_stream(cfg)
        except nats.js.errors.BadRequestError:  # created meanwhile by another process
            info = await js.stream_info(layout.stream)
    have = list(info.config.subjects or [])
    missing = [s for s in layout.subjects if s not in have]
    if missing:
        cfg = info.config
        cfg.subjects = have + missing
        info = await js.update_stream(cfg)
    return info


async def ensure_consumer(js: Any, layout: Layout, k: int, *, ack_wait_s: float = 30.0,
                          max_ack_pending: int = 200_000,
                          start_seq: int | None = None) -> api.ConsumerInfo:
    """The durable pull consumer of partition ``k``, created when missing: from
    ``start_seq`` if given, else from the first message the stream holds."""
    durable = layout.durable(layout.check(k))
    try:
        return await js.consumer_info(layout.stream, durable)
    except nats.js.errors.NotFoundError:
        pass
    where: dict[str, Any] = {"deliver_policy": api.DeliverPolicy.ALL}
    if start_seq is not None:
        where = {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": start_seq}
    cfg = api.ConsumerConfig(durable_name=durable, name=durable, filter_subject=layout.filter(k),
                             ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait_s,
                             max_ack_pending=max_ack_pending, max_deliver=-1,
                             description=f"ResCity ingestion, partition {k}", **where)
    try:
        return await js.add_consumer(layout.stream, cfg)
    except nats.js.errors.BadRequestError:  # created meanwhile
        return await js.consumer_info(layout.stream, durable)


async def delete_stream(stream: str, url: str | None = None) -> bool:
    """Delete a stream and its consumers (False if it did not exist)."""
    nc = await nats.connect(nats_url(url), connect_timeout=5, max_reconnect_attempts=0)
    try:
        return bool(await nc.jetstream().delete_stream(stream))
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()


async def _log_error(e: Exception) -> None:
    log.warning("nats: %s: %s", type(e).__name__, e)


async def _connect(url: str | None, name: str) -> Any:
    """Connect (failing fast if the server is not there), then reconnect forever."""
    u = nats_url(url)
    parts = urlsplit(u if "://" in u else f"nats://{u}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:  # nats-py retries a first connection forever when reconnecting is allowed
        _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        w.close()
    except (TimeoutError, OSError) as e:
        raise ConnectionError(f"cannot connect to NATS at {u}: {e}") from e
    try:
        return await nats.connect(u, name=name, connect_timeout=5, allow_reconnect=True,
                                  max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                  error_cb=_log_error)
    except (TimeoutError, OSError, nats.errors.NoServersError) as e:
        raise ConnectionError(f"cannot connect to NATS at {u}: {e}") from e


def _msg_id(subject: str, payload: bytes) -> str:
    h = hashlib.blake2b(subject.encode(), digest_size=16)
    h.update(b"\0")
    h.update(payload)
    return h.hexdigest()


# -- publishing -------------------------------------------------------------------------------------
@dataclass
class NatsPublisher:
    """Puts readings on the partition subjects and waits for JetStream's acknowledgements.

    ``window``: at most that many messages await their acknowledgement at a time.
    """

    layout: Layout = field(default_factory=Layout)
    url: str | None = None
    window: int = 2_000
    nc: Any = None
    js: Any = None
    published: int = 0
    duplicates: int = 0

    async def connect(self, *, create_stream: bool = True) -> NatsPublisher:
        self.nc = await _connect(self.url, "rescity-publisher")
        self.js = self.nc.jetstream(publish_async_max_pending=max(self.window, 1))
        if create_stream:
            await ensure_stream(self.js, self.layout)
        return self

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=5)
            await self.nc.close()
            self.nc = None

    async def __aenter__(self) -> NatsPublisher:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def publish_raw(self, subject: str, payload: bytes,
                          headers: dict[str, str] | None = None) -> asyncio.Future[Any]:
        """Publish one message (``Nats-Msg-Id`` added); returns the future of its ack."""
        hdr = dict(headers or {})
        hdr.setdefault(HDR_MSG_ID, _msg_id(subject, payload))
        fut: asyncio.Future[Any] = await self.js.publish_async(subject, payload, headers=hdr)
        return fut

    async def _settle(self, futs: list[asyncio.Future[Any]]) -> None:
        acks = await asyncio.gather(*futs)
        for a in acks:
            self.published += 1
            if getattr(a, "duplicate", False):
                self.duplicates += 1
        futs.clear()

    async def publish_readings(self, sensors: Sequence[str], ts_ms: Sequence[int] | np.ndarray,
                               values: Sequence[float] | np.ndarray, network: str | Sequence[str],
                               *, batch_size: int = 1_000) -> int:
        """Readings as gateway batches of up to ``batch_size``, one (partition, network)
        per message; returns when JetStream acknowledged every message (their count)."""
        n = len(sensors)
        nets = [network] * n if isinstance(network, str) else list(network)
        if len(nets) != n:
            raise ValueError(f"{len(nets)} networks for {n} readings")
        ks = partitions_of(sensors, self.layout.partitions).tolist()
        groups: dict[tuple[int, str], list[int]] = {}
        for i, (k, net) in enumerate(zip(ks, nets, strict=True)):
            groups.setdefault((k, net), []).append(i)
        ts_l = np.asarray(ts_ms).tolist()
        v_l = np.asarray(values).tolist()
        futs: list[asyncio.Future[Any]] = []
        sent = 0
        for (k, net), idx in groups.items():
            subject = self.layout.subject(k, net)
            for a in range(0, len(idx), batch_size):
                part = idx[a:a + batch_size]
                payload = gateway_payload([sensors[i] for i in part], [ts_l[i] for i in part],
                                          [v_l[i] for i in part])
                futs.append(await self.publish_raw(subject, payload))
                sent += 1
                if len(futs) >= self.window:
                    await self._settle(futs)
        await self._settle(futs)
        return sent

    def route(self, topic: str, payload: bytes) -> list[tuple[str, bytes, dict[str, str]]]:
        """How :class:`MqttNatsBridge` forwards one MQTT message: (subject, payload, headers).

        A single sensor's message goes unchanged to its sensor's partition; a gateway
        batch is split by partition (same keys, lists sliced); anything else (a bad topic,
        an unreadable batch) goes unchanged to the partition of its topic, where the worker
        turns it into a dead letter.
        """
        P = self.layout.partitions
        hdr = {HDR_TOPIC: topic}
        parts = topic.split("/")
        net = parts[1] if len(parts) == 3 and parts[0] == TOPIC_PREFIX else "_"
        if len(parts) == 3 and parts[0] == TOPIC_PREFIX and parts[2] and parts[2] != BATCH_SUFFIX:
            return [(self.layout.subject(partition_of(parts[2], P), net), payload, hdr)]
        if len(parts) == 3 and parts[0] == TOPIC_PREFIX and parts[2] == BATCH_SUFFIX:
            split = _split_gateway(payload, P)
            if split is not None:
                return [(self.layout.subject(k, net), body, hdr) for k, body in split]
        return [(self.layout.subject(partition_of(topic, P), net), payload, hdr)]


def _split_gateway(payload: bytes, P: int) -> list[tuple[int, bytes]] | None:
    """A gateway batch split by the partition of each sensor (None if it is not a
    well-formed batch: then it travels whole and the worker writes the dead letter)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("sensor"), list):
        return None
    sensors = doc["sensor"]
    if not all(isinstance(s, str) for s in sensors):
        return None
    n = len(sensors)
    cols = [key for key in ("ts", "value", "dt") if isinstance(doc.get(key), list)]
    if "value" not in cols or any(len(doc[c]) != n for c in cols):
        return None
    ks = partitions_of(sensors, P)
    if n and bool((ks == ks[0]).all()):
        return [(int(ks[0]), payload)]
    out = []
    for k in np.unique(ks).tolist():
        idx = np.flatnonzero(ks == k).tolist()
        sub = dict(doc)
        for c in ["sensor", *cols]:
            sub[c] = [doc[c][i] for i in idx]
        out.append((int(k), json.dumps(sub, separators=(",", ":")).encode()))
    return out


# -- consuming --------------------------------------------------------------------------------------
class NatsWorker:
    """Ingests partition ``k``: fetch a batch from the durable consumer, one
    :meth:`Pipeline.ingest` call, then acknowledge (see the module docstring).

    ``batch``: messages per fetch; ``max_wait_ms``: how long to keep fetching to fill a
    batch; ``now``: the validation clock (ms UTC).
    """

    def __init__(self, pipeline: Pipeline, partition: int, layout: Layout | None = None, *,
                 url: str | None = None, batch: int = 1_000, max_wait_ms: int = 50,
                 ack_wait_s: float = 30.0, now: Callable[[], int] = wall_clock_ms,
                 on_batch: Callable[[BatchReport], None] | None = None) -> None:
        self.layout = layout or Layout()
        self.partition = self.layout.check(partition)
        self.pipeline = pipeline
        self.url = url
        self.batch = batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.ack_wait_s = ack_wait_s
        self.now = now
        self.on_batch = on_batch
        self.source = f"nats:p{partition}"
        self.decoder = Decoder(pipeline.registry, self.source)
        self.cache = SensorListCache(pipeline.registry)
        self.totals = {"messages": 0, "readings": 0, "accepted": 0, "stored": 0, "dead": 0,
                       "transitions": 0, "batches": 0, "redelivered": 0, "replays": 0}
        self.nc: Any = None
        self.sub: Any = None

    async def start(self) -> NatsWorker:
        self.nc = await _connect(self.url, f"rescity-worker-p{self.partition}")
        js = self.nc.jetstream()
        await ensure_stream(js, self.layout)
        k = self.partition
        info = await ensure_consumer(js, self.layout, k, ack_wait_s=self.ack_wait_s)
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        delivered = info.delivered.stream_seq if info.delivered else 0
        if (info.num_ack_pending or 0) > 0 or (delivered or 0) > (floor or 0):
            # a previous worker died holding a batch: replay from the first unacknowledged
            # message, in order, now (not after ack_wait, behind newer messages)
            await js.delete_consumer(self.layout.stream, self.layout.durable(k))
            await ensure_consumer(js, self.layout, k, ack_wait_s=self.ack_wait_s,
                                  start_seq=(floor or 0) + 1)
            self.totals["replays"] += 1
        self.sub = await js.pull_subscribe_bind(durable=self.layout.durable(self.partition),
                                                stream=self.layout.stream)
        return self

    async def close(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)  # the last acknowledgement
            await self.nc.close()
            self.nc = None

    async def __aenter__(self) -> NatsWorker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _fetch(self) -> list[Any]:
        try:
            msgs: list[Any] = await self.sub.fetch(self.batch, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        deadline = time.monotonic() + self.max_wait_s
        while len(msgs) < self.batch:
            left = deadline - time.monotonic()
            if left <= 0.001:
                break
            try:
                msgs.extend(await self.sub.fetch(self.batch - len(msgs), timeout=left))
            except (TimeoutError, nats.errors.TimeoutError):
                break
        return msgs

    def _topic(self, msg: Any) -> str:
        hdr = msg.headers
        if hdr and HDR_TOPIC in hdr:
            return str(hdr[HDR_TOPIC])
        return f"{TOPIC_PREFIX}/{msg.subject.rsplit('.', 1)[-1]}/{BATCH_SUFFIX}"

    def _ingest(self, msgs: list[Any]) -> None:
        now = int(self.now())
        decoded = decode_messages(self.decoder, ((self._topic(m), m.data) for m in msgs), now, self.cache)
        res = self.pipeline.ingest(decoded, now, source=self.source)
        account(self.totals, len(msgs), decoded, res)
        self.totals["redelivered"] += sum(1 for m in msgs if m.metadata.num_delivered > 1)
        if self.on_batch is not None:
            self.on_batch(BatchReport(len(msgs), decoded, res, now, time.time_ns()))

    async def run_once(self) -> int:
        """One fetch -> ingest -> acknowledge cycle; the number of messages handled."""
        msgs = await self._fetch()
        if not msgs:
            return 0
        # the store write runs off the event loop so NATS keeps being served meanwhile
        await asyncio.to_thread(self._ingest, msgs)
        for m in msgs:
            await m.ack()
        return len(msgs)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Fetch, ingest, acknowledge until ``stop`` is set."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.run_once()
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)


# -- bridge -----------------------------------------------------------------------------------------
class MqttNatsBridge:
    """MQTT (persistent session, manual acks) -> JetStream partition subjects.

    A batch of MQTT messages is routed (:meth:`NatsPublisher.route`), published, and
    acknowledged on MQTT only after JetStream acknowledged every part; a crash in between
    makes the broker redeliver and ``Nats-Msg-Id`` lets JetStream drop the copies. The
    NATS client runs on an asyncio loop in a helper thread; :meth:`run` drives MQTT in
    the calling thread.
    """

    def __init__(self, layout: Layout | None = None, *, client_id: str = "rescity-bridge",
                 mqtt_url: str | None = None, nats_url: str | None = None,
                 topics: Sequence[str] = (f"{TOPIC_PREFIX}/#",), max_messages: int = 10_000,
                 max_wait_ms: int = 50, session_expiry_s: int = 86_400) -> None:
        self.publisher = NatsPublisher(layout or Layout(), nats_url)
        self.consumer = MqttConsumer(client_id, self._handle, url=mqtt_url, topics=topics,
                                     max_messages=max_messages, max_wait_ms=max_wait_ms,
                                     session_expiry_s=session_expiry_s)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="nats-bridge", daemon=True)
        self.totals = {"mqtt_messages": 0, "nats_messages": 0, "batches": 0}

    def _call(self, coro: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> MqttNatsBridge:
        self._thread.start()
        self._call(self.publisher.connect())
        self.consumer.start()
        return self

    async def _forward(self, routed: list[tuple[str, bytes, dict[str, str]]]) -> None:
        futs = [await self.publisher.publish_raw(s, p, h) for s, p, h in routed]
        await self.publisher._settle(futs)

    def _handle(self, msgs: list[Any]) -> None:
        routed = [r for m in msgs for r in self.publisher.route(m.topic, m.payload)]
        self._call(self._forward(routed))
        self.totals["mqtt_messages"] += len(msgs)
        self.totals["nats_messages"] += len(routed)
        self.totals["batches"] += 1

    def run(self, stop: threading.Event | None = None) -> None:
        self.consumer.run(stop)

    def close(self) -> None:
        try:
            self.consumer.close()
            self._call(self.publisher.close(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
