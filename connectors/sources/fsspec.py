"""Any fsspec URL as a document source: s3://, gs://, az://, http(s):// listings.

Objects are listed with the filesystem's own metadata and read one at a time, so a sync
downloads only the files it must (re)load. Credentials come from each library's usual
environment (``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``); the
storage options (which may name an endpoint) are never logged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.spec import AbstractFileSystem

from headwater.connectors.sources.local import globs
from headwater.ingest.errors import ConfigError, HeadwaterError, LoadError
from headwater.ingest.models import SourceFile
from headwater.ingest.source import redact_url

EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
    "http": "http",
    "https": "http",
}
"""URL scheme -> the headwater extra that installs its filesystem."""

_VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash", "Content-MD5", "Digest")
_MTIME_KEYS = ("LastModified", "last_modified", "mtime", "updated", "Last-Modified", "modified")
_HTTP = frozenset({"http", "https"})


def filesystem_class(url: str, where: str) -> type[AbstractFileSystem]:
    """The fsspec class for the URL's scheme; a ConfigError names the extra to install."""
    protocol = url.split("://", 1)[0].lower()
    try:
        cls: type[AbstractFileSystem] = fsspec.get_filesystem_class(protocol)
    except ImportError:
        extra = EXTRAS.get(protocol)
        fix = (
            f"pip install 'headwater[{extra}]'"
            if extra
            else f"install the fsspec implementation for {protocol}://"
        )
        raise ConfigError(
            f"{where}: {protocol}:// URLs need an optional dependency: {fix}"
        ) from None
    except ValueError:
        raise ConfigError(f"{where}: no fsspec filesystem handles {protocol}:// URLs") from None
    return cls


def fingerprint(info: Mapping[str, Any]) -> str | None:
    """Size, version tag (etag, generation) and modification time; None when none is known."""
    version = next((info[k] for k in _VERSION_KEYS if info.get(k)), None)
    mtime = next((info[k] for k in _MTIME_KEYS if info.get(k)), None)
    if version is None and mtime is None:
        return None
    return f"{info.get('size')}:{version or ''}:{mtime or ''}"


class FsspecSource:
    """Objects under a URL, filtered by the same include/exclude globs as a local folder.

    The fingerprint comes from the listing's metadata (etag or generation, size, modified
    time), so unchanged objects are never downloaded. Where a filesystem reports none of
    these (a plain HTTP server), the object is read and its content hash decides.
    """

    def __init__(
        self,
        name: str,
        url: str,
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        storage_options: Mapping[str, Any] | None = None,
        max_file_mb: float | None = None,
    ) -> None:
        filesystem_class(url, f"sources.{name}.path")
        self.name = name
        self.url = url
        self.location = redact_url(url)
        self.include = globs(include)
        self.exclude = globs(exclude)
        self.max_file_mb = max_file_mb
        self._storage_options = dict(storage_options or {})
        self._http = url.split("://", 1)[0].lower() in _HTTP

    def __repr__(self) -> str:
        return f"FsspecSource({self.name!r}, {self.location!r})"

    @cached_property
    def _fs_root(self) -> tuple[AbstractFileSystem, str]:
        fs, root = url_to_fs(self.url, **self._storage_options)
        return fs, root.rstrip("/")

    def list_files(self) -> Iterator[SourceFile]:
        fs, root = self._fs_root
        # fsspec caches listings per filesystem instance, and instances per process: a
        # scheduled flow that syncs every few minutes must see the objects as they are now.
        fs.invalidate_cache()
        try:
            found: dict[str, dict[str, Any]] = fs.find(root, detail=True, withdirs=False)
        except FileNotFoundError:
            raise HeadwaterError(f"source {self.name!r}: {self.location} does not exist") from None
        if not found and not self._container_exists(fs, root):
            # An empty listing deletes every document of the source; believe it only when
            # the bucket (or the listed page) is really there.
            raise HeadwaterError(f"source {self.name!r}: {self.location} does not exist")
        for full in sorted(found):
            rel = self._relative(full, root)
            if rel is None or not self.include.match_file(rel) or self.exclude.match_file(rel):
                continue
            info = found[full]
            tag = fingerprint(info)
            if tag is None or info.get("size") is None:
                # Listings of some filesystems (HTTP links) carry no metadata; ask per file.
                try:
                    info = fs.info(full)
                except FileNotFoundError:
                    continue  # a dead link, or an object deleted mid-listing: it is not there
                tag = fingerprint(info)
            yield SourceFile(
                source=self.name,
                path=rel,
                uri=fs.unstrip_protocol(full),
                size=int(info.get("size") or 0),
                # Nothing to compare: a fingerprint that never matches, so the object is
                # read every run and its content hash decides whether it changed.
                fingerprint=tag or f"unknown:{time.time_ns()}",
            )

    def _relative(self, full: str, root: str) -> str | None:
        if full == root:
            return full.rsplit("/", 1)[-1]
        if not full.startswith(root + "/"):
            return None
        rel = full[len(root) + 1 :]
        if self._http and ("?" in rel or "#" in rel):
            return None  # sort links and anchors of a directory page, not files
        return rel

    def _container_exists(self, fs: AbstractFileSystem, root: str) -> bool:
        container = root if self._http else root.split("/", 1)[0]
        return bool(fs.exists(container))

    def read_bytes(self, file: SourceFile) -> bytes:
        if self.max_file_mb is not None and file.size > self.max_file_mb * 2**20:
            # Refused before the download: a huge object would be fetched on every retry.
            raise LoadError(
                file.path,
                f"object is {file.size / 2**20:.3g} MB, over loading.max_file_mb="
                f"{self.max_file_mb}; not downloaded",
            )
        fs, _ = self._fs_root
        try:
            data: bytes = fs.cat_file(file.uri)
        except OSError:
            raise
        except Exception as exc:
            # A client error for one object (throttling, a dropped connection) fails that
            # file, and the run goes on.
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        return data
