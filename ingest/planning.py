"""Compare what the sources list with what the manifest holds: new, changed, unchanged, deleted.

A matching fingerprint short-cuts (the file is not opened); otherwise the content hash,
computed after reading, decides (see `SyncEngine.prepare`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ingest.manifest import ManifestEntry
from ingest.models import SourceFile


@dataclass(frozen=True)
class PlannedFile:
    """A file that must be read: new, or changed by fingerprint or chunker settings."""

    file: SourceFile
    chunker: str
    previous: ManifestEntry | None = None

    @property
    def is_new(self) -> bool:
        return self.previous is None


@dataclass
class SyncPlan:
    to_load: list[PlannedFile] = field(default_factory=list)
    unchanged: list[SourceFile] = field(default_factory=list)
    deleted: list[ManifestEntry] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    """Sources whose listing failed; their documents are left as they are."""


def plan(
    listings: Mapping[str, Sequence[SourceFile]],
    manifest: Mapping[str, ManifestEntry],
    chunkers: Mapping[str, str],
    source_errors: Mapping[str, str] | None = None,
) -> SyncPlan:
    """`listings` and `chunkers` are keyed by source name; `manifest` by source id."""
    errors = dict(source_errors or {})
    result = SyncPlan(source_errors=errors)
    listed: set[str] = set()
    for name, files in listings.items():
        for f in files:
            listed.add(f.source_id)
            prev = manifest.get(f.source_id)
            chunker = chunkers[name]
            if prev and prev.fingerprint == f.fingerprint and prev.chunker == chunker:
                result.unchanged.append(f)
            else:
                result.to_load.append(PlannedFile(f, chunker, prev))
    for sid, entry in manifest.items():
        # A source that could not be listed (unmounted disk, outage) is not "all deleted".
        if sid not in listed and entry.source not in errors:
            result.deleted.append(entry)
    return result
