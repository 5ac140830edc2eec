"""Compare what the sources list with what the manifest holds: new, changed, unchanged, deleted.

A matching fingerprint short-cuts (the file is not opened); otherwise the content hash,
computed after reading, decides (see `SyncEngine.prepare`).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
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
    unchanged: int = 0
    """Files whose fingerprint and chunker match the manifest: not opened, only counted, so
    a sync with nothing to do holds no object per file."""
    deleted: list[ManifestEntry] = field(default_factory=list)
    known_failures: list[KnownFailure] = field(default_factory=list)

    def extend(self, other: SyncPlan) -> None:
        self.to_load += other.to_load
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.known_failures += other.known_failures


def plan_listed(
    files: Iterable[SourceFile],
    manifest: Mapping[str, ManifestEntry],
    chunker: str,
    failures: Mapping[str, FailureEntry] | None = None,
    loading: str = "",
) -> SyncPlan:
    """What to do with listed files of one source, all of them or a batch: `manifest` and
    `failures` must hold at least these files' rows; `chunker` is the source's chunker
    settings key. Says nothing of deletions (see `deleted`)."""
    failures = failures or {}
    result = SyncPlan()
    for f in files:
        prev = manifest.get(f.source_id)
        failed = failures.get(f.source_id)
        if prev and prev.fingerprint == f.fingerprint and prev.chunker == chunker:
            result.unchanged += 1
        elif (
            failed
            and failed.fingerprint == f.fingerprint
            and failed.settings == failure_key(chunker, loading)
        ):
            result.known_failures.append(KnownFailure(f, failed.reason, prev))
        else:
            result.to_load.append(PlannedFile(f, chunker, prev))
    return result


def deleted(
    unlisted: Iterable[ManifestEntry], source_errors: Container[str]
) -> list[ManifestEntry]:
    """Manifest rows that no listing showed: deleted, except those of a source that could
    not be listed (an unmounted disk, an outage is not "all deleted")."""
    return [e for e in unlisted if e.source not in source_errors]


def plan(
    listings: Mapping[str, Sequence[SourceFile]],
    manifest: Mapping[str, ManifestEntry],
    chunkers: Mapping[str, str],
    source_errors: Mapping[str, str] | None = None,
    failures: Mapping[str, FailureEntry] | None = None,
    loading: str = "",
) -> SyncPlan:
    """The whole plan from listings and manifest rows in memory: `listings` and `chunkers`
    are keyed by source name; `manifest` and `failures` (content failures of earlier runs)
    by source id; `loading` is the loading settings' key. The engine makes the same plan
    a batch of files at a time (`plan_listed`, `deleted`)."""
    result = SyncPlan()
    for name, files in listings.items():
        result.extend(plan_listed(files, manifest, chunkers[name], failures, loading))
    listed = {f.source_id for files in listings.values() for f in files}
    unlisted = (e for sid, e in manifest.items() if sid not in listed)
    result.deleted = deleted(unlisted, source_errors or {})
    return result
