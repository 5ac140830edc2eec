"""The retrieval evaluation: metrics by hand, question files, and `headwater eval` end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from headwater.compose import build_sources
from headwater.config import HeadwaterConfig, load_config
from headwater.connectors.registry import create_store
from headwater.ingest.config import EvalVariant, StoreConfig
from headwater.ingest.embedding import DEFAULT_MODEL, Embedder
from headwater.ingest.evaluation import (
    CharSpan,
    EvalError,
    Evaluation,
    RankScores,
    default_variants,
    describe,
    find_excerpt,
    load_documents,
    load_questions,
    rank_scores,
    score,
    select_variants,
)
from headwater.ingest.store import VectorStore

from .conftest import FIXTURES, ROOT, SAMPLE_DOCS, make_config
from .test_cli import headwater

SAMPLE_QUESTIONS = FIXTURES / "eval_sample_docs.json"
BENCH = ROOT.parent / "shared" / "bench-corpus"


def test_scores_on_a_case_checked_by_hand() -> None:
    # References: a[10:20] and a[30:40], 20 characters.
    # Retrieved: a[15:35], a[30:50] (overlapping: together a[15:50], 35 characters) and
    # b[0:10], 45 characters in all. Shared: a[15:20] + a[30:40] = 15 characters.
    refs = [CharSpan("a", 10, 20), CharSpan("a", 30, 40)]
    got = [CharSpan("a", 15, 35), CharSpan("a", 30, 50), CharSpan("b", 0, 10)]
    s = score(refs, got)
    assert s.recall == pytest.approx(15 / 20)  # 0.75
    assert s.precision == pytest.approx(15 / 45)  # 0.333
    assert s.iou == pytest.approx(15 / (20 + 45 - 15))  # 0.3

    assert score(refs, []) == score(refs, [CharSpan("b", 10, 20)])  # nothing shared: all 0
    assert score(refs, []).recall == 0 and score(refs, []).iou == 0
    exact = score(refs, [CharSpan("a", 30, 40), CharSpan("a", 10, 20)])
    assert (exact.recall, exact.precision, exact.iou) == (1, 1, 1)
    # The same characters in another document are not the reference.
    assert score(refs, [CharSpan("c", 10, 20)]).recall == 0


def test_excerpts_are_found_verbatim_or_across_whitespace() -> None:
    text = "Title\n\nFirst paragraph, one line.\n\nSecond  paragraph."
    assert find_excerpt(text, "First paragraph") == (7, 22)
    start, end = find_excerpt(text, "one line. Second paragraph.") or (0, 0)
    assert text[start:end] == "one line.\n\nSecond  paragraph."
    assert find_excerpt(text, "Third paragraph") is None


def write_questions(path: Path, questions: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"questions": questions}))
    return path


def test_question_file_errors_name_the_question(tmp_path: Path) -> None:
    texts = {"docs:a.txt": "Bike storage is in the basement.", "other:a.txt": "Same path."}
    ok = write_questions(
        tmp_path / "ok.json",
        [{"question": "Where?", "references": [{"source": "docs:a.txt", "text": "basement"}]}],
    )
    (q,) = load_questions(ok, texts).questions
    assert q.id == "q1" and q.references == (CharSpan("docs:a.txt", 23, 31),)

    missing = write_questions(
        tmp_path / "m.json",
        [
            {
                "id": "storage",
                "question": "Where do bikes go?",
                "references": [{"source": "docs:a.txt", "text": "in the attic"}],
            }
        ],
    )
    with pytest.raises(EvalError, match=r"storage docs:a.txt: 'in the attic': not in the loaded"):
        load_questions(missing, texts)
    ambiguous = write_questions(
        tmp_path / "a.json",
        [{"question": "?", "references": [{"source": "a.txt", "text": "Same"}]}],
    )
    with pytest.raises(EvalError, match=r"question q1 .*several sources.*source:path"):
        load_questions(ambiguous, texts)
    unknown = write_questions(
        tmp_path / "u.json",
        [{"question": "?", "references": [{"source": "nope.pdf", "text": "x"}]}],
    )
    with pytest.raises(EvalError, match=r"q1 nope.pdf: 'x': no loaded document 'nope.pdf'"):
        load_questions(unknown, texts)
    (tmp_path / "bad.json").write_text('{"questions": [{"question": "?"}]}')
    with pytest.raises(EvalError, match=r"questions\.0\.references: Field required"):
        load_questions(tmp_path / "bad.json", texts)


def test_every_unfound_reference_is_listed_with_the_reason(tmp_path: Path) -> None:
    # The file has "<unk>" tokens that a loader dropped; offsets count in the file.
    file_text = "Intro line.\n\nThe <unk> river floods in spring.\n\nBridges close at night."
    loaded = "Intro line.\n\nThe river floods in spring.\n\nBridges close at night."
    texts, files = {"c:river.md": loaded}, {"c:river.md": file_text}
    start = file_text.index("Bridges")
    rows = [
        ("When do bridges close?", [("Bridges close at night.", start)], "river"),
        ("What floods?", [("The <unk> river floods", 13)], "river"),
        ("Which lake?", [("Lake Tahoe", None)], "river"),
        ("Which sea?", [("x", None)], "sea"),
    ]
    with (tmp_path / "q.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "references", "corpus_id"])
        for question, refs, corpus in rows:
            spans = [
                {"content": text, "start_index": at, "end_index": at + len(text)}
                if at is not None
                else {"content": text, "start_index": 0, "end_index": len(text)}
                for text, at in refs
            ]
            w.writerow([question, json.dumps(spans), corpus])
    with pytest.raises(EvalError) as info:
        load_questions(tmp_path / "q.csv", texts, files=files)
    message = str(info.value)
    assert "3 reference(s) not found (--skip-missing" in message
    assert "river-2 c:river.md: 'The <unk> river floods': the loader rewrote the text: " in message
    assert "the file has '<unk> river floods', the loaded text 'river floods" in message
    assert (
        "river-3 c:river.md: 'Lake Tahoe': the file's characters 0..10 are 'Intro line" in message
    )
    assert "sea-4 sea: 'x': no loaded document 'sea'" in message

    kept = load_questions(tmp_path / "q.csv", texts, files=files, skip_missing=True)
    (q,) = kept.questions  # the only question with a reference found
    (ref,) = q.references
    assert loaded[ref.start : ref.end] == "Bridges close at night."
    assert [m.question for m in kept.missing] == ["river-2", "river-3", "sea-4"]

    # Offsets alone (no excerpt) work too, in a JSON file.
    offsets = write_questions(
        tmp_path / "o.json",
        [
            {
                "question": "?",
                "references": [{"source": "river.md", "start": start, "end": start + 7}],
            }
        ],
    )
    (q,) = load_questions(offsets, texts, files=files).questions
    assert loaded[q.references[0].start : q.references[0].end] == "Bridges"


def test_chroma_convention_sums_retrieved_lengths() -> None:
    refs = [CharSpan("a", 10, 20), CharSpan("a", 30, 40)]
    got = [CharSpan("a", 15, 35), CharSpan("a", 30, 50), CharSpan("b", 0, 10)]
    s = score(refs, got, "chroma")
    # Shared 15 as before; retrieved 20 + 20 + 10 = 50 (the overlap counted twice);
    # reference characters not covered: a[10:15] = 5.
    assert s.recall == pytest.approx(15 / 20)
    assert s.precision == pytest.approx(15 / 50)
    assert s.iou == pytest.approx(15 / (50 + 5))


def test_rank_metrics_count_chunks_that_overlap_a_reference() -> None:
    refs = [CharSpan("a", 10, 20)]
    miss, hit = CharSpan("a", 40, 50), CharSpan("a", 15, 25)
    r = rank_scores(refs, [miss, hit, miss], relevant_total=2, k=3)
    assert r.hit == 1 and r.reciprocal_rank == pytest.approx(0.5)
    assert r.ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert rank_scores(refs, [miss], relevant_total=1, k=1) == RankScores(0, 0, 0)


def test_shipped_sample_question_set_matches_the_documents(tmp_path: Path) -> None:
    config = HeadwaterConfig(
        sources=[{"name": "sample_docs", "path": str(SAMPLE_DOCS)}], config_dir=tmp_path
    )
    corpus = load_documents(build_sources(config), config.loading)
    assert corpus.failures == {}
    texts = corpus.texts
    questions = load_questions(SAMPLE_QUESTIONS, texts).questions
    assert len(questions) >= 30
    assert {r.source_id for q in questions for r in q.references} == set(texts)  # all 11


@pytest.mark.skipif(not BENCH.is_dir(), reason=f"{BENCH} is not here")
def test_shipped_bench_question_set_matches_its_documents() -> None:
    config = load_config(ROOT / "benchmarks/eval/bench.toml")
    assert set(select_variants(config.eval)) >= {"recursive", "token", "headers", "semantic"}
    corpus = load_documents(build_sources(config), config.loading)
    assert corpus.failures == {} and 10 <= len(corpus.documents) <= 20
    questions = load_questions(ROOT / "benchmarks/eval/bench_questions.json", corpus.texts)
    questions = questions.questions
    assert len(questions) >= 30


def test_unknown_strategy_name_is_an_error() -> None:
    with pytest.raises(EvalError, match=r"unknown strategy name\(s\) fixed; known: recursive"):
        select_variants(HeadwaterConfig().eval, ["fixed"])


def test_built_in_variants_stay_available_beside_configured_ones() -> None:
    config = HeadwaterConfig(
        eval={"strategies": {"small": {"strategy": "token", "chunk_size": 1000, "mode": "hybrid"}}}
    )
    assert list(select_variants(config.eval)) == ["small"]
    both = select_variants(config.eval, ["small", "recursive"])
    assert both["small"].mode == "hybrid" and both["recursive"] == default_variants()["recursive"]
    # A chunk_size above MiniLM's window shows the size used.
    assert "chunk_size=254 (asked 1000)" in describe(both["small"], DEFAULT_MODEL)
    with pytest.raises(ValidationError, match=r"eval\.strategies\.bad\.mode"):
        HeadwaterConfig(eval={"strategies": {"bad": {"mode": "fuzzy"}}})


def test_headwater_eval_on_sample_docs(tmp_path: Path) -> None:
    rels = ("policies/leave-policy.docx", "engineering/oncall-runbook.html", "it/security-faq.txt")
    for rel in rels:
        (tmp_path / "docs" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DOCS / rel, tmp_path / "docs" / rel)
    shipped = json.loads(SAMPLE_QUESTIONS.read_text())["questions"]
    subset = [q for q in shipped if all(r["source"] in rels for r in q["references"])][:8]
    write_questions(tmp_path / "questions.json", subset)
    (tmp_path / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n'
        '[eval]\nk = 2\n[eval.strategies.small]\nstrategy = "token"\nchunk_size = 64\n'
        'chunk_overlap = 8\n[eval.strategies.sections]\nstrategy = "headers"\n'
        'context = "title+section"\n[eval.strategies.fused]\nstrategy = "token"\n'
        'chunk_size = 64\nchunk_overlap = 8\nmode = "hybrid"\n'
    )
    out = headwater(
        "eval",
        "--questions",
        "questions.json",
        "--strategies",
        "small,fused,sections",
        "--plot",
        "chart.svg",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["k"] == 2 and report["documents"] == 3 and report["questions"] == len(subset)
    assert [s["name"] for s in report["strategies"]] == ["small", "fused", "sections"]
    assert report["failed"] == {}
    small, fused, sections = report["strategies"]
    assert fused["settings"].endswith("mode=hybrid") and fused["chunks"] == small["chunks"]
    assert small["settings"].startswith("token chunk_size=64")
    assert sections["settings"].endswith("context=title+section")
    assert small["mean_tokens"] <= 64 and small["chunks"] > sections["chunks"]
    for s in report["strategies"]:
        assert 0 < s["recall"] <= 1 and 0 < s["precision"] <= 1 and 0 < s["iou"] <= s["precision"]
        assert 0 < s["hit_rate"] <= 1 and 0 < s["mrr"] <= s["hit_rate"] and 0 < s["ndcg"] <= 1
        assert len(s["questions"]) == len(subset)
        assert all(len(q["retrieved"]) == 2 for q in s["questions"])
        asked = {f"docs:{r['source']}" for q in subset for r in q["references"]}
        assert set(s["by_document"]) == asked
        assert sum(f["questions"] for f in s["by_document"].values()) >= len(subset)
        assert s["seconds"]["total"] > 0
    # fused searches the chunks small embedded: nothing new to embed.
    assert small["embedded"] > 0 and sections["embedded"] > 0 and fused["embedded"] == 0
    chart = (tmp_path / "chart.svg").read_text()
    assert chart.startswith("<svg") and ">small<" in chart and ">fused<" in chart

    # A second run reuses loaded documents and vectors: the model embeds nothing.
    again = headwater("eval", "-q", "questions.json", "-s", "small,sections", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Embedded now: 0 texts" in again.stdout.replace("\n", " ")
    assert "top 2" in again.stdout and "headwater convention" in again.stdout

    table = headwater(
        "eval", "-q", "questions.json", "-s", "small,recursive", "-k", "1", cwd=tmp_path
    )
    assert table.returncode == 0, table.stderr
    assert "top 1" in table.stdout and "recall" in table.stdout and "recursive" in table.stdout

    bad = headwater("eval", "-q", "questions.json", "-s", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown strategy name(s) nope" in bad.stderr
    # Rich must not eat the config key in brackets.
    assert "(configure more in [eval.strategies.<name>])" in " ".join(bad.stderr.split())


def test_lexical_and_hybrid_variants_are_scored_by_the_store(
    tmp_path: Path, embedder: Embedder
) -> None:
    # The answer shares only rare names with the question; six paragraphs about breakfast
    # share its meaning. Full-text search finds the names; embeddings find breakfasts.
    docs = tmp_path / "docs"
    docs.mkdir()
    meals = ["pancakes", "porridge", "eggs and toast", "fruit", "waffles", "yoghurt"]
    paragraphs = [f"Every guest ate {m} for breakfast in the morning." for m in meals]
    answer = "Ortwin Blavatsky signed the warehouse lease in March."
    (docs / "notes.txt").write_text("\n\n".join([*paragraphs[:3], answer, *paragraphs[3:]]))
    questions = write_questions(
        tmp_path / "q.json",
        [
            {
                "question": "What did Ortwin Blavatsky eat for breakfast?",
                "references": [{"source": "notes", "text": answer}],
            }
        ],
    )
    config = make_config(tmp_path, docs)
    small = {"strategy": "recursive", "chunk_size": 16, "chunk_overlap": 0}
    variants = {
        name: EvalVariant.model_validate({**small, **extra})
        for name, extra in {
            "dense": {},
            "lexical": {"mode": "lexical"},
            "hybrid": {"mode": "hybrid", "fusion": "weighted", "alpha": 0.2},
            "broken": {},
        }.items()
    }

    def scratch(folder: Path) -> VectorStore:
        if folder.name == "broken":
            raise OSError("disk full")
        return create_store(StoreConfig(backend="faiss", collection="eval"), folder)

    evaluation = Evaluation(
        build_sources(config),
        config.loading,
        variants,
        embedder=embedder,
        scratch_store=scratch,
        k=1,
        fusion=config.search.fusion_settings(),
    )
    report = evaluation.run(questions)
    by_name = {s.name: s for s in report.strategies}
    assert list(by_name) == ["dense", "lexical", "hybrid"]
    assert "disk full" in report.failed["broken"]  # one failing variant; the rest finish
    assert by_name["dense"].recall == 0  # a breakfast paragraph ranks first
    assert by_name["lexical"].recall == 1 and by_name["hybrid"].recall == 1
    assert by_name["hybrid"].settings.endswith("mode=hybrid fusion=weighted alpha=0.2")
    assert by_name["lexical"].seconds["query"] > 0
