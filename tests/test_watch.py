"""`headwater watch` without Prefect, the size-settle wait, and reading a one-process
store (Milvus Lite) while another process holds it."""

from __future__ import annotations

import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from headwater.connectors.sources.local import Named, named_kind
from headwater.flows.watch import settle
from headwater.ingest.engine import SyncEngine
from headwater.ingest.planning import Scope, SyncPlan

from .conftest import SAMPLE_DOCS


def test_settle_returns_only_after_a_growing_file_stops_changing(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("start\n")
    last_write = [0.0]

    def writer() -> None:
        for i in range(6):
            time.sleep(0.25)
            with path.open("a") as f:
                f.write(f"part {i}\n" * 100)
            last_write[0] = time.monotonic()

    thread = threading.Thread(target=writer)
    thread.start()
    ready = settle([path], quiet_s=0.6, timeout_s=20)
    done = time.monotonic()
    thread.join()
    assert ready == [path]
    assert done - last_write[0] >= 0.6
    assert path.read_text().endswith("part 5\n")


def test_settle_counts_stillness_from_the_last_write(tmp_path: Path) -> None:
    # A file moved in with an old mtime, and a deleted one, have nothing to wait for: both
    # are ready though the quiet period is longer than the time allowed.
    old = tmp_path / "moved-in.txt"
    old.write_text("written an hour ago\n")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    gone = tmp_path / "deleted.txt"
    fresh = tmp_path / "just-written.txt"
    fresh.write_text("now\n")
    assert settle([old, gone, fresh], quiet_s=30, timeout_s=0.5) == [old, gone]


def test_settle_gives_up_on_a_file_that_never_stops_changing(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("")
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            with path.open("a") as f:
                f.write("line\n")
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert settle([path], quiet_s=0.5, timeout_s=1.5) == []
    finally:
        stop.set()
        thread.join()


def test_a_scoped_plan_looks_only_at_the_named_documents(
    engine_factory: Callable[..., SyncEngine], docs: Path
) -> None:
    engine = engine_factory(docs, store={"backend": "faiss"})
    engine.run()
    (docs / "handbook" / "welcome.md").write_text("# Welcome\n\nRewritten.\n")
    (docs / "it" / "security-faq.txt").unlink()
    (docs / "engineering" / "oncall-runbook.html").write_text("<p>Also changed.</p>")
    scope = Scope(source_ids=frozenset({"docs:handbook/welcome.md", "docs:it/security-faq.txt"}))
    plan = engine.plan(scope=scope)
    assert [p.file.source_id for p in plan.to_load] == ["docs:handbook/welcome.md"]
    assert [e.source_id for e in plan.deleted] == ["docs:it/security-faq.txt"]
    assert plan.unchanged == 0  # the runbook changed too, but it is out of scope
    full = engine.plan()
    assert {p.file.source_id for p in full.to_load} == {
        "docs:handbook/welcome.md",
        "docs:engineering/oncall-runbook.html",
    }


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _headwater(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def test_watch_in_process_ingests_new_changed_and_deleted_files(tmp_path: Path) -> None:
    """Milvus Lite, the default: between runs the watcher holds nothing, so `query` works."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "welcome.md").write_text((SAMPLE_DOCS / "handbook" / "welcome.md").read_text())
    config = tmp_path / "headwater.toml"
    config.write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\nexclude = ["*.tmp"]\n'
        '[embedding]\ndevice = "cpu"\n'
        "[orchestration.watch]\ndebounce_ms = 300\nsettle_s = 0.5\n"
    )
    env = _env()
    assert _headwater("sync", "--config", str(config), env=env).returncode == 0
    log = tmp_path / "watch.log"
    watcher = subprocess.Popen(
        # A heartbeat every 10 ms (30 s by default): even a one-file run says where it is.
        [
            *(sys.executable, "-m", "headwater", "watch", "--config", str(config), "--json"),
            *("--heartbeat", "0.01"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )
    lines = _lines(watcher)
    try:
        # Changes made before the watcher watches are not seen: wait until it says so.
        deadline = time.monotonic() + 120
        while "watching" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # it says so just before the file watcher starts
        note = docs / "courier.md"
        with note.open("w") as f:  # written in two parts, the second after a pause
            f.write("# Courier\n\nThe courier code for the north depot is ")
            f.flush()
            time.sleep(0.2)
            f.write("OSPREY-4411. Parcels wait at the loading bay.\n")
        (docs / "scratch.tmp").write_text("excluded by the config")
        added = json.loads(lines.get(timeout=120))
        assert added["files"]["added"] == 1, added
        assert [f["path"] for f in added["per_file"]] == ["courier.md"]
        assert re.search(r"^… .*; \ds elapsed$", log.read_text(), re.M), log.read_text()

        found = _headwater(
            "query",
            "courier code north depot",
            "-k",
            "1",
            "--json",
            "--config",
            str(config),
            env=env,
        )
        assert found.returncode == 0, found.stderr
        hit = json.loads(found.stdout)[0]
        assert hit["source"] == "docs:courier.md"
        assert "OSPREY-4411" in hit["text"]  # the whole file, not its first half

        note.unlink()
        removed = json.loads(lines.get(timeout=120))
        while not removed["files"]["deleted"]:
            # A late event for the finished write: a run that finds nothing to do.
            assert removed["chunks"] == {"embedded": 0, "written": 0, "deleted": 0}, removed
            removed = json.loads(lines.get(timeout=120))
        assert removed["files"] == {
            "added": 0,
            "changed": 0,
            "unchanged": 0,
            "deleted": 1,
            "failed": 0,
        }  # welcome.md was not looked at
    finally:
        watcher.send_signal(2)
        try:
            watcher.wait(30)
        except subprocess.TimeoutExpired:
            watcher.kill()
    status = _headwater("status", "--config", str(config), env=env)
    assert "manifest: 1 documents" in status.stdout, status.stdout


HOLD = """
import sys, time
from headwater.compose import build_store
from headwater.config import load_config
from headwater.connectors.sources.local import Named, named_kind
store = build_store(load_config(sys.argv[1]))
store.count()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
"""


def test_query_waits_for_a_process_holding_milvus_lite_then_answers(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "faq.txt").write_text((SAMPLE_DOCS / "it" / "security-faq.txt").read_text())
    config = tmp_path / "headwater.toml"
    config.write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n'
        '[store]\nbackend = "milvus"\n'
    )
    env = _env()
    assert _headwater("sync", "--config", str(config), env=env).returncode == 0

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(config), "8"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    refused = _headwater("query", "password", "--wait", "0", "--config", str(config), env=env)
    assert refused.returncode == 2
    said = " ".join(refused.stderr.split())  # the console wraps long lines
    assert "is open in another process" in said
    assert "--wait" in said and "headwater migrate" in said

    waited = _headwater("query", "password", "--json", "--config", str(config), env=env)
    holder.wait(30)
    assert waited.returncode == 0, waited.stderr
    assert "waiting up to 120s" in waited.stderr
    assert json.loads(waited.stdout)[0]["source"] == "docs:faq.txt"


def test_serve_without_a_prefect_api_says_how_to_start_one(tmp_path: Path) -> None:
    pytest.importorskip("prefect")
    config = tmp_path / "headwater.toml"
    config.write_text(f'[[sources]]\nname = "docs"\npath = "{SAMPLE_DOCS}"\n')
    done = _headwater("serve", "--config", str(config), env=_env())
    assert done.returncode == 2
    said = " ".join(done.stderr.split())  # the console wraps long lines
    assert "PREFECT_API_URL is not set" in said
    assert "prefect server start --host 127.0.0.1" in said


@pytest.mark.parametrize(
    ("rel", "mode", "wanted", "links_above", "kind"),
    [
        ("notes/a.md", stat.S_IFREG, True, False, Named.FILE),
        ("notes/a.md", None, True, False, Named.GONE),  # deleted, or renamed away
        ("notes/a.tmp", stat.S_IFREG, False, False, Named.IGNORED),  # excluded by the config
        ("notes/a.tmp", None, False, False, Named.GONE),
        ("notes", stat.S_IFDIR, True, False, Named.FOLDER),  # a folder moved in
        ("notes", stat.S_IFDIR, False, False, Named.FOLDER),  # its files are filtered
        ("pipe", stat.S_IFIFO, True, False, Named.SPECIAL),
        ("pipe", stat.S_IFIFO, False, False, Named.IGNORED),
        # Links and odd paths: the full listing decides, as it always did.
        ("link.md", stat.S_IFLNK, True, False, Named.LIST_ALL),
        ("linked/a.md", stat.S_IFREG, True, True, Named.LIST_ALL),
        ("../outside.md", stat.S_IFREG, True, False, Named.LIST_ALL),
        ("./a.md", stat.S_IFREG, True, False, Named.LIST_ALL),
        ("a//b.md", stat.S_IFREG, True, False, Named.LIST_ALL),
        ("", stat.S_IFDIR, True, False, Named.LIST_ALL),
    ],
)
def test_a_named_path_is_listed_by_what_it_is(
    rel: str, mode: int | None, wanted: bool, links_above: bool, kind: Named
) -> None:
    assert named_kind(rel, mode, wanted, links_above=links_above) is kind


@pytest.mark.parametrize(
    ("named", "sid", "covered"),
    [
        ({"d:a.md"}, "d:a.md", True),
        ({"d:a.md"}, "d:a.mdx", False),
        ({"d:a.md"}, "e:a.md", False),
        ({"d:old"}, "d:old/x/y.md", True),  # a folder moved away: all below it
        ({"d:old"}, "d:older/y.md", False),
        ({"d:old/x"}, "d:old/y.md", False),
        ({"d:o"}, "d:old/y.md", False),
    ],
)
def test_a_scope_covers_named_documents_and_what_is_below_a_named_folder(
    named: set[str], sid: str, covered: bool
) -> None:
    scope = Scope(source_ids=frozenset(named))
    assert scope.covers(sid.partition(":")[0], sid) is covered


def test_an_event_run_stats_only_the_named_paths_and_plans_as_a_full_listing_would(
    engine_factory: Callable[..., SyncEngine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "kb"
    files = {
        "a.md": "# A\n\nAlpha.\n",
        "b.txt": "Bravo.\n",
        "c.md": "# C\n\nCharlie.\n",
        "keep.md": "# Keep\n\nKept.\n",
        "sub/d.md": "# D\n\nDelta.\n",
        "old/e.md": "# E\n\nEcho.\n",
        "old/deep/f.md": "# F\n\nFoxtrot.\n",
    }
    for rel, text in files.items():
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_text(text)
    engine = engine_factory(
        docs,
        store={"backend": "faiss"},
        sources=[{"name": "d", "path": str(docs), "exclude": ["*.tmp"]}],
    )
    assert engine.run().file_counts()["added"] == len(files)

    (docs / "a.md").write_text("# A\n\nAlpha, changed.\n")  # changed
    (docs / "b.txt").unlink()  # deleted
    (docs / "c.md").rename(docs / "c2.md")  # renamed
    (docs / "sub").rename(docs / "moved")  # a folder renamed: watched, it names both
    (docs / "old").rename(tmp_path / "away")  # a folder moved out: only its name is left
    (docs / "x.tmp").write_text("excluded")
    (docs / "keep.md").write_text("# Keep\n\nChanged, but no event named it.\n")
    named = ["a.md", "b.txt", "c.md", "c2.md", "sub", "moved", "old", "x.tmp", "never-there.md"]
    scope = Scope(source_ids=frozenset(f"d:{p}" for p in named))

    full = engine.plan()
    (source,) = engine.sources
    monkeypatch.setattr(source, "list_files", lambda: pytest.fail("the whole source was listed"))
    scoped = engine.plan(scope=scope)

    def ids(plan: SyncPlan) -> dict[str, list[str]]:
        return {
            "load": sorted(p.file.source_id for p in plan.to_load),
            "delete": sorted(e.source_id for e in plan.deleted),
        }

    assert ids(scoped) == {
        "load": ["d:a.md", "d:c2.md", "d:moved/d.md"],
        "delete": ["d:b.txt", "d:c.md", "d:old/deep/f.md", "d:old/e.md", "d:sub/d.md"],
    }
    # What a full listing plans, cut to the named paths: the same, less keep.md.
    expected = {k: [s for s in v if scope.covers("d", s)] for k, v in ids(full).items()}
    assert ids(scoped) == expected
    assert "d:keep.md" in ids(full)["load"]

    report = engine.run(scope=scope)
    counts = report.file_counts()
    assert (counts["added"], counts["changed"], counts["deleted"]) == (2, 1, 5), counts
    monkeypatch.undo()
    assert ids(engine.plan()) == {"load": ["d:keep.md"], "delete": []}

    # A link is listed as the full listing lists it (where it leads decides).
    (docs / "link.md").symlink_to(docs / "a.md")
    (docs / "out.md").symlink_to(tmp_path / "away" / "e.md")
    named_links = ["link.md", "out.md"]
    assert list(source.list_named(named_links)) == [
        f for f in source.list_files() if f.path in named_links
    ]
