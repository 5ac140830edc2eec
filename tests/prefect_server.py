"""A real Prefect server for tests: `prefect server start` on loopback, in a temp home."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Schedule new runs within a second of a deployment appearing, not once a minute.
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
}

CLIENT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # A served deployment looks for due runs every second (default 10).
    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    "DO_NOT_TRACK": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prefect_server(home: Path, timeout: float = 90) -> Iterator[str]:
    """Start a server, yield its API URL once healthy, stop it afterwards."""
    port = free_port()
    env = {**os.environ, **SERVER_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited {proc.returncode}: "
                    + (home / "server.log").read_text()[-3000:]
                )
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after {timeout:.0f}s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def api_post(url: str, path: str, body: dict[str, Any]) -> Any:
    """POST to the API. The 3.8.8 client's filter models send nulls this server rejects,
    so tests send complete bodies by hand."""
    response = httpx.post(f"{url}{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def flow_runs(url: str, deployment_name: str) -> list[dict[str, Any]]:
    """Flow runs of the deployment with this name, oldest first."""
    deployments = api_post(
        url,
        "/deployments/filter",
        {"deployments": {"name": {"any_": [deployment_name]}}, "limit": 10, "offset": 0},
    )
    if not deployments:
        return []
    runs = api_post(
        url,
        "/flow_runs/filter",
        {
            "flow_runs": {"deployment_id": {"any_": [deployments[0]["id"]]}},
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 200,
            "offset": 0,
        },
    )
    return list(runs)


def artifacts(url: str, flow_run_id: str) -> list[dict[str, Any]]:
    return list(
        api_post(
            url,
            "/artifacts/filter",
            {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 50, "offset": 0},
        )
    )


def task_runs(url: str, flow_run_id: str) -> list[dict[str, Any]]:
    return list(
        api_post(
            url,
            "/task_runs/filter",
            {"task_runs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200, "offset": 0},
        )
    )
