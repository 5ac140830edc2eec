"""A local folder as a document source, confined to its root."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from enum import Enum
from pathlib import Path

import pathspec

from headwater.ingest.errors import HeadwaterError, LoadError
from headwater.ingest.models import SourceFile


def globs(patterns: Sequence[str]) -> pathspec.PathSpec:
    """Patterns with .gitignore semantics: ``*.pdf`` matches at any depth, ``a/**`` below a/."""
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class Named(Enum):
    """What a path named by a scoped run (a watcher's event) turns out to be."""

    GONE = "gone"
    """Nothing there (deleted, renamed away): listed as nothing, so its chunks go."""
    IGNORED = "ignored"
    """Left out by include/exclude: listed as nothing, as a full listing would."""
    FILE = "file"
    """A regular file: listed."""
    SPECIAL = "special"
    """A pipe, socket or device: listed, and it fails with its reason when read."""
    FOLDER = "folder"
    """A folder (moved in): everything below it is listed."""
    LIST_ALL = "list all"
    """A symbolic link on the way, or a path not in its plain form: the full listing
    decides (where links lead, loops, what is outside the root), cut to the path."""


def named_kind(rel: str, mode: int | None, wanted: bool, *, links_above: bool = False) -> Named:
    """How to list the named path `rel` given its `lstat` mode (None: it does not exist),
    whether include/exclude want it, and whether a folder above it is a link."""
    if not _plain(rel) or links_above or (mode is not None and stat.S_ISLNK(mode)):
        return Named.LIST_ALL
    if mode is None:
        return Named.GONE
    if stat.S_ISDIR(mode):
        return Named.FOLDER  # its files are filtered one by one
    if not wanted:
        return Named.IGNORED
    return Named.FILE if stat.S_ISREG(mode) else Named.SPECIAL


def _plain(rel: str) -> bool:
    """A relative path as a listing writes it: no '.', '..', empty or leading parts."""
    parts = rel.split("/")
    return bool(rel) and all(p not in ("", ".", "..") for p in parts)


def _links_above(root: Path, rel: str) -> bool:
    """Whether a folder between `root` and `rel` is a symbolic link."""
    folder = root
    for part in rel.split("/")[:-1]:
        folder = folder / part
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            return True
    return False


class LocalSource:
    """Files under a root folder, filtered by include/exclude globs.

    The fingerprint is size plus modification time in nanoseconds: cheap to read and it
    changes whenever a write happens. Paths are resolved: a symbolic link that leads
    outside the root is listed (so the report names it) but never read unless
    `follow_symlinks`; broken links, link loops and things that are not regular files
    are listed the same way and fail with their reason when read.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        include: Sequence[str] = ("**/*",),
        exclude: Sequence[str] = (),
        follow_symlinks: bool = False,
    ) -> None:
        self.name = name
        self.root = root
        self.include = globs(include)
        self.exclude = globs(exclude)
        self.follow_symlinks = follow_symlinks

    def _wanted(self, rel: str) -> bool:
        return bool(self.include.match_file(rel)) and not self.exclude.match_file(rel)

    def list_files(self) -> Iterator[SourceFile]:
        root = self._checked_root()
        yield from self._walk(root, root, "")

    def list_named(self, paths: Sequence[str]) -> Iterator[SourceFile]:
        """Each path's own entry, no listing of the folders around it: a watcher's
        batch costs a few stats, not one per file of the source."""
        root = self._checked_root()
        done: set[str] = set()
        everything: list[SourceFile] | None = None
        for rel in sorted(set(paths)):
            full = root / rel
            try:
                st = os.lstat(full) if _plain(rel) else None
                links = st is not None and _links_above(root, rel)
            except (FileNotFoundError, NotADirectoryError):
                kind = Named.GONE
            except OSError:  # an unreadable folder: its listing says what to report
                kind = Named.LIST_ALL
            else:
                mode = None if st is None else st.st_mode
                kind = named_kind(rel, mode, self._wanted(rel), links_above=links)
            found: Iterable[SourceFile]
            if kind is Named.FILE and st is not None:
                found = [self._file(rel, str(full), st)]
            elif kind is Named.SPECIAL:
                found = [self._problem(rel, full, "special")]
            elif kind is Named.FOLDER:
                found = self._walk(root, full, rel + "/")
            elif kind is Named.LIST_ALL:
                if everything is None:
                    everything = list(self._walk(root, root, ""))
                found = (f for f in everything if f.path == rel or f.path.startswith(rel + "/"))
            else:
                continue
            for f in found:
                if f.path not in done:
                    done.add(f.path)
                    yield f

    def _checked_root(self) -> Path:
        if not self.root.is_dir():
            raise HeadwaterError(f"source {self.name!r}: folder {self.root} does not exist")
        return self.root.resolve()

    def _walk(self, root: Path, start: Path, prefix: str) -> Iterator[SourceFile]:
        """The files below the folder `start` (whose path is `prefix`)."""
        seen = {_key(root.stat())}
        with contextlib.suppress(OSError):  # a folder gone since: reported as listing it is
            seen.add(_key(start.stat()))
        folders: list[tuple[Path, str]] = [(start, prefix)]
        while folders:
            folder, prefix = folders.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
            except OSError as exc:
                if prefix and self._wanted(prefix.rstrip("/")):
                    yield self._problem(prefix.rstrip("/"), folder, "folder")
                elif not prefix:
                    raise HeadwaterError(
                        f"source {self.name!r}: cannot list {root}: {exc}"
                    ) from exc
                continue
            subfolders = []
            for entry in reversed(entries):
                rel = prefix + entry.name
                # A Path per entry costs more than its stat; plain files need the string.
                full = entry.path
                try:
                    is_link = entry.is_symlink()
                    st = os.stat(entry.path) if is_link else entry.stat(follow_symlinks=False)
                except OSError:
                    # A broken link or a link loop: listed, so the reason is reported.
                    if self._wanted(rel):
                        yield self._problem(rel, Path(full), "link")
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if is_link and not self._follow_folder(Path(full), root):
                        if self._outside(Path(full), root) and self._wanted(rel):
                            yield self._problem(rel, Path(full), "link")
                        continue
                    if _key(st) in seen:
                        continue  # reached twice through links: a loop, or listed already
                    seen.add(_key(st))
                    subfolders.append((Path(full), rel + "/"))
                    continue
                if not self._wanted(rel):
                    continue
                leaves = is_link and not self.follow_symlinks and self._outside(Path(full), root)
                if leaves or not stat.S_ISREG(st.st_mode):
                    yield self._problem(rel, Path(full), "special")
                    continue
                yield self._file(rel, full, st)
            folders.extend(reversed(subfolders))

    def _file(self, rel: str, full: str, st: os.stat_result) -> SourceFile:
        return SourceFile(
            source=self.name, path=rel, uri=full, size=st.st_size, fingerprint=_stamp(st)
        )

    def _follow_folder(self, link: Path, root: Path) -> bool:
        # A link to a folder inside the root would list the same files twice.
        return self.follow_symlinks and self._outside(link, root)

    @staticmethod
    def _outside(path: Path, root: Path) -> bool:
        try:
            return not path.resolve(strict=True).is_relative_to(root)
        except (OSError, RuntimeError):
            return False

    def _problem(self, rel: str, full: Path, what: str) -> SourceFile:
        """A listed entry that cannot be read; `read_bytes` raises its reason."""
        try:
            st = full.lstat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "gone"
        return SourceFile(
            source=self.name, path=rel, uri=str(full), size=0, fingerprint=f"{what}:{stamp}"
        )

    def check(self, file: SourceFile) -> Path:
        """The real path to read `file` from; raises LoadError if it must not be read."""
        full = Path(file.uri)
        root = self.root.resolve()
        try:
            real = full.resolve(strict=True)
        except RuntimeError:  # Python < 3.13 reports a link loop this way
            raise LoadError(
                file.path, "symbolic link loop; the link leads back to itself"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LoadError(
                    file.path, "symbolic link loop; the link leads back to itself"
                ) from None
            if full.is_symlink():
                raise LoadError(
                    file.path,
                    f"broken symbolic link: its target {os.readlink(full)} does not exist",
                ) from None
            raise LoadError(file.path, f"cannot read: {exc.strerror or exc}") from None
        if not real.is_relative_to(root) and not self.follow_symlinks:
            raise LoadError(
                file.path,
                f"symbolic link leads outside the source folder (to {real}); not followed: set "
                f"sources.{self.name}.follow_symlinks = true to ingest it",
            )
        mode = real.stat().st_mode
        if stat.S_ISDIR(mode):
            raise LoadError(file.path, f"cannot list folder {file.path}: permission denied")
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise LoadError(file.path, f"{kind}, not a regular file; not read")
        return real

    def read_bytes(self, file: SourceFile) -> bytes:
        real = self.check(file)
        try:
            with real.open("rb") as fh:
                before = os.fstat(fh.fileno())
                data = fh.read()
                after = os.fstat(fh.fileno())
        except PermissionError:
            raise LoadError(file.path, "cannot read: permission denied") from None
        except OSError as exc:
            raise LoadError(file.path, f"cannot read: {exc.strerror or exc}") from None
        listed, now = file.fingerprint, f"{after.st_size}:{after.st_mtime_ns}"
        if _stamp(before) != now or len(data) != after.st_size or listed != now:
            raise LoadError(
                file.path,
                "file changed while being read (size or modification time moved since it was "
                "listed; still being written?); it is retried on the next run",
            )
        return data


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}"
