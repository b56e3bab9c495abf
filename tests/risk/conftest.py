from rescity.store.testing import store, store_backend

__all__ = ["store", "store_backend"]
