"""Persistence of the city model behind one interface.

Two backends, the same schema and behaviour:

* SQLite file (embedded default, ``sqlite:///<cwd>/.rescity/rescity.db``);
* PostgreSQL + PostGIS (production), chosen with ``RESCITY_DATABASE_URL``.

>>> from rescity.store import Store
>>> with Store.open("sqlite://") as store:   # doctest: +SKIP
...     store.save_city(city)
...     store.nearest_assets(24.94, 60.17, k=3, network_type="water")
"""

from .engine import default_url, make_engine, normalise_url
from .store import ConflictError, NotFoundError, Store, StoreError, head_revision

__all__ = [
    "ConflictError",
    "NotFoundError",
    "Store",
    "StoreError",
    "default_url",
    "head_revision",
    "make_engine",
    "normalise_url",
]
