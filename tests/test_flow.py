"""The Prefect flow runs the same sync as the engine, with per-file tasks (temporary server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import SAMPLE_DOCS

pytestmark = pytest.mark.prefect


@pytest.fixture
def prefect_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("prefect")
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return home


def test_flow_syncs_with_per_file_tasks_and_reports_failures(
    tmp_path: Path, prefect_home: Path
) -> None:
    from headwater.flows.sync import sync_flow

    docs = tmp_path / "docs"
    for rel in ("it/security-faq.txt", "handbook/welcome.md"):
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DOCS / rel, docs / rel)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n not really a pdf")
    config = tmp_path / "headwater.toml"
    config.write_text('[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n')

    report = sync_flow(str(config))
    assert report["files"]["added"] == 2
    assert report["files"]["failed"] == 1
    assert report["failures"][0]["path"] == "docs:broken.pdf"
    assert report["chunks"]["embedded"] > 0

    again = sync_flow(str(config))
    assert again["chunks"] == {"embedded": 0, "written": 0, "deleted": 0}
    assert again["files"]["unchanged"] == 2

    names = _task_run_names()
    assert {"load broken.pdf", "load it/security-faq.txt", "load handbook/welcome.md"} <= names


def _task_run_names() -> set[str]:
    import asyncio

    from prefect import get_client

    async def read() -> set[str]:
        async with get_client() as client:
            # Prefect 3.8.8's client sends nulls that this server build rejects (422);
            # send a complete filter body.
            response = await client._client.post(
                "/task_runs/filter", json={"task_runs": {}, "limit": 200, "offset": 0}
            )
            response.raise_for_status()
            return {r["name"] for r in response.json()}

    return asyncio.run(read())
