"""The faster parsing paths give what the old ones gave: pdfminer's text-box grouping,
spaCy run in batches, and the bench corpus parsed to the same elements as before."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pdfminer.layout import (
    LAParams,
    LTLayoutContainer,
    LTTextBoxHorizontal,
    LTTextBoxVertical,
    LTTextGroup,
)

from benchmarks.parse_digest import digest_file
from headwater.ingest import pdf_layout
from headwater.ingest.loading import ensure_spacy_model
from headwater.ingest.spacy_batch import prepared

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "bench-corpus"
DIGESTS = ROOT / "tests" / "fixtures" / "bench_parse_digests.json"


def _boxes(n: int, seed: int, vertical_every: int = 0) -> list[Any]:
    rng = random.Random(seed)
    boxes = []
    for i in range(n):
        box = (
            LTTextBoxVertical()
            if vertical_every and i % vertical_every == 0
            else LTTextBoxHorizontal()
        )
        x, y = rng.uniform(0, 560), rng.uniform(0, 760)
        box.set_bbox((x, y, x + rng.uniform(5, 200), y + rng.uniform(4, 40)))
        box.index = i
        boxes.append(box)
    return boxes


def _shape(obj: Any) -> Any:
    return [_shape(o) for o in obj] if isinstance(obj, LTTextGroup) else obj.index


@pytest.mark.parametrize(("n", "vertical_every"), [(45, 0), (150, 0), (120, 7)])
def test_fast_grouping_builds_pdfminers_groups(n: int, vertical_every: int) -> None:
    page = LTLayoutContainer((0, 0, 800, 800))
    boxes = _boxes(n, seed=n, vertical_every=vertical_every)
    slow = pdf_layout._original(page, LAParams(), boxes)
    fast = pdf_layout.group_textboxes(page, LAParams(), boxes)
    assert [type(g) for g in fast] == [type(g) for g in slow]
    assert [_shape(g) for g in fast] == [_shape(g) for g in slow]


def test_batched_spacy_gives_the_same_sentences_and_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    from unstructured.nlp import tokenize

    ensure_spacy_model()
    texts = [
        "The committee met on Tuesday. It approved the budget for 2016.",
        "ANNUAL REPORT OF THE BOARD",
        "Figure 3: results by region (n = 1,024).",
        "see section 4.2 e.g. the appendix",
    ]
    plain = [
        (tokenize.sent_tokenize(t), tokenize.pos_tag(t.lower() if t.isupper() else t))
        for t in texts
    ]
    for cached in (tokenize._tokenize_for_cache, tokenize.pos_tag, tokenize._process_cached):
        cached.cache_clear()
    with prepared(texts):
        # Every text, and the lower case of the all-capitals one, comes from the batch.
        monkeypatch.setattr(tokenize, "_run_pipeline", lambda text: pytest.fail(text))
        batched = [
            (tokenize.sent_tokenize(t), tokenize.pos_tag(t.lower() if t.isupper() else t))
            for t in texts
        ]
    assert batched == plain


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/bench-corpus is not here")
def test_bench_corpus_files_parse_as_they_did_before_the_faster_paths() -> None:
    # Digests recorded by the parser before spacy_batch and pdf_layout existed
    # (`python -m benchmarks.parse_digest --out`): same text, category, depth, page.
    recorded: dict[str, str] = json.loads(DIGESTS.read_text())
    differ = [rel for rel, want in recorded.items() if digest_file(CORPUS, rel)[0] != want]
    assert differ == []
