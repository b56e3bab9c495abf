"""Ingestion worker processes.

::

    python -m rescity.monitor.worker mqtt   --db URL [--url mqtt://..] [--client-id ID] [--topic rescity/#]
    python -m rescity.monitor.worker nats   --db URL --partition K --partitions P [--url nats://..]
    python -m rescity.monitor.worker bridge --partitions P [--mqtt-url ..] [--nats-url ..]

This module runs a worker; it does not compose one. The pipeline comes from a
*factory* passed in by the service layer (:func:`rescity.service.monitoring.open_worker_pipeline`:
open the store named by ``--db``, else ``$RESCITY_DATABASE_URL``, else the embedded
SQLite file; registry from the stored sensors; the warning engine over the stored city;
the validator seeded with the newest stored readings of every sensor, so redelivered
readings are recognised as duplicates), so dependencies point inward: cli -> service ->
monitor. A worker ingests until SIGTERM or SIGINT; it then handles and acknowledges
what it holds and exits 0. Progress counts go to stdout every ``--progress-s`` seconds,
one line each; the first line is ``ready ...`` once the worker is subscribed.

Every batch is acknowledged only after the store committed its readings, dead letters
and alarm events in one transaction (:meth:`Pipeline.ingest
<rescity.monitor.pipeline.Pipeline.ingest>`).

If ingesting fails (the database is down, say), nothing of the batch is acknowledged;
the worker rebuilds its pipeline from the store and resumes after a back-off, which is
what a restart of the process would do. ``--once-on-error`` exits with status 1 instead
(for a supervisor that restarts it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

from .mqtt import TOPIC_FILTER, BatchReport, MqttIngestor, mqtt_url
from .nats import Layout, MqttNatsBridge, NatsWorker, nats_url
from .pipeline import Pipeline

PipelineFactory = Callable[[str | None, bool], AbstractContextManager[Pipeline]]
"""``factory(db, engine)``: a context manager that opens the store ``db`` (None: the
default), yields the worker's pipeline over it (with the warning engine if ``engine``)
and closes the store on exit. Raises :class:`ValueError` for a bad configuration."""


def tune_gc(gen0: int = 10_000) -> None:
    """Garbage-collector settings for a long-lived ingestion process.

    A worker holds a large heap that lives as long as it does (the city, the registry,
    the engine's arrays and alarm book) and allocates fast (a batch keeps thousands of
    message objects alive until it is acknowledged); with the default settings every
    full collection walks the whole city, and one-reading-per-message ingestion spent
    about 40% of its CPU in the collector. So: collect once, freeze what exists (never
    scanned again) and collect the young generation every ``gen0`` allocations, not 700.
    Call :func:`gc.unfreeze` before building a new pipeline so the old one can be freed.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, *gc.get_threshold()[1:])


class Progress:
    """Prints one line of counts every ``every_s`` seconds (and on demand)."""

    def __init__(self, label: str, totals: dict[str, int], every_s: float,
                 out: Callable[[str], None] | None = None) -> None:
        self.label = label
        self.totals = totals
        self.every_s = every_s
        self.out = out or (lambda s: print(s, flush=True))
        self.t0 = self.last = time.monotonic()
        self.last_readings = 0

    def line(self, what: str = "progress") -> None:
        now = time.monotonic()
        t = self.totals
        rate = (t.get("readings", 0) - self.last_readings) / max(now - self.last, 1e-9)
        counts = " ".join(f"{k}={v}" for k, v in t.items())
        self.out(f"{what} {self.label} {counts} readings_per_s={rate:.0f}")
        self.last, self.last_readings = now, t.get("readings", 0)

    def tick(self, *_: object) -> None:
        if self.every_s > 0 and time.monotonic() - self.last >= self.every_s:
            self.line()


def _fault_hook(n: int | None) -> Callable[[BatchReport], None] | None:
    """Fault injection for the tests: SIGKILL this process right after the ``n``-th
    store write, before the batch is acknowledged."""
    if not n:
        return None
    count = [0]

    def hook(report: BatchReport) -> None:
        if report.result.accepted or report.result.dead:
            count[0] += 1
            if count[0] >= n:
                print(f"fault: SIGKILL after store write {count[0]}, before the ack", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _chain(*hooks: Callable[[BatchReport], None] | None) -> Callable[[BatchReport], None]:
    live = [h for h in hooks if h is not None]

    def call(report: BatchReport) -> None:
        for h in live:
            h(report)

    return call


class ConfigError(Exception):
    """A worker that cannot be built as configured (bad warning models, bad arguments):
    retrying does not help."""


def _supervise(run_once: Callable[[], None], stop: threading.Event, *, once_on_error: bool,
               label: str) -> int:
    """Run ``run_once`` until ``stop``; on an error rebuild and retry with back-off
    (exit 2 on a :class:`ConfigError`, 1 on any error with ``once_on_error``)."""
    delay = 0.5
    while not stop.is_set():
        try:
            run_once()
            return 0
        except ConfigError as e:
            print(f"error {label}: {e}", file=sys.stderr, flush=True)
            return 2
        except Exception as e:  # noqa: BLE001 - report and rebuild from the store
            print(f"error {label}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            if once_on_error:
                return 1
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
    return 0


@contextlib.contextmanager
def _pipeline(factory: PipelineFactory, db: str | None, engine: bool) -> Iterator[Pipeline]:
    """The factory's pipeline; a :class:`ValueError` while building it (SpecError,
    ModelError, a bad URL: the configuration, not the weather) becomes a ConfigError."""
    with contextlib.ExitStack() as stack:
        try:
            pipe = stack.enter_context(factory(db, engine))
        except ValueError as e:
            raise ConfigError(f"cannot build the pipeline: {type(e).__name__}: {e}") from e
        yield pipe


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


# -- mqtt -------------------------------------------------------------------------------------------
def run_mqtt(factory: PipelineFactory, db: str | None = None, *, url: str | None = None, client_id: str = "rescity-ingest",
             topics: Sequence[str] = (TOPIC_FILTER,), max_messages: int = 10_000,
             max_wait_ms: int = 50, session_expiry_s: int = 86_400, engine: bool = True,
             progress_s: float = 5.0, stop: threading.Event | None = None,
             once_on_error: bool = False, fault_kill_after_writes: int | None = None) -> int:
    """The MQTT worker (blocking); returns the exit status."""
    stop = stop or threading.Event()
    label = f"mqtt client_id={client_id}"

    def once() -> None:
        gc.unfreeze()
        with _pipeline(factory, db, engine) as pipe:
            tune_gc()
            totals: dict[str, int] = {}
            progress = Progress(label, totals, progress_s)
            ing = MqttIngestor(pipe, client_id=client_id, url=url, topics=topics,
                               max_messages=max_messages, max_wait_ms=max_wait_ms,
                               session_expiry_s=session_expiry_s,
                               on_batch=_chain(_fault_hook(fault_kill_after_writes), progress.tick))
            progress.totals = ing.totals
            ing.start()
            try:
                print(f"ready {label} url={mqtt_url(url)} topics={','.join(topics)} "
                      f"sensors={len(pipe.registry)} engine={pipe.engine is not None} "
                      f"session_present={ing.consumer.session_present}", flush=True)
                ing.run(stop, until=None)
            finally:
                ing.close()
            progress.line("stopped")

    return _supervise(once, stop, once_on_error=once_on_error, label=label)


# -- nats -------------------------------------------------------------------------------------------
def run_nats(factory: PipelineFactory, db: str | None = None, *, partition: int, layout: Layout | None = None,
             url: str | None = None, batch: int = 1_000, max_wait_ms: int = 50,
             ack_wait_s: float = 30.0, engine: bool = True, progress_s: float = 5.0,
             stop: threading.Event | None = None, once_on_error: bool = False,
             fault_kill_after_writes: int | None = None) -> int:
    """The NATS worker of one partition (blocking); returns the exit status."""
    stop = stop or threading.Event()
    layout = layout or Layout()
    label = f"nats stream={layout.stream} partition={partition}/{layout.partitions}"

    async def main(pipe: Pipeline) -> None:
        totals: dict[str, int] = {}
        progress = Progress(label, totals, progress_s)
        w = NatsWorker(pipe, partition, layout, url=url, batch=batch, max_wait_ms=max_wait_ms,
                       ack_wait_s=ack_wait_s,
                       on_batch=_chain(_fault_hook(fault_kill_after_writes), progress.tick))
        progress.totals = w.totals
        await w.start()
        try:
            print(f"ready {label} url={nats_url(url)} sensors={len(pipe.registry)} "
                  f"engine={pipe.engine is not None} replays={w.totals['replays']}", flush=True)
            while not stop.is_set():
                await w.run_once()
        finally:
            await w.close()
        progress.line("stopped")

    def once() -> None:
        gc.unfreeze()
        with _pipeline(factory, db, engine) as pipe:
            tune_gc()
            asyncio.run(main(pipe))

    return _supervise(once, stop, once_on_error=once_on_error, label=label)


# -- bridge -----------------------------------------------------------------------------------------
def run_bridge(*, layout: Layout | None = None, mqtt: str | None = None, nats: str | None = None,
               client_id: str = "rescity-bridge", topics: Sequence[str] = (TOPIC_FILTER,),
               max_messages: int = 10_000, max_wait_ms: int = 50, session_expiry_s: int = 86_400,
               progress_s: float = 5.0, stop: threading.Event | None = None,
               once_on_error: bool = False) -> int:
    """MQTT -> NATS JetStream bridge (blocking); returns the exit status."""
    stop = stop or threading.Event()
    layout = layout or Layout()
    label = f"bridge client_id={client_id} stream={layout.stream} partitions={layout.partitions}"

    def once() -> None:
        br = MqttNatsBridge(layout, client_id=client_id, mqtt_url=mqtt, nats_url=nats,
                            topics=topics, max_messages=max_messages, max_wait_ms=max_wait_ms,
                            session_expiry_s=session_expiry_s)
        progress = Progress(label, br.totals, progress_s)
        br.start()
        try:
            print(f"ready {label} mqtt={mqtt_url(mqtt)} nats={nats_url(nats)}", flush=True)
            br.run(stop)
        finally:
            br.close()
        progress.line("stopped")

    return _supervise(once, stop, once_on_error=once_on_error, label=label)


# -- command line -----------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rescity.monitor.worker",
                                description="ResCity ingestion workers (MQTT, NATS JetStream, bridge).")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser, db: bool = True) -> None:
        if db:
            sp.add_argument("--db", help="database URL (default $RESCITY_DATABASE_URL or the embedded SQLite file)")
            sp.add_argument("--no-engine", action="store_true", help="validate and store only")
            sp.add_argument("--fault-kill-after-writes", type=int, default=None, help=argparse.SUPPRESS)
        sp.add_argument("--max-wait-ms", type=int, default=50, help="collect a batch for at most this long")
        sp.add_argument("--progress-s", type=float, default=5.0, help="seconds between progress lines (0: none)")
        sp.add_argument("--once-on-error", action="store_true",
                        help="exit 1 on an ingestion error instead of rebuilding and resuming")

    m = sub.add_parser("mqtt", help="MQTT (Mosquitto) -> store and engine")
    common(m)
    m.add_argument("--url", help="broker URL (default $RESCITY_MQTT_URL or mqtt://127.0.0.1:1883)")
    m.add_argument("--client-id", default="rescity-ingest", help="fixed id of the persistent session")
    m.add_argument("--topic", action="append", help=f"topic filter (repeatable; default {TOPIC_FILTER})")
    m.add_argument("--batch-max", type=int, default=10_000, help="messages per batch at most")
    m.add_argument("--session-expiry-s", type=int, default=86_400,
                   help="how long the broker keeps the session while the worker is away")

    def layout_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--partitions", type=int, default=4, help="partition count P of the deployment")
        sp.add_argument("--stream", default="RESCITY", help="JetStream stream name")
        sp.add_argument("--prefix", default="rescity", help="subject prefix")

    n = sub.add_parser("nats", help="NATS JetStream partition -> store and engine")
    common(n)
    layout_args(n)
    n.add_argument("--partition", type=int, required=True, help="the partition k this worker ingests")
    n.add_argument("--url", help="NATS URL (default $RESCITY_NATS_URL or nats://127.0.0.1:4222)")
    n.add_argument("--batch", type=int, default=1_000, help="messages per fetch")
    n.add_argument("--ack-wait-s", type=float, default=30.0, help="redelivery delay of unacknowledged messages")

    b = sub.add_parser("bridge", help="MQTT -> NATS JetStream partition subjects")
    common(b, db=False)
    layout_args(b)
    b.add_argument("--mqtt-url")
    b.add_argument("--nats-url")
    b.add_argument("--client-id", default="rescity-bridge")
    b.add_argument("--topic", action="append")
    b.add_argument("--batch-max", type=int, default=10_000)
    b.add_argument("--session-expiry-s", type=int, default=86_400)
    return p


def main(argv: Sequence[str] | None = None, *, factory: PipelineFactory | None = None) -> int:
    """Run the worker ``argv`` names (see the module docstring); the exit status.

    ``factory`` builds the pipeline of an mqtt or nats worker; the service layer passes
    it (:func:`rescity.service.monitoring.ingest_main`)."""
    args = _parser().parse_args(argv)
    stop = threading.Event()
    _stop_on_signals(stop)
    if args.cmd in ("mqtt", "nats") and factory is None:
        # the monitor layer does not know the store: the service layer composes the
        # pipeline (rescity.service.monitoring.ingest_main, behind `rescity ingest`)
        print(f"error: the {args.cmd} worker needs its pipeline from the service layer: "
              f"run `rescity ingest {args.cmd} ...`", file=sys.stderr)
        return 2
    if args.cmd == "mqtt":
        assert factory is not None
        return run_mqtt(factory, args.db, url=args.url, client_id=args.client_id,
                        topics=tuple(args.topic or [TOPIC_FILTER]), max_messages=args.batch_max,
                        max_wait_ms=args.max_wait_ms, session_expiry_s=args.session_expiry_s,
                        engine=not args.no_engine, progress_s=args.progress_s, stop=stop,
                        once_on_error=args.once_on_error,
                        fault_kill_after_writes=args.fault_kill_after_writes)
    layout = Layout(args.partitions, args.stream, args.prefix)
    if args.cmd == "nats":
        assert factory is not None
        return run_nats(factory, args.db, partition=args.partition, layout=layout, url=args.url,
                        batch=args.batch, max_wait_ms=args.max_wait_ms, ack_wait_s=args.ack_wait_s,
                        engine=not args.no_engine, progress_s=args.progress_s, stop=stop,
                        once_on_error=args.once_on_error,
                        fault_kill_after_writes=args.fault_kill_after_writes)
    return run_bridge(layout=layout, mqtt=args.mqtt_url, nats=args.nats_url, client_id=args.client_id,
                      topics=tuple(args.topic or [TOPIC_FILTER]), max_messages=args.batch_max,
                      max_wait_ms=args.max_wait_ms, session_expiry_s=args.session_expiry_s,
                      progress_s=args.progress_s, stop=stop, once_on_error=args.once_on_error)


if __name__ == "__main__":
    sys.exit(main())
