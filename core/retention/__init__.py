"""Retention: what the platform keeps and for how long (see :mod:`core.retention.jobs`)."""
