"""Compare what the sources list with what the manifest holds: new, changed, unchanged, deleted.

A matching fingerprint short-cuts (the file is not opened); otherwise the content hash,
computed after reading, decides (see `SyncEngine.prepare`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from headwater.ingest.manifest import FailureEntry, ManifestEntry
from headwater.ingest.models import DocumentId, SourceFile


@dataclass(frozen=True)
class PlannedFile:
    """A file that must be read: new, or changed by fingerprint or chunker settings."""

    file: SourceFile
    chunker: str
    previous: ManifestEntry | None = None

    @property
    def is_new(self) -> bool:
        return self.previous is None


@dataclass(frozen=True)
class Scope:
    """The part of the configured sources one run looks at; empty means all of them.

    A run scoped to files (the watcher's batches) lists exactly those files and, if they
    are gone, deletes exactly their chunks; everything else is left for a full sync. A
    named path that is a folder (moved in, moved away) stands for everything below it.
    """

    sources: frozenset[str] = frozenset()
    """Source names; empty: every source."""
    source_ids: frozenset[str] = frozenset()
    """Document ids (``source:path``); empty: every file of the chosen sources."""

    def covers_source(self, name: str) -> bool:
        if self.source_ids:
            return any(DocumentId.parse(sid).source == name for sid in self.source_ids)
        return not self.sources or name in self.sources

    def covers(self, source: str, source_id: str) -> bool:
        if self.source_ids:
            return self._named(source_id)
        return self.covers_source(source)

    def _named(self, source_id: str) -> bool:
        """The id is named, or lies below a named one: one look-up per folder level,
        however many ids are named (the whole manifest is checked against them)."""
        if source_id in self.source_ids:
            return True
        cut = source_id.find("/")
        while cut != -1:
            if source_id[:cut] in self.source_ids:
                return True
            cut = source_id.find("/", cut + 1)
        return False

    def paths_of(self, source: str) -> list[str] | None:
        """The paths named in `source`, sorted; None when the scope names no paths (the
        source is listed whole)."""
        if not self.source_ids:
            return None
        ids = (DocumentId.parse(sid) for sid in self.source_ids)
        return sorted(d.path for d in ids if d.source == source)


def failure_key(chunker: str, loading: str) -> str:
    """The settings a content failure depends on: a change to either tries the file again."""
    return f"{chunker}|{loading}"


@dataclass(frozen=True)
class KnownFailure:
    """A file that failed on its content and has not changed since: not read again."""

    file: SourceFile
    reason: str
    previous: ManifestEntry | None = None


@dataclass
class SyncPlan:
    to_load: list[PlannedFile] = field(default_factory=list)
    unchanged: list[SourceFile] = field(default_factory=list)
    deleted: list[ManifestEntry] = field(default_factory=list)
    known_failures: list[KnownFailure] = field(default_factory=list)


def plan(
    listings: Mapping[str, Sequence[SourceFile]],
    manifest: Mapping[str, ManifestEntry],
    chunkers: Mapping[str, str],
    source_errors: Mapping[str, str] | None = None,
    failures: Mapping[str, FailureEntry] | None = None,
    loading: str = "",
) -> SyncPlan:
    """`listings` and `chunkers` are keyed by source name; `manifest` and `failures` (content
    failures of earlier runs) by source id; `loading` is the loading settings' key."""
    errors = dict(source_errors or {})
    failures = failures or {}
    result = SyncPlan()
    listed: set[str] = set()
    for name, files in listings.items():
        for f in files:
            listed.add(f.source_id)
            prev = manifest.get(f.source_id)
            chunker = chunkers[name]
            failed = failures.get(f.source_id)
            if prev and prev.fingerprint == f.fingerprint and prev.chunker == chunker:
                result.unchanged.append(f)
            elif (
                failed
                and failed.fingerprint == f.fingerprint
                and failed.settings == failure_key(chunker, loading)
            ):
                result.known_failures.append(KnownFailure(f, failed.reason, prev))
            else:
                result.to_load.append(PlannedFile(f, chunker, prev))
    for sid, entry in manifest.items():
        # A source that could not be listed (unmounted disk, outage) is not "all deleted".
        if sid not in listed and entry.source not in errors:
            result.deleted.append(entry)
    return result
