"""Run localstripe on a loopback port: ``python localstripe_server.py PORT [STATE_FILE]``.

localstripe's own command listens on every interface and pickles its whole store to ``/tmp/localstripe.pickle`` after
every write (one file shared by every instance on the machine). Here it listens on 127.0.0.1 only and keeps its store
in memory; given a state file it saves the store there when it stops cleanly (SIGTERM) and loads it when it starts,
so a test can take "Stripe" down and bring the same Stripe back.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    port = int(sys.argv[1])
    state = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    resources.Store.try_load_from_disk = lambda self: None  # type: ignore[method-assign]
    if state is not None and state.exists():
        dict.update(resources.store, pickle.loads(state.read_bytes()))  # our own file

    async def save(app: Any) -> None:
        if state is not None:
            state.write_bytes(pickle.dumps(dict(resources.store), protocol=pickle.HIGHEST_PROTOCOL))

    server.app.on_shutdown.append(save)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
