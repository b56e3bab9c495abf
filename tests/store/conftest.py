"""Store tests run on both backends through the ``store`` fixture of the plugin module."""

from rescity.store.testing import store, store_backend

__all__ = ["store", "store_backend"]
