"""Fealty's pytest plugin, opt-in: ``pytest -p fealty_testing`` or ``pytest_plugins = ["fealty_testing"]``.

The fixtures (all named ``fealty_*``) are defined in :mod:`core.testing`; see its docstring. Their dependencies come
with the ``testing`` extra: ``pip install 'fealty[testing]'``.
"""

from __future__ import annotations

from core.testing import *  # noqa: F403  (pytest collects the fixtures from this module's namespace)
