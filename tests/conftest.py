"""Project-wide test configuration. The fixtures themselves live in core.testing (the ``fealty`` pytest plugin)."""

from __future__ import annotations

import os

# Tests never read the developer's environment: set before the app is imported anywhere.
for name in list(os.environ):
    if name.startswith("FEALTY_") and not name.startswith("FEALTY_TEST_"):
        del os.environ[name]
os.environ.setdefault("FEALTY_LOG_LEVEL", "WARNING")

#: The moto server (S3, SES, SNS) and redis-server fixtures, for every test that asks for them.
pytest_plugins = ["tests.moto_server", "tests.redis_server"]
