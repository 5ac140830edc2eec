"""Deployments built from the config, and `headwater serve`, which serves them.

One deployment per schedule (the whole config's, and each source's own), plus one that
file events trigger: `headwater watch` emits `FILES_CHANGED` with the changed document
ids, and that deployment's trigger turns each event into a run for exactly those files.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from headwater.flows.config import HeadwaterConfig, ScheduleConfig
from headwater.ingest.errors import HeadwaterError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule

FILES_CHANGED = "headwater.files.changed"
"""The event `headwater watch` emits; its payload's `paths` are document ids."""

START_A_SERVER = (
    "start one with `prefect server start --host 127.0.0.1` and "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api` (the UI is then at "
    "http://127.0.0.1:4200), or point PREFECT_API_URL at your Prefect server or Cloud"
)


def resource_id(config_file: str) -> str:
    """The Prefect resource one config's file events are about (stable per config file)."""
    digest = hashlib.blake2b(config_file.encode(), digest_size=8).hexdigest()
    return f"headwater.config.{digest}"


def _schedule(schedule: ScheduleConfig) -> Schedule:
    from prefect.schedules import Cron, Interval

    if schedule.cron is not None:
        return Cron(schedule.cron, timezone=schedule.timezone)
    assert schedule.interval_s is not None
    return Interval(timedelta(seconds=schedule.interval_s), timezone=schedule.timezone)


def _deployment(**kwargs: Any) -> RunnerDeployment:
    from headwater.flows.sync import sync_flow

    # to_deployment is sync-or-async by context; called from sync code it returns the value.
    return cast("RunnerDeployment", sync_flow.to_deployment(**kwargs))


def deployments(config: HeadwaterConfig, config_file: str) -> list[RunnerDeployment]:
    """Every deployment the config asks for; the file-event one is always there."""
    from prefect.events import DeploymentEventTrigger

    name = config.orchestration.name
    base: dict[str, Any] = {"config_path": config_file}
    out: list[RunnerDeployment] = []
    if config.orchestration.schedule:
        out.append(
            _deployment(
                name=f"{name}-all",
                parameters=base,
                schedules=[_schedule(config.orchestration.schedule)],
                description="Sync every configured source.",
            )
        )
    for source in config.sources:
        if source.schedule:
            out.append(
                _deployment(
                    name=f"{name}-source-{source.name}",
                    parameters={**base, "sources": [source.name]},
                    schedules=[_schedule(source.schedule)],
                    description=f"Sync the source {source.name!r}.",
                )
            )
    out.append(
        _deployment(
            name=f"{name}-files-changed",
            parameters=base,
            description="Sync exactly the files a `headwater watch` event names.",
            triggers=[
                DeploymentEventTrigger(
                    name=f"{name}: files changed",
                    expect={FILES_CHANGED},
                    match={"prefect.resource.id": resource_id(config_file)},
                    parameters={**base, "paths": "{{ event.payload.paths }}"},
                )
            ],
        )
    )
    return out


def api_url() -> str | None:
    """The Prefect API this process talks to, if one is configured."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL") or None


def require_api() -> str:
    """PREFECT_API_URL, checked to answer; otherwise an error that says how to get one."""
    url = api_url()
    if not url:
        raise HeadwaterError(f"PREFECT_API_URL is not set: {START_A_SERVER}")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise HeadwaterError(
            f"the Prefect API at {url} does not answer ({problem}); {START_A_SERVER}"
        )
    return url


def serve(config: HeadwaterConfig, config_file: str) -> None:
    """Serve the config's deployments until interrupted; runs happen in this process's
    subprocesses, so each run opens the store and releases it when it ends."""
    from prefect import serve as prefect_serve

    require_api()
    prefect_serve(*deployments(config, config_file), print_starting_message=True)
