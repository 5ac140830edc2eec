"""The retrieval evaluation: metrics by hand, question files, and `headwater eval` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from headwater.compose import build_sources
from headwater.config import HeadwaterConfig, load_config
from headwater.ingest.chunking.base import document_text
from headwater.ingest.evaluation import (
    CharSpan,
    EvalError,
    find_excerpt,
    load_documents,
    load_questions,
    score,
    select_variants,
)

from .conftest import FIXTURES, ROOT, SAMPLE_DOCS
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
    (q,) = load_questions(ok, texts)
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
    with pytest.raises(EvalError, match=r"question storage .*reference not found in docs:a.txt"):
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
    with pytest.raises(EvalError, match=r"question q1 .*no loaded document 'nope.pdf'"):
        load_questions(unknown, texts)
    (tmp_path / "bad.json").write_text('{"questions": [{"question": "?"}]}')
    with pytest.raises(EvalError, match=r"questions\.0\.references: Field required"):
        load_questions(tmp_path / "bad.json", texts)


def test_shipped_sample_question_set_matches_the_documents(tmp_path: Path) -> None:
    config = HeadwaterConfig(
        sources=[{"name": "sample_docs", "path": str(SAMPLE_DOCS)}], config_dir=tmp_path
    )
    docs, failures = load_documents(build_sources(config), config.loading)
    assert failures == {}
    texts = {d.source_id: document_text(d.elements)[0] for d in docs}
    questions = load_questions(SAMPLE_QUESTIONS, texts)
    assert len(questions) >= 30
    assert {r.source_id for q in questions for r in q.references} == set(texts)  # all 11


@pytest.mark.skipif(not BENCH.is_dir(), reason=f"{BENCH} is not here")
def test_shipped_bench_question_set_matches_its_documents() -> None:
    config = load_config(ROOT / "benchmarks/eval/bench.toml")
    assert set(select_variants(config.eval)) >= {"recursive", "token", "headers", "semantic"}
    docs, failures = load_documents(build_sources(config), config.loading)
    assert failures == {} and 10 <= len(docs) <= 20
    texts = {d.source_id: document_text(d.elements)[0] for d in docs}
    questions = load_questions(ROOT / "benchmarks/eval/bench_questions.json", texts)
    assert len(questions) >= 30


def test_unknown_strategy_name_is_an_error() -> None:
    with pytest.raises(EvalError, match=r"unknown strategy name\(s\) fixed; known: recursive"):
        select_variants(HeadwaterConfig().eval, ["fixed"])


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
        '[eval.strategies.unused]\nstrategy = "semantic"\n'
    )
    out = headwater(
        "eval",
        "--questions",
        "questions.json",
        "--strategies",
        "small,sections",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["k"] == 2 and report["documents"] == 3 and report["questions"] == len(subset)
    assert [s["name"] for s in report["strategies"]] == ["small", "sections"]
    small, sections = report["strategies"]
    assert small["settings"].startswith("token chunk_size=64")
    assert small["mean_tokens"] <= 64 and small["chunks"] > sections["chunks"]
    for s in report["strategies"]:
        assert 0 < s["recall"] <= 1 and 0 < s["precision"] <= 1 and 0 < s["iou"] <= s["precision"]
        assert len(s["questions"]) == len(subset)
        assert all(len(q["retrieved"]) == 2 for q in s["questions"])
    assert not (tmp_path / ".headwater").exists()  # scratch stores only

    table = headwater("eval", "-q", "questions.json", "-s", "small", "-k", "1", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "top 1" in table.stdout and "recall" in table.stdout and "small" in table.stdout

    bad = headwater("eval", "-q", "questions.json", "-s", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown strategy name(s) nope" in bad.stderr
