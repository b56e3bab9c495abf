"""Shared by the broker tests (test_mqtt.py, test_nats.py): brokers must be up, a small
water network with pressure sensors in a store, worker subprocesses, streams of readings.

The brokers are real (Mosquitto on 1883, NATS JetStream on 4222, or
``$RESCITY_MQTT_URL``/``$RESCITY_NATS_URL``). If one is down the tests **fail**, unless
``RESCITY_SKIP_BROKERS=1``, which skips them.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from shapely.geometry import Point

from rescity.model import City, Network, NetworkType, Node, Sensor
from rescity.monitor.mqtt import mqtt_url
from rescity.monitor.nats import nats_url
from rescity.store import Store
from rescity.store.monitoring import MonitoringStore
from rescity.store.testing import make_test_store

ENV_SKIP = "RESCITY_SKIP_BROKERS"
NETWORK = "water"  # the store's network (the warning models select on it)


def require_broker(url: str, default_port: int, what: str) -> None:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as e:
        msg = f"{what} at {host}:{port} is unreachable ({e}); start it (make services) or set {ENV_SKIP}=1 to skip"
        if os.environ.get(ENV_SKIP, "").strip().lower() in ("1", "true", "yes"):
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)


def require_mqtt() -> None:
    require_broker(mqtt_url(), 1883, "Mosquitto")


def require_nats() -> None:
    require_broker(nats_url(), 4222, "NATS")


def tag() -> str:
    """A unique token for topics, client ids, streams (parallel test workers never collide)."""
    return uuid.uuid4().hex[:10]


def sensor_ids(n: int) -> list[str]:
    return [f"PT-J{i:03d}" for i in range(n)]


def water_sensors(n: int) -> list[Sensor]:
    return [Sensor(sid, f"{NETWORK}:J{i:03d}", "pressure", Point(24.94 + 0.001 * i, 60.17))
            for i, sid in enumerate(sensor_ids(n))]


def city_store(backend: str, tmp_path: Path, n_sensors: int) -> Store:
    """A fresh store holding a water network of ``n_sensors`` junctions, one pressure
    sensor each (``PT-J000``, ...)."""
    store = make_test_store(backend, tmp_path)
    city = City(name="Ingestby", center=(24.95, 60.17))
    net = Network(NETWORK, NetworkType.WATER)
    for i in range(n_sensors):
        net.add_node(Node(f"J{i:03d}", "junction", Point(24.94 + 0.001 * i, 60.17),
                          attrs={"elevation_m": 10.0}))
    city.add_network(net)
    for sensor in water_sensors(n_sensors):
        city.add_sensor(sensor)
    store.save_city(city)
    return store


def db_url(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


@dataclass
class Stream:
    """Valid readings in time order (every sensor's timestamps increase)."""

    sensors: list[str]
    ts: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.sensors)

    def keys(self) -> set[tuple[str, int]]:
        return set(zip(self.sensors, self.ts.tolist(), strict=True))


def make_stream(n_sensors: int, per_sensor: int, *, start_ms: int, step_ms: int = 20_000,
                low: tuple[int, ...] = ()) -> Stream:
    """``per_sensor`` readings of each sensor, interleaved in time order. Sensors whose
    index is in ``low`` read 8 m (below the 10 m 'orange' low-pressure threshold), the
    others 40-46 m, rising slowly (no warning)."""
    ids = sensor_ids(n_sensors)
    sensors, ts, vals = [], [], []
    for j in range(per_sensor):
        for i in range(n_sensors):
            sensors.append(ids[i])
            ts.append(start_ms + j * step_ms + i * 10)
            vals.append(8.0 if i in low else 40.0 + i % 6 + 0.01 * j)
    return Stream(sensors, np.array(ts, dtype=np.int64), np.array(vals, dtype=float))


def stored_keys(store: Store) -> list[tuple[str, int]]:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return [(r[0], int(r[1])) for r in conn.execute(sa.text("SELECT s.sensor_uid, r.ts_ms FROM reading r JOIN reading_sensor s ON s.id = r.sensor_id"))]


def wait_until(pred: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class WorkerProcess:
    """``rescity ingest ...`` (the CLI) with its output collected line by line."""

    def __init__(self, *args: str) -> None:
        self.args = [sys.executable, "-m", "rescity.cli", "ingest", *args]
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            self.lines.put(line.rstrip())

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            m = rx.search(line)
            if m:
                return m
        raise AssertionError(f"worker never printed /{pattern}/; exit {self.proc.poll()}; output:\n"
                             + "\n".join(self.log[-40:]))

    def kill(self) -> None:
        """SIGKILL: no clean-up, no acknowledgement."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("worker ignored SIGTERM:\n" + "\n".join(self.log[-40:])) from None


def check_exactly_once(store: Store, stream: Stream) -> None:
    """Every valid reading of ``stream`` stored once, nothing else stored, and every
    dead letter of a valid reading is a redelivered copy of a stored one."""
    keys = stored_keys(store)
    assert len(keys) == len(set(keys))
    expected = stream.keys()
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:5]}"
    assert len(keys) == len(expected), f"{len(keys)} stored, {len(expected)} published"
    mon = MonitoringStore(store.engine)
    for d in mon.dead_letters(limit=100_000):
        assert d["reason"] in ("duplicate", "out_of_order"), d
        assert (d["sensor_uid"], d["ts_ms"]) in expected, d


def open_alarm_keys(store: Store) -> list[tuple[str, str]]:
    return [(a["model"], a["asset_uid"]) for a in MonitoringStore(store.engine).alarms()
            if a["state"] in ("pending", "firing")]


def engine_available() -> bool:
    try:
        import rescity.monitor.warnings  # noqa: F401
    except ImportError:
        return False
    return True


def low_pressure_streams(n_sensors: int, low: int, start_ms: int) -> tuple[Stream, Stream]:
    """Two halves of 20 minutes of readings every 20 s; sensor ``low`` reads 8 m
    throughout (pressure_low: orange, fires after 5 minutes), the others 40-46 m."""
    s = make_stream(n_sensors, 60, start_ms=start_ms, low=(low,))
    half = len(s) // 2
    return (Stream(s.sensors[:half], s.ts[:half], s.values[:half]),
            Stream(s.sensors[half:], s.ts[half:], s.values[half:]))


def check_alarms_not_duplicated(store: Store) -> int:
    """At most one open alarm per (model, asset); returns how many alarms there are."""
    mon = MonitoringStore(store.engine)
    alarms = mon.alarms()
    open_keys = [(a["model"], a["asset_uid"]) for a in alarms if a["state"] in ("pending", "firing")]
    dup = sorted({k for k in open_keys if open_keys.count(k) > 1})
    assert not dup, (f"{len(dup)} (model, asset) have several open alarms after a worker restart: {dup}; "
                     "the warning stage must restore its alarm book from the stored alarm events")
    return len(alarms)
