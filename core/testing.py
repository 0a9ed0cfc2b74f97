"""pytest fixtures for Fealty and for plugin authors (registered as the ``fealty`` pytest plugin)."""

from __future__ import annotations
