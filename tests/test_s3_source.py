"""Sources by URL against real servers on loopback: moto's S3 server, and an HTTP listing.

`headwater sync --json` runs add, no-op, change and delete cycles against a bucket; the
store must hold exactly what the bucket implies, and only changed objects are embedded.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headwater.api import KnowledgeBase
from headwater.cli import app
from headwater.compose import build_engine, build_sources, build_store
from headwater.config import load_config
from headwater.connectors.sources.fsspec import FsspecSource, fingerprint
from headwater.ingest.embedding import Embedder
from headwater.ingest.errors import ConfigError, HeadwaterError

from .conftest import SAMPLE_DOCS, make_config

pytest.importorskip("s3fs", reason="the s3 extra is not installed")

SECRET = "wJalrXUtnFEMI-never-print-me"
FILES = ("handbook/welcome.md", "it/security-faq.txt", "policies/expenses.pdf")


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket holding FILES under kb/, plus a draft the config excludes."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTHEADWATER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    name = f"kestrel-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=name)
    for rel in FILES:
        s3.put_object(Bucket=name, Key=f"kb/{rel}", Body=(SAMPLE_DOCS / rel).read_bytes())
    s3.put_object(Bucket=name, Key="kb/drafts/wip.md", Body=b"# Work in progress\n\nNot yet.")
    s3.put_object(Bucket=name, Key="elsewhere/other.md", Body=b"# Outside the prefix")
    return s3, name


def write_config(tmp_path: Path, url: str, endpoint: str | None, **loading: Any) -> Path:
    options = f'storage_options = {{ endpoint_url = "{endpoint}" }}\n' if endpoint else ""
    lines = [
        "[[sources]]",
        'name = "bucket"',
        f'path = "{url}"',
        'exclude = ["drafts/"]',
        options,
        "[embedding]",
        'device = "cpu"',
        "[store]",
        'backend = "faiss"',
        "[state]",
        f'dir = "{tmp_path / "state"}"',
    ]
    if loading:
        lines += ["[loading]", *(f"{k} = {v}" for k, v in loading.items())]
    path = tmp_path / "headwater.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sync(config: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["sync", "--json", "--config", str(config)])
    assert SECRET not in result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if report["ok"] else 1), result.output
    return report


def per_file(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in report["per_file"]}


def stored_ids(config: Path, source_id: str) -> set[str]:
    with build_store(load_config(config)) as store:
        return store.source_ids(source_id)


@pytest.mark.slow
def test_sync_cycles_against_a_bucket(bucket: Any, s3_endpoint: str, tmp_path: Path) -> None:
    s3, name = bucket
    config = write_config(tmp_path, f"s3://{name}/kb", s3_endpoint)

    added = sync(config)
    assert added["files"] == {"added": 3, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0}
    assert added["chunks"]["embedded"] == added["chunks"]["written"] > 0
    assert all(stored_ids(config, f"bucket:{rel}") for rel in FILES)

    again = sync(config)
    assert again["files"]["unchanged"] == 3
    assert again["chunks"] == {"embedded": 0, "written": 0, "deleted": 0}

    welcome = (SAMPLE_DOCS / "handbook/welcome.md").read_text()
    s3.put_object(
        Bucket=name,
        Key="kb/handbook/welcome.md",
        Body=(welcome + "\n\n## Bike parking\n\nThe cage by gate B opens with your badge.\n"),
    )
    s3.put_object(
        Bucket=name, Key="kb/handbook/new-starters.md", Body=b"# New starters\n\nAsk Ana."
    )
    changed = sync(config)
    assert changed["files"] == {
        "added": 1,
        "changed": 1,
        "unchanged": 2,
        "deleted": 0,
        "failed": 0,
    }
    files = per_file(changed)
    assert set(files) == {"handbook/welcome.md", "handbook/new-starters.md"}
    # Only the changed object's new chunks (and the new object's) are embedded.
    assert 0 < files["handbook/welcome.md"]["embedded"] < files["handbook/welcome.md"]["chunks"]
    assert changed["chunks"]["embedded"] == sum(f["embedded"] for f in files.values())

    before = stored_ids(config, "bucket:it/security-faq.txt")
    s3.delete_object(Bucket=name, Key="kb/it/security-faq.txt")
    deleted = sync(config)
    assert deleted["files"]["deleted"] == 1 and deleted["chunks"]["embedded"] == 0
    assert per_file(deleted)["it/security-faq.txt"]["deleted"] == len(before) > 0
    assert stored_ids(config, "bucket:it/security-faq.txt") == set()
    with KnowledgeBase.open(config) as kb:
        assert kb.search("password", filters={"source_ids": ["bucket:it/security-faq.txt"]}) == []
        hits = kb.search("Which cage at which gate opens with my badge?", k=3)

    status = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert f"source bucket: s3://{name}/kb" in " ".join(status.stdout.split())
    assert any("gate B" in h.text and h.metadata.path == "handbook/welcome.md" for h in hits)


def test_listing_uses_object_metadata_and_globs(bucket: Any, s3_endpoint: str) -> None:
    s3, name = bucket
    source = FsspecSource(
        "bucket",
        f"s3://{name}/kb/",
        exclude=["drafts/"],
        storage_options={"endpoint_url": s3_endpoint},
    )
    files = {f.path: f for f in source.list_files()}
    assert set(files) == set(FILES)
    pdf = files["policies/expenses.pdf"]
    assert pdf.uri == f"s3://{name}/kb/policies/expenses.pdf"
    assert pdf.size == (SAMPLE_DOCS / "policies/expenses.pdf").stat().st_size
    etag = s3.head_object(Bucket=name, Key="kb/policies/expenses.pdf")["ETag"]
    assert etag in pdf.fingerprint
    assert source.read_bytes(pdf) == (SAMPLE_DOCS / "policies/expenses.pdf").read_bytes()
    only_md = FsspecSource(
        "b", f"s3://{name}/kb", include=["*.md"], storage_options={"endpoint_url": s3_endpoint}
    )
    assert {f.path for f in only_md.list_files()} == {"handbook/welcome.md", "drafts/wip.md"}


def test_endpoint_and_credentials_from_the_environment(
    bucket: Any, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, name = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    config = load_config(write_config(tmp_path, f"s3://{name}/kb", endpoint=None))
    source = build_sources(config)[0]
    assert {f.path for f in source.list_files()} == set(FILES)


@pytest.mark.slow
def test_unreachable_bucket_deletes_nothing(
    bucket: Any, s3_endpoint: str, tmp_path: Path, embedder: Embedder
) -> None:
    _, name = bucket
    source = {
        "name": "bucket",
        "path": f"s3://{name}/kb",
        "include": ["*.md"],
        "storage_options": {"endpoint_url": s3_endpoint},
    }
    config = make_config(tmp_path, SAMPLE_DOCS, sources=[source], store={"backend": "faiss"})
    with KnowledgeBase(config, embedder=embedder) as kb:
        assert kb.sync().file_counts()["added"] == 2
    gone = {**source, "path": f"s3://{name}-gone/kb"}
    config = make_config(tmp_path, SAMPLE_DOCS, sources=[gone], store={"backend": "faiss"})
    engine = build_engine(config, embedder=embedder)
    try:
        report = engine.run()
        assert "does not exist" in report.source_errors["bucket"]
        assert report.file_counts()["deleted"] == 0
        assert engine.state.store.source_ids("bucket:handbook/welcome.md")
    finally:
        engine.close()


def test_large_objects_are_refused_before_download(
    bucket: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    _, name = bucket
    config = write_config(tmp_path, f"s3://{name}/kb", s3_endpoint, max_file_mb=0.006)
    report = sync(config)
    reasons = {f["path"]: f["reason"] for f in report["failures"]}
    assert (
        "over loading.max_file_mb=0.006; not downloaded" in reasons["bucket:policies/expenses.pdf"]
    )
    assert report["files"]["added"] == 2


def test_secrets_stay_out_of_the_config(tmp_path: Path) -> None:
    base = {"name": "b", "path": "s3://bucket/kb"}
    with pytest.raises(Exception, match=r"client_kwargs\.aws_secret_access_key") as exc:
        make_config(
            tmp_path,
            SAMPLE_DOCS,
            sources=[
                {**base, "storage_options": {"client_kwargs": {"aws_secret_access_key": "s"}}}
            ],
        )
    assert "environment" in str(exc.value)
    (tmp_path / "headwater.toml").write_text(
        f'[[sources]]\nname = "web"\npath = "https://user:{SECRET}@example.org/docs/"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "headwater.toml")
    assert "password" in str(err.value) and SECRET not in str(err.value)
    gcs_anon = make_config(
        tmp_path, SAMPLE_DOCS, sources=[{**base, "storage_options": {"token": "anon"}}]
    )
    assert gcs_anon.sources[0].storage_options == {"token": "anon"}


def test_missing_filesystem_names_the_extra(tmp_path: Path) -> None:
    try:
        import gcsfs  # noqa: F401

        pytest.skip("gcsfs is installed")
    except ImportError:
        pass
    config = make_config(tmp_path, SAMPLE_DOCS, sources=[{"name": "g", "path": "gs://b/kb"}])
    with pytest.raises(ConfigError, match=r"pip install 'headwater\[gcs\]'"):
        build_sources(config)[0]
    local = make_config(
        tmp_path,
        SAMPLE_DOCS,
        sources=[{"name": "l", "path": "docs", "storage_options": {"anon": True}}],
    )
    with pytest.raises(ConfigError, match="only URL sources"):
        build_sources(local)[0]


def test_fingerprint_prefers_the_filesystems_own_metadata() -> None:
    assert fingerprint({"size": 3, "ETag": '"abc"'}) == '3:"abc":'
    assert fingerprint({"size": 3, "generation": "17", "updated": "t"}) == "3:17:t"
    assert fingerprint({"size": 3, "mtime": 1.5}) == "3::1.5"
    assert fingerprint({"size": 3}) is None


@pytest.mark.slow
def test_http_listing(httpserver: Any, tmp_path: Path, embedder: Embedder) -> None:
    index = (
        '<a href="?C=N;O=D">sort</a> <a href="welcome.md">welcome</a> <a href="it/">it</a> '
        '<a href="/elsewhere/x.md">outside</a>'
    )
    for path, body in (("/docs", index), ("/docs/it", '<a href="security-faq.txt">faq</a>')):
        for url in (path, path + "/"):
            httpserver.expect_request(url).respond_with_data(body, content_type="text/html")

    def serve(rel: str, data: bytes, etag: str) -> None:
        httpserver.expect_request(f"/docs/{rel}").respond_with_data(data, headers={"ETag": etag})

    welcome = (SAMPLE_DOCS / "handbook/welcome.md").read_bytes()
    serve("welcome.md", welcome, '"w1"')
    serve("it/security-faq.txt", (SAMPLE_DOCS / "it/security-faq.txt").read_bytes(), '"f1"')
    source = {"name": "web", "path": httpserver.url_for("/docs/")}
    config = make_config(tmp_path, SAMPLE_DOCS, sources=[source], store={"backend": "faiss"})
    with KnowledgeBase(config, embedder=embedder) as kb:
        first = kb.sync()
        assert first.ok and first.file_counts()["added"] == 2
        assert kb.sync().file_counts()["unchanged"] == 2

        httpserver.clear_all_handlers()
        for path, body in (("/docs", index), ("/docs/it", '<a href="security-faq.txt">f</a>')):
            for url in (path, path + "/"):
                httpserver.expect_request(url).respond_with_data(body, content_type="text/html")
        serve("welcome.md", welcome + b"\n\nThe canteen opens at 8.\n", '"w2"')
        serve("it/security-faq.txt", (SAMPLE_DOCS / "it/security-faq.txt").read_bytes(), '"f1"')
        third = kb.sync()
        assert third.file_counts() == {
            "added": 0,
            "changed": 1,
            "unchanged": 1,
            "deleted": 0,
            "failed": 0,
        }
        assert "canteen" in kb.search("When does the canteen open?", k=1)[0].text


def test_unknown_scheme_is_a_config_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, SAMPLE_DOCS, sources=[{"name": "x", "path": "nope://b/kb"}])
    with pytest.raises(HeadwaterError, match=r"no fsspec filesystem handles nope://"):
        build_sources(config)[0]
