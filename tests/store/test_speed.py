"""Bulk: a city of about 15,000 assets saves, loads and replaces intact.

Speed is measured in bench/bench_store.py, not asserted here."""

from __future__ import annotations

import pytest

from rescity.store import Store

from .citydata import large_city, metres_to_lonlat


@pytest.mark.slow
def test_fifteen_thousand_assets(store: Store) -> None:
    city = large_city(15_000)
    n = sum(len(net.nodes) + len(net.links) for net in city.networks.values())
    assert 14_900 <= n <= 15_000

    store.save_city(city)
    loaded = store.load_city()
    assert loaded == city
    assert store.info()["assets"] == n
    store.add_network(city.networks["bigwater"], replace=True)
    assert store.load_city() == city
    lon, lat = metres_to_lonlat(10.0, 10.0)
    assert len(store.nearest_assets(lon, lat, k=5)) == 5
