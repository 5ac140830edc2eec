"""OpenTelemetry: a real sync, traced into the SDK's in-memory exporter, gives one span
tree with the counts a team looks for; without a tracer provider nothing is traced."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from headwater.ingest.engine import SyncEngine
from headwater.ingest.errors import ConfigError
from headwater.ingest.telemetry import Tracing, configure_from_environment

from .conftest import SAMPLE_DOCS


@pytest.fixture
def no_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenTelemetry lets a process set its provider once; each test gets a fresh global
    # (the API's own private slots, restored afterwards).
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


@pytest.fixture
def spans(no_provider: None) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for rel in ("it/security-faq.txt", "handbook/welcome.md"):
        shutil.copy(SAMPLE_DOCS / rel, docs / Path(rel).name)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n not really a pdf\n%%EOF\n")
    return docs


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in finished:
        out.setdefault(s.name, []).append(s)
    return out


def test_a_sync_is_one_span_tree_with_its_counts(
    tmp_path: Path,
    engine_factory: Callable[..., SyncEngine],
    spans: InMemorySpanExporter,
) -> None:
    docs = _docs(tmp_path)
    engine = engine_factory(docs, store={"backend": "faiss"})
    report = engine.run()
    named = _by_name(spans.get_finished_spans())

    (root,) = named["headwater.sync"]
    assert root.parent is None
    attrs = dict(root.attributes or {})
    assert attrs["headwater.backend"] == "faiss"
    assert attrs["headwater.files.added"] == 2 and attrs["headwater.files.failed"] == 1
    assert attrs["headwater.chunks.embedded"] == report.chunk_counts()["embedded"] > 0
    assert attrs["headwater.ok"] is False

    # Every stage is a child of the sync, inside its time.
    children = [s for s in spans.get_finished_spans() if s is not root]
    assert {s.name for s in children} >= {
        "headwater.plan",
        "headwater.load",
        "headwater.chunk",
        "headwater.embed",
        "headwater.upsert",
        "headwater.commit",
    }
    for s in children:
        assert s.parent is not None and s.parent.span_id == root.context.span_id, s.name
        assert root.start_time <= s.start_time <= s.end_time <= root.end_time, s.name
    assert named["headwater.plan"][0].attributes["headwater.files.to_load"] == 3

    loads = {s.attributes["headwater.file"]: s for s in named["headwater.load"]}
    assert loads.keys() == {"docs:security-faq.txt", "docs:welcome.md", "docs:broken.pdf"}
    broken = loads["docs:broken.pdf"]
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.attributes["headwater.error"] == report.failures[0].reason
    chunked = sum(s.attributes["headwater.chunks"] for s in named["headwater.chunk"])
    assert chunked == sum(s.attributes["headwater.records"] for s in named["headwater.upsert"])
    assert chunked == report.chunk_counts()["written"]

    # A removed document shows as a delete span naming it.
    spans.clear()
    (docs / "welcome.md").unlink()
    engine.run()
    named = _by_name(spans.get_finished_spans())
    (delete,) = named["headwater.delete"]
    assert delete.attributes["headwater.files"] == 1  # welcome.md, removed in one batch
    assert delete.attributes["headwater.chunks"] > 0
    assert "headwater.embed" not in named  # nothing new to embed


def test_without_a_tracer_provider_nothing_is_traced(no_provider: None) -> None:
    assert not Tracing().enabled
    with Tracing().span("sync", backend="faiss") as span:
        span.set_attribute("headwater.x", 1)  # a stand-in that takes attributes


@pytest.mark.parametrize(
    ("env", "configured"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "kb-nightly"}, True),
    ],
)
def test_the_otel_variables_set_a_provider(
    no_provider: None, env: dict[str, str], configured: bool
) -> None:
    assert configure_from_environment(env) is configured
    assert Tracing().enabled is configured
    if configured:
        provider = trace.get_tracer_provider()
        service = provider.resource.attributes["service.name"]  # type: ignore[attr-defined]
        assert service == env.get("OTEL_SERVICE_NAME", "headwater")
        provider.shutdown()  # type: ignore[attr-defined]


def test_an_unknown_exporter_is_named(no_provider: None) -> None:
    with pytest.raises(ConfigError, match=r"OTEL_TRACES_EXPORTER: no span exporter 'otlp'.*pip"):
        configure_from_environment({"OTEL_TRACES_EXPORTER": "otlp"})
