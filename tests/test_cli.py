"""The `headwater` command as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAMPLE_DOCS


def headwater(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    for rel in ("policies/expenses.pdf", "policies/leave-policy.docx", "it/security-faq.txt"):
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_bytes((SAMPLE_DOCS / rel).read_bytes())
    (tmp_path / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n'
    )
    return tmp_path


def test_sync_json_query_and_status(project: Path) -> None:
    out = headwater("sync", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["files"] == {"added": 3, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert report["chunks"]["embedded"] == report["chunks"]["written"] > 0
    assert set(report["stage_seconds"]) == {
        "list_plan",
        "load",
        "chunk",
        "embed",
        "write",
        "commit",
    }
    assert (project / ".headwater" / "faiss" / "headwater" / "meta.sqlite").exists()

    again = json.loads(headwater("sync", "--json", cwd=project).stdout)
    assert again["chunks"] == {"embedded": 0, "written": 0, "deleted": 0}

    q = headwater("query", "How many days of annual leave do I get?", "-k", "2", cwd=project)
    assert q.returncode == 0, q.stderr
    lines = q.stdout.splitlines()
    assert "score" in q.stdout and "page" in q.stdout
    assert "chars" in q.stdout  # element types and offsets under the source
    first_row = next(line for line in lines if line.startswith("│ 1 "))
    assert "leave-policy.docx" in first_row

    hits = json.loads(
        headwater("query", "receipts", "--source", "*.pdf", "--json", cwd=project).stdout
    )
    assert hits and all(h["path"] == "policies/expenses.pdf" for h in hits)
    assert all(h["pages"] for h in hits)
    # Where each chunk came from: its elements and its characters in the document text.
    assert all(h["element_types"] and 0 <= h["start"] < h["end"] for h in hits)
    assert all(h["end"] - h["start"] == len(h["text"]) for h in hits)
    for mode in ("lexical", "hybrid"):
        out = headwater("query", "BitLocker", "--mode", mode, "-k", "1", "--json", cwd=project)
        assert out.returncode == 0, out.stderr
        assert [h["path"] for h in json.loads(out.stdout)] == ["it/security-faq.txt"]
    bad = headwater("query", "x", "--mode", "bm25", cwd=project)
    assert bad.returncode != 0 and "dense" in bad.stderr and "lexical" in bad.stderr

    # Filters by file type and page, comma-separated or repeated.
    def paths_and_pages(*args: str) -> list[tuple[str, list[int]]]:
        out = headwater("query", "receipts and travel", "-k", "20", "--json", *args, cwd=project)
        assert out.returncode == 0, out.stderr
        return [(h["path"], h["pages"]) for h in json.loads(out.stdout)]

    unfiltered = paths_and_pages()
    assert {p for p, _ in unfiltered} > {"policies/expenses.pdf"}
    pdf_only = paths_and_pages("--file-type", "pdf")
    assert pdf_only and {p for p, _ in pdf_only} == {"policies/expenses.pdf"}
    others = paths_and_pages("-t", "docx,TXT")
    assert others and {p for p, _ in others} == {
        "policies/leave-policy.docx",
        "it/security-faq.txt",
    }
    page_3 = paths_and_pages("--file-type", "pdf", "--page", "3")
    assert page_3 and all(3 in pages for _, pages in page_3)
    assert len(page_3) < len(pdf_only)
    pages_2_4 = paths_and_pages("--page", "2", "--page", "4")
    assert pages_2_4 and all({2, 4} & set(pages) for _, pages in pages_2_4)
    bad_page = headwater("query", "x", "--page", "0", cwd=project)
    assert bad_page.returncode == 2 and "--page" in bad_page.stderr

    st = headwater("status", cwd=project)
    assert st.returncode == 0, st.stderr
    assert f"manifest: 3 documents, {report['chunks']['written']} chunks" in st.stdout
    assert f"store holds: {report['chunks']['written']} chunks" in st.stdout
    st_json = headwater("status", "--json", cwd=project)
    assert st_json.returncode == 0, st_json.stderr
    status = json.loads(st_json.stdout)
    written = report["chunks"]["written"]
    assert status["manifest"]["documents"] == 3
    assert status["manifest"]["chunks"] == status["store_chunks"] == written
    assert status["in_step"] is True and status["sync_running"] is False
    assert status["manifest"]["last_change"] and status["manifest"]["failed_files"] == 0
    assert [s["name"] for s in status["sources"]] == ["docs"]
    assert status["store"].startswith("faiss")


def test_failures_are_listed_and_exit_nonzero(project: Path) -> None:
    (project / "docs" / "notes.xyz").write_text("?")
    out = headwater("sync", "--json", cwd=project)
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["files"]["added"] == 3 and report["files"]["failed"] == 1
    assert report["failures"] == [
        {"path": "docs:notes.xyz", "reason": "unsupported file type '.xyz'", "stale": False}
    ]


def test_bad_config_names_the_key(project: Path) -> None:
    out = headwater("sync", cwd=project, env={"HEADWATER_EMBEDDING__BATCH_SIZE": "0"})
    assert out.returncode == 2
    assert "embedding.batch_size" in out.stderr
    assert "HEADWATER_EMBEDDING__BATCH_SIZE" in out.stderr
    assert "Traceback" not in out.stderr
