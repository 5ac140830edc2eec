"""The Prefect flow runs the same sync as the engine, with per-file tasks (temporary server)."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.ingest.models import FileResult, FileStatus
from headwater.ingest.report import SyncReport

from .conftest import SAMPLE_DOCS

REPORT_ARTIFACT_KEY = "headwater-sync-report"

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module", autouse=True)
def _stop_temporary_server() -> Iterator[None]:
    """Stop Prefect's temporary server here: stopped at exit, it logs to a closed stream."""
    yield
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(timeout=10, at_exit=False)  # ship the last log lines first
    SubprocessASGIServer().stop()


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

    # A heartbeat every 50 ms (30 s by default) in the flow run's log, as the UI shows it.
    report = sync_flow(str(config), heartbeat_s=0.05)
    assert report["files"]["added"] == 2
    beats = _wait_for_logs(r".*; \d+s elapsed")
    assert beats, _log_messages()
    assert report["files"]["failed"] == 1
    assert report["failures"][0]["path"] == "docs:broken.pdf"
    assert report["chunks"]["embedded"] > 0

    again = sync_flow(str(config))
    assert again["chunks"] == {"embedded": 0, "written": 0, "deleted": 0}
    assert again["files"]["unchanged"] == 2

    names = _task_run_names()
    assert {"load broken.pdf", "load it/security-faq.txt", "load handbook/welcome.md"} <= names

    # The server holds the first run's report: labelled rows, the failure, the slow files.
    first, second = _artifacts(REPORT_ARTIFACT_KEY)
    assert "## Slowest files" not in second  # nothing was read again
    assert "| files | 2 | 0 | 0 | 0 | 1 |" in first
    assert "| docs:broken.pdf | " in first.split("## Failures (1)")[1]
    slowest = first.split("## Slowest files (3 of 3 read this run)")[1]
    assert {"docs:it/security-faq.txt", "docs:handbook/welcome.md"} <= set(_first_cells(slowest))


def _first_cells(markdown: str) -> list[str]:
    """The first cell of every table row below the header rows."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [r.split(" | ")[0].removeprefix("| ").strip() for r in rows if not r.startswith("|---")]


def _report(files: list[FileResult]) -> SyncReport:
    report = SyncReport(files=files, store="faiss:/kb")
    report.stage_seconds.update(load=3.0, embed=2.5)
    report.wall_seconds = 4.0
    return report


@pytest.mark.parametrize(
    ("files", "failures", "slowest"),
    [
        # Nothing read: no failures table, no slowest files.
        ([FileResult("d:a.txt", "a.txt", FileStatus.UNCHANGED)], None, None),
        (
            [
                FileResult("d:a.txt", "a.txt", FileStatus.ADDED, chunks=3, seconds=0.5),
                FileResult("d:b.pdf", "b.pdf", FileStatus.FAILED, reason="no text | at all"),
                FileResult("d:c.md", "c.md", FileStatus.CHANGED, chunks=1, seconds=2.0),
            ],
            [("d:b.pdf", "no text \\| at all")],
            ["d:c.md", "d:a.txt"],
        ),
        # Only the ten slowest of twelve, slowest first.
        (
            [
                FileResult(f"d:{i}.txt", f"{i}.txt", FileStatus.ADDED, seconds=float(i + 1))
                for i in range(12)
            ],
            None,
            [f"d:{i}.txt" for i in range(11, 1, -1)],
        ),
    ],
)
def test_report_artifact_labels_rows_and_lists_failures_and_slowest_files(
    files: list[FileResult],
    failures: list[tuple[str, str]] | None,
    slowest: list[str] | None,
) -> None:
    from headwater.flows.sync import report_markdown

    markdown = report_markdown(_report(files))
    summary = markdown.split("\n## ")[0]
    assert _first_cells(summary) == ["", "files", "", "chunks", "", "seconds"]
    assert "| seconds | 0.00 | 3.00 | 0.00 | 2.50 | 0.00 | 0.00 | 4.00 |" in summary
    if failures is None:
        assert "## Failures" not in markdown
    else:
        table = markdown.split(f"## Failures ({len(failures)})")[1].split("\n## ")[0]
        cells = [line.split(" | ") for line in table.splitlines() if line.startswith("| d:")]
        assert [(c[0].removeprefix("| "), c[1].removesuffix(" |")) for c in cells] == failures
    if slowest is None:
        assert "## Slowest files" not in markdown
    else:
        assert _first_cells(markdown.split("## Slowest files")[1])[1:] == slowest


def _artifacts(key: str) -> list[str]:
    """The markdown of every artifact with `key` on the test's server, oldest first."""
    import asyncio

    from prefect import get_client

    async def read() -> list[str]:
        async with get_client() as client:
            response = await client._client.post(
                "/artifacts/filter",
                json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 50},
            )
            response.raise_for_status()
            return [a["data"] for a in reversed(response.json())]

    return asyncio.run(read())


def _log_messages() -> list[str]:
    """The messages of every log line the test's server holds, oldest first."""
    import asyncio

    from prefect import get_client

    async def read() -> list[str]:
        async with get_client() as client:
            response = await client._client.post(
                "/logs/filter",
                json={"logs": {}, "sort": "TIMESTAMP_ASC", "limit": 200, "offset": 0},
            )
            response.raise_for_status()
            return [r["message"] for r in response.json()]

    return asyncio.run(read())


def _wait_for_logs(pattern: str, timeout: float = 30.0) -> list[str]:
    """Log lines matching `pattern`, once the run's batched log shipping has delivered them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in _log_messages() if re.fullmatch(pattern, m)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


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
