"""`headwater eval --convention chroma` against a separate implementation of the metric of
Chroma's report "Evaluating Chunking Strategies for Retrieval" (Smith & Troynikov, 2024).

The reference implementation below is written from the report's definition, with
character sets rather than the interval arithmetic of headwater.ingest.evaluation:
a retrieved chunk sits where its text FIRST occurs in its corpus; recall = reference
characters covered / reference characters; IoU = covered / (sum of retrieved chunk
lengths + reference characters not covered); precision = covered / sum of retrieved
chunk lengths.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from headwater.ingest.evaluation import CharSpan, score

from .test_cli import headwater

Ref = tuple[str, int, int]
"""(corpus, start, end) in the corpus text."""


def report_metric(
    corpora: dict[str, str], references: list[Ref], retrieved: list[tuple[str, str]]
) -> tuple[float, float, float]:
    """(recall, IoU, precision) for one question; `retrieved` is (corpus, chunk text)."""
    placed = [(c, corpora[c].find(text), len(text)) for c, text in retrieved]
    got = {(c, i) for c, start, n in placed for i in range(start, start + n)}
    covered = {(c, i) for c, s, e in references for i in range(s, e)} & got
    uncovered = sum((c, i) not in got for c, s, e in references for i in range(s, e))
    ref_total = sum(e - s for _, s, e in references)
    got_total = sum(n for _, _, n in placed)
    return (
        len(covered) / ref_total,
        len(covered) / (got_total + uncovered) if got_total + uncovered else 0.0,
        len(covered) / got_total if got_total else 0.0,
    )


def test_score_agrees_with_the_reference_metric_on_random_spans() -> None:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta"]
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(40))  # repeats: first occurrence
        corpora = {"a": text}
        refs: list[Ref] = []
        for _ in range(rng.randint(1, 2)):
            s = rng.randrange(0, len(text) - 20)
            refs.append(("a", s, s + rng.randint(5, 20)))
        if len(refs) == 2 and refs[0][2] > refs[1][1] and refs[1][2] > refs[0][1]:
            continue  # the report's references never overlap
        chunks = []
        for _ in range(rng.randint(1, 5)):
            s = rng.randrange(0, len(text) - 30)
            chunks.append(("a", text[s : s + rng.randint(10, 30)]))
        recall, iou, precision = report_metric(corpora, refs, chunks)
        spans = []
        for c, t in chunks:
            first = corpora[c].find(t)
            spans.append(CharSpan(c, first, first + len(t)))
        got = score([CharSpan(*r) for r in refs], spans, "chroma")
        assert (got.recall, got.iou, got.precision) == pytest.approx((recall, iou, precision))


PARAGRAPHS = [
    "The lighthouse keeper climbs one hundred and twelve steps every evening to light the lamp.",
    "Salmon swim upstream in autumn to lay their eggs in the gravel beds where they hatched.",
    "The bakery opens at six and sells out of rye bread before nine on Saturdays.",
    "Volcanic soil on the island grows coffee with a bright, acidic flavour.",
    "Night trains to the capital leave from platform four and carry sleeping cars.",
    "The library lends telescopes to members for two weeks at a time.",
]


def test_headwater_eval_matches_the_reference_metric(tmp_path: Path) -> None:
    # The bakery paragraph is repeated: a chunk of its second copy is placed at the first.
    corpora = {
        "coast": "\n\n".join([PARAGRAPHS[0], PARAGRAPHS[2], PARAGRAPHS[1], PARAGRAPHS[2]]),
        "island": "\n\n".join(PARAGRAPHS[3:]),
    }
    (tmp_path / "docs").mkdir()
    for name, text in corpora.items():
        (tmp_path / "docs" / f"{name}.txt").write_text(text)
    asks = [
        ("How many steps does the keeper climb?", "coast", 0, "one hundred and twelve steps"),
        ("When does the rye bread sell out?", "coast", 3, "sells out of rye bread before nine"),
        ("Why do salmon swim upstream?", "coast", 2, "to lay their eggs"),
        ("What grows in volcanic soil?", "island", 0, "grows coffee"),
        ("Which platform do night trains leave from?", "island", 1, "platform four"),
        ("What does the library lend?", "island", 2, "lends telescopes to members"),
    ]
    rows = []
    for question, corpus, paragraph, excerpt in asks:
        text, parts = corpora[corpus], corpora[corpus].split("\n\n")
        para_start = sum(len(p) + 2 for p in parts[:paragraph])
        start = text.index(excerpt, para_start)
        ref = {"content": excerpt, "start_index": start, "end_index": start + len(excerpt)}
        rows.append([question, json.dumps([ref]), corpus])
    with (tmp_path / "questions.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["question", "references", "corpus_id"], *rows])
    (tmp_path / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n'
        '[eval]\nk = 3\n[eval.strategies.small]\nstrategy = "recursive"\nunit = "chars"\n'
        "chunk_size = 60\nchunk_overlap = 10\n"
    )
    out = headwater("eval", "-q", "questions.csv", "--convention", "chroma", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)["strategies"]

    ours = []
    for (_, corpus, _, _), row, q in zip(asks, rows, result["questions"], strict=True):
        (ref,) = json.loads(row[1])
        refs = [(corpus, ref["start_index"], ref["end_index"])]
        chunks = []
        for span in q["retrieved"]:
            name = Path(span["source_id"].split(":", 1)[1]).stem
            chunks.append((name, corpora[name][span["start"] : span["end"]]))
        ours.append(report_metric(corpora, refs, chunks))
    n = len(ours)
    recall, iou, precision = (100 * sum(x[i] for x in ours) / n for i in range(3))
    assert abs(100 * result["recall"] - recall) <= 0.5
    assert abs(100 * result["iou"] - iou) <= 0.5
    assert abs(100 * result["precision"] - precision) <= 0.5
    assert recall > 0  # the retriever found something, so the comparison means something
