"""ASGI entry point for servers: ``uvicorn core.asgi:app``."""

from __future__ import annotations

import gc

from core.app import create_app

app = create_app()

# The server's garbage collector, tuned for a request-serving process (measured in bench/README.md: a quarter of a
# batch request's time went to collections). Everything built at start-up (routes, SQLAlchemy's metadata, plugins)
# lives as long as the process: freezing it keeps every later collection from walking it again. Requests make many
# short-lived objects that reference counting frees; a larger first generation makes collections rarer.
gc.collect()
gc.freeze()
gc.set_threshold(10_000, 20, 20)
