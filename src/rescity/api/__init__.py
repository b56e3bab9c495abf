"""The HTTP API (FastAPI): thin routers over :mod:`rescity.service`."""
