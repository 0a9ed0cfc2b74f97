"""The plugin contract: the ``hookimpl`` marker plugins decorate their hooks with.

The contract is in three modules, in the manner of tox's ``tox.plugin``: :mod:`core.plugin.spec` (every hook a plugin
may implement), :mod:`core.plugin.types` (every type a plugin sees, contexts included) and
:mod:`core.plugin.manager` (discovery, registration, the calls). Plugins import all of it from :mod:`core`.
"""

from __future__ import annotations

import pluggy

#: pluggy's project name: hook names start with ``fealty_``.
PROJECT = "fealty"

#: Marks a plugin's hook implementation (``@hookimpl``; ``@hookimpl(wrapper=True)`` for a wrapper).
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl"]
