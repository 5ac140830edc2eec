"""Stable ids: the same chunk of the same document under the same settings keeps its id.

An id depends on (source id, chunker settings, chunk text, occurrence). Occurrence
counts earlier chunks of the same document with identical text, so repeated
boilerplate gets distinct ids that do not shift when unrelated text is edited.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

ID_LENGTH = 32
"""Hex characters in a chunk id (128 bits): collisions are not a practical concern."""


def settings_key(settings: Mapping[str, Any]) -> str:
    """A short digest of chunker settings; any change to them changes every id."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def chunk_id(source_id: str, settings: str, text: str, occurrence: int) -> str:
    h = hashlib.sha256()
    for part in (source_id, settings, text, str(occurrence)):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:ID_LENGTH]


def chunk_ids(source_id: str, settings: str, texts: Iterable[str]) -> list[str]:
    """Ids for a document's chunk texts, in order, numbering repeated texts."""
    seen: Counter[str] = Counter()
    ids = []
    for text in texts:
        ids.append(chunk_id(source_id, settings, text, seen[text]))
        seen[text] += 1
    return ids


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()
