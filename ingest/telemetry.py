"""OpenTelemetry spans for a sync and its stages, when the application traces.

Headwater only creates spans; where they go is the application's choice. Spans are made
when a tracer provider is set (`opentelemetry.trace.set_tracer_provider`, which the CLI
does from the ``OTEL_*`` variables, see `configure_from_environment`); without one, or without
``opentelemetry-api`` installed, a sync makes none and pays nothing. The API is imported
here lazily: it is a small package with no backend in it.

The tree of one sync::

    headwater.sync                     backend, collection, file and chunk counts
    ├── headwater.plan                 files listed, to load, unchanged, deleted
    ├── headwater.load   (per file)    file, status, error; where it was parsed
    ├── headwater.chunk  (per file)    file, chunks
    ├── headwater.embed  (per batch)   chunks embedded
    ├── headwater.upsert (per batch)   records written
    ├── headwater.delete               chunks deleted (vanished ones, removed documents)
    └── headwater.commit (per batch)   documents, failures recorded in the manifest
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

from headwater.ingest.errors import ConfigError, MissingExtraError

PREFIX = "headwater."
Attributes = Mapping[str, str | int | float | bool]


class _NoSpan:
    """What a stage gets when nothing traces: attributes go nowhere."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Attributes) -> None:
        pass


NO_SPAN = _NoSpan()


def _tracer() -> Any | None:
    """The tracer to use now, or None when no tracer provider is set."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer("headwater")


def _named(attributes: Attributes) -> dict[str, Any]:
    return {k if "." in k else PREFIX + k: v for k, v in attributes.items()}


class Tracing:
    """Spans of one sync; a no-op when no tracer provider was set when it began."""

    def __init__(self) -> None:
        self._tracer = _tracer()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextmanager
    def span(self, stage: str, **attributes: str | int | float | bool) -> Iterator[Any]:
        """A span ``headwater.<stage>`` around the block, the current span's child; an
        exception leaving the block is recorded on it. Yields the span (or a stand-in) for
        attributes known only at the end."""
        if self._tracer is None:
            yield NO_SPAN
            return
        with self._tracer.start_as_current_span(
            PREFIX + stage, attributes=_named(attributes)
        ) as span:
            yield span

    def past(
        self,
        stage: str,
        start: float,
        seconds: float,
        error: str | None = None,
        **attributes: str | int | float | bool,
    ) -> None:
        """A span for work done elsewhere (a worker process, a Dask worker) that began at
        `start` (`time.time()`) and took `seconds`."""
        if self._tracer is None:
            return
        from opentelemetry.trace import Status, StatusCode

        begin = int(start * 1e9)
        span = self._tracer.start_span(
            PREFIX + stage, start_time=begin, attributes=_named(attributes)
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
            span.set_attribute(PREFIX + "error", error)
        span.end(end_time=begin + int(seconds * 1e9))


def now() -> float:
    """Wall-clock time, comparable between the processes of one machine."""
    return time.time()


def configure_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Set a tracer provider from the standard ``OTEL_*`` variables when none is set yet
    (the CLI and the flows call this; an application sets its own). ``OTEL_TRACES_EXPORTER``
    names the exporters (``console``, or ``otlp`` with opentelemetry-exporter-otlp
    installed), which read their own variables (``OTEL_EXPORTER_OTLP_ENDPOINT``...);
    ``OTEL_SERVICE_NAME`` defaults to ``headwater``. Returns whether it set one."""
    env = os.environ if environ is None else environ
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise MissingExtraError("OTEL_TRACES_EXPORTER (OpenTelemetry spans)", "otel") from None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # the application set its own
    exporters = []
    for name in names:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            hint = " (pip install opentelemetry-exporter-otlp)" if name.startswith("otlp") else ""
            raise ConfigError(f"OTEL_TRACES_EXPORTER: no span exporter {name!r} installed{hint}")
        exporter = next(iter(found)).load()
        # stdout carries `--json` reports: the console exporter writes to stderr instead.
        exporters.append(exporter(out=sys.stderr) if name == "console" else exporter())
    # Attributes given here win over the variables, so they repeat what those say.
    own = {"service.name": env.get("OTEL_SERVICE_NAME") or "headwater"}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        own = {}
    provider = TracerProvider(resource=Resource.create(own))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
