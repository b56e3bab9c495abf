"""Bulk speed: a city of about 15,000 assets saves and loads in a few seconds."""

from __future__ import annotations

import time

import pytest

from rescity.store import Store

from .citydata import large_city, metres_to_lonlat

SAVE_LIMIT_S = 8.0  # measured here: SQLite ~1.0 s, PostgreSQL ~2 s
LOAD_LIMIT_S = 4.0  # measured here: SQLite ~0.4 s, PostgreSQL ~0.5 s


@pytest.mark.slow
def test_fifteen_thousand_assets(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    city = large_city(15_000)
    n = sum(len(net.nodes) + len(net.links) for net in city.networks.values())
    assert 14_900 <= n <= 15_000

    t0 = time.perf_counter()
    store.save_city(city)
    t_save = time.perf_counter() - t0

    t0 = time.perf_counter()
    loaded = store.load_city()
    t_load = time.perf_counter() - t0
    assert loaded == city
    assert store.info()["assets"] == n

    t0 = time.perf_counter()
    store.add_network(city.networks["bigwater"], replace=True)
    t_replace = time.perf_counter() - t0

    lon, lat = metres_to_lonlat(10.0, 10.0)
    t0 = time.perf_counter()
    for _ in range(20):
        assert len(store.nearest_assets(lon, lat, k=5)) == 5
    t_nearest = (time.perf_counter() - t0) / 20

    with capsys.disabled():
        print(
            f"\n[{store.backend}] {n} assets: save {t_save:.2f} s, load {t_load:.2f} s, "
            f"replace network {t_replace:.2f} s, nearest k=5 {t_nearest * 1000:.1f} ms"
        )
    assert t_save < SAVE_LIMIT_S
    assert t_replace < SAVE_LIMIT_S
    assert t_load < LOAD_LIMIT_S
    assert t_nearest < 0.25
