"""The utility plugin's hook implementations: thin, each hands over to the plugin's modules."""

from __future__ import annotations

from typing import Any

from core import CareTrigger, ScheduledJob, hookimpl
from plugins.utility import api, jobs
from plugins.utility.triggers import TRIGGERS


@hookimpl
def fealty_routes() -> list[Any]:
    return api.ROUTES


@hookimpl
def fealty_scheduled_jobs() -> list[ScheduledJob]:
    return [ScheduledJob("outages", jobs.EVERY_SECONDS, jobs.outage_work)]


@hookimpl
def fealty_care_triggers() -> list[CareTrigger]:
    return list(TRIGGERS)
