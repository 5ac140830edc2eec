"""Run unstructured's spaCy pipeline over many texts at once, ahead of classification.

unstructured classifies each text element (title, narrative text, list item) with a
spaCy pipeline (tok2vec, tagger, parser) that it calls once per text, and that is a
quarter of all PDF parsing time (benchmarks/results/parse_profile.md). ``nlp.pipe`` over
a page's texts computes the same sentences and tags about four times faster. `prepared`
runs it ahead for the texts about to be classified and lets unstructured's
``_process`` find their documents; a text not prepared is processed as before, so what
comes out is unchanged (tests/test_parse_digest.py checks it on the bench corpus).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_installed = False
_install_lock = threading.Lock()
_BATCH = 128


def _install() -> None:
    """Route unstructured's ``_process`` through the prepared documents (once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        import unstructured.nlp.tokenize as tokenize

        if not hasattr(tokenize, "_process") or not hasattr(tokenize, "_get_nlp"):
            raise RuntimeError(
                "unstructured.nlp.tokenize._process is gone; update headwater.ingest.spacy_batch"
            )
        original = tokenize._process

        def process(text: str) -> Any:
            docs = getattr(_local, "docs", None)
            if docs:
                doc = docs.get(str(text))
                if doc is not None:
                    return doc
            return original(text)

        tokenize._process = process
        _installed = True


def _wanted(texts: Iterable[str], limit: int) -> list[str]:
    """The texts unstructured may hand spaCy: each one, and its lower case where it is all
    capitals (``contains_verb`` tags that instead), once each, none past the length
    unstructured caches."""
    seen: dict[str, None] = {}
    for text in texts:
        for variant in (text, text.lower()) if text.isupper() else (text,):
            if variant.strip() and len(variant) <= limit and not variant.isnumeric():
                seen.setdefault(variant, None)
    return list(seen)


@contextmanager
def prepared(texts: Iterable[str]) -> Iterator[None]:
    """Within the block, unstructured's sentence splitting, word splitting and tagging of
    `texts` use documents computed here in one batch. Call
    ``loading.ensure_spacy_model()`` first, as for any classification."""
    import unstructured.nlp.tokenize as tokenize

    _install()
    wanted = _wanted(texts, tokenize.MAX_CACHEABLE_CHARS)
    before = getattr(_local, "docs", None)
    nlp = tokenize._get_nlp()
    _local.docs = dict(zip(wanted, nlp.pipe(wanted, batch_size=_BATCH), strict=True))
    try:
        yield
    finally:
        _local.docs = before
