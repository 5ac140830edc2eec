"""Retrieval evaluation: which chunking, embedding and search variant retrieves the
reference passages best.

Given questions with reference passages (excerpts of the documents, or character offsets
into the source files), every variant is built into its own scratch store, each question
retrieves its top ``k`` chunks, and the characters those chunks cover are compared with the
characters of the references, as in Chroma's "Evaluating Chunking Strategies for
Retrieval" (Smith & Troynikov, 2024):

- recall: the share of reference characters that some retrieved chunk covers;
- precision: the share of retrieved characters that belong to a reference;
- IoU: shared characters over reference and retrieved characters together.

Two conventions count the retrieved characters (`Convention`):

- ``headwater``: each chunk at its true place, overlapping chunks counted once (the union);
- ``chroma``: the report's own: each chunk at the FIRST place its text occurs in its
  document, and the denominators sum the retrieved chunks' lengths, so its figures can
  be set beside the published ones.

Beside them: hit rate (some retrieved chunk overlaps a reference), MRR (1 / rank of the
first such chunk) and nDCG at k (a chunk is relevant when it overlaps a reference).
Scores are averaged over questions, overall, per source and per document.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import pickle
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from headwater.ingest.chunking import create_chunker
from headwater.ingest.chunking.base import document_text, token_budget
from headwater.ingest.chunking.config import (
    ChunkingConfig,
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    SemanticChunking,
    TokenChunking,
)
from headwater.ingest.config import EvalConfig, EvalVariant, LoadingConfig
from headwater.ingest.embedding import Embedder, EmbeddingContext, embedding_input
from headwater.ingest.embedding_cache import EmbeddingCache
from headwater.ingest.errors import HeadwaterError, LoadError
from headwater.ingest.loading import load_document
from headwater.ingest.models import (
    Chunk,
    CollectionSpec,
    Document,
    DocumentId,
    Fusion,
    QueryHit,
    SearchMode,
    SourceFile,
    VectorRecord,
)
from headwater.ingest.search import search_store
from headwater.ingest.source import Source
from headwater.ingest.store import VectorStore

Progress = Callable[[str, int, int], None]
Convention = Literal["headwater", "chroma"]
CONVENTIONS: tuple[Convention, ...] = ("headwater", "chroma")


class EvalError(HeadwaterError):
    """The question file or the evaluation setup is wrong; the message says where."""


def default_variants() -> dict[str, EvalVariant]:
    """The built-in variants, one per strategy with its defaults; always available by name."""
    chunkings: dict[str, ChunkingConfig] = {
        "recursive": RecursiveChunking(),
        "token": TokenChunking(),
        "headers": HeadersChunking(),
        "elements-title": ElementsChunking(split_by="title"),
        "elements-page": ElementsChunking(split_by="page"),
        "semantic": SemanticChunking(),
    }
    return {name: EvalVariant(chunking=c) for name, c in chunkings.items()}


def as_variant(variant: EvalVariant | ChunkingConfig) -> EvalVariant:
    return variant if isinstance(variant, EvalVariant) else EvalVariant(chunking=variant)


def describe(variant: EvalVariant | ChunkingConfig, model: str | None = None) -> str:
    """A variant's settings in one line, e.g. ``recursive unit=tokens chunk_size=200 ...``.

    With `model`, a token chunk_size above the model's window shows the size used, e.g.
    ``chunk_size=254 (asked 1000)``.
    """
    v = as_variant(variant)
    settings = v.chunking.model_dump()
    name = settings.pop("strategy")
    if (
        model is not None
        and "chunk_size" in settings
        and settings.get("unit", "tokens") == "tokens"
    ):
        asked = settings["chunk_size"]
        used = token_budget(model, asked)
        if asked is None:
            settings["chunk_size"] = used
        elif used != asked:
            settings["chunk_size"] = f"{used} (asked {asked})"
    words = [name, *(f"{k}={val}" for k, val in settings.items() if val is not None)]
    if v.context is not None:
        words.append(f"context={v.context}")
    if v.mode != "dense":
        words.append(f"mode={v.mode}")
    if v.mode == "hybrid":
        tuned = {"fusion": v.fusion, "rrf_k": v.rrf_k, "alpha": v.alpha, "candidates": v.candidates}
        words += [f"{k}={val}" for k, val in tuned.items() if val is not None]
    return " ".join(words)


# -- the question file ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferenceSpec(_Strict):
    """A passage that answers a question: its excerpt, its character offsets, or both."""

    source: str = Field(
        description="The document: `source:path`, its path, or its file name without "
        "extension (a corpus id)."
    )
    text: str | None = Field(
        None, min_length=1, description="Excerpt of the document (found in the loaded text)."
    )
    start: int | None = Field(None, ge=0, description="First character in the source file.")
    end: int | None = Field(None, gt=0, description="Character after the last, in the file.")

    @model_validator(mode="after")
    def _text_or_offsets(self) -> ReferenceSpec:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        if self.text is None and self.start is None:
            raise ValueError("give the excerpt (text) or its offsets (start, end)")
        return self


class QuestionSpec(_Strict):
    id: str | None = Field(None, description="Short name used in messages; default q<N>.")
    question: str = Field(min_length=1)
    references: list[ReferenceSpec] = Field(min_length=1)


class QuestionSet(_Strict):
    """A question file: ``{"description": ..., "questions": [...]}``."""

    description: str = ""
    questions: list[QuestionSpec] = Field(min_length=1)


@dataclass(frozen=True)
class CharSpan:
    """Characters ``start..end`` of one document's text."""

    source_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    references: tuple[CharSpan, ...]


@dataclass(frozen=True)
class MissingReference:
    """A reference that could not be placed in the loaded text, and why."""

    question: str
    source: str
    excerpt: str
    reason: str

    def __str__(self) -> str:
        return f"{self.question} {self.source}: {self.excerpt[:60]!r}: {self.reason}"


@dataclass
class QuestionFile:
    questions: list[Question]
    missing: list[MissingReference] = field(default_factory=list)


def _flexible(excerpt: str) -> re.Pattern[str] | None:
    words = excerpt.split()
    return re.compile(r"\s+".join(re.escape(w) for w in words)) if words else None


def find_excerpt(text: str, excerpt: str, near: int | None = None) -> tuple[int, int] | None:
    """Where `excerpt` is in `text`: verbatim, else with any run of whitespace matching any.

    Loaded text joins elements with blank lines and keeps the parser's line breaks; an
    excerpt copied across them, or re-wrapped in a JSON file, should still be found. With
    `near` (its offset in the source file), the occurrence closest to it wins.
    """
    if near is not None and text[near : near + len(excerpt)] == excerpt:
        return near, near + len(excerpt)
    found: list[tuple[int, int]] = []
    at = text.find(excerpt)
    while at >= 0:
        found.append((at, at + len(excerpt)))
        if near is None:
            break
        at = text.find(excerpt, at + 1)
    if not found:
        pattern = _flexible(excerpt)
        if pattern is None:
            return None
        for m in pattern.finditer(text):
            found.append((m.start(), m.end()))
            if near is None:
                break
    if not found:
        return None
    return min(found, key=lambda s: abs(s[0] - near)) if near is not None else found[0]


def why_missing(text: str, excerpt: str, file_text: str | None = None) -> str:
    """Why `excerpt` is not in the loaded `text`: when the source file has it, where the
    loaded text stops matching it."""
    if file_text is None or find_excerpt(file_text, excerpt) is None:
        return "not in the loaded text" + (" nor in the file" if file_text is not None else "")
    words = excerpt.split()
    lo, hi = 0, len(words)  # the longest prefix of words found is lo words
    while lo < hi:
        mid = (lo + hi + 1) // 2
        pattern = _flexible(" ".join(words[:mid]))
        if pattern is not None and pattern.search(text):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return "the loader rewrote the text: not one word of it is in the loaded text"
    m = _flexible(" ".join(words[:lo]))
    assert m is not None
    match = m.search(text)
    assert match is not None
    return (
        f"the loader rewrote the text: after {' '.join(words[:lo])[-40:]!r} the file has "
        f"{' '.join(words[lo:])[:40]!r}, the loaded text {text[match.end() : match.end() + 40].lstrip()!r}"
    )


def _question_set(path: Path) -> QuestionSet:
    """A JSON question file, or the benchmark's CSV (question, references, corpus_id)."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            raw: Any = {
                "questions": [
                    {
                        "id": row.get("id") or f"{row['corpus_id']}-{n}",
                        "question": row["question"],
                        "references": [
                            {
                                "source": row["corpus_id"],
                                "text": r["content"],
                                "start": r["start_index"],
                                "end": r["end_index"],
                            }
                            for r in json.loads(row["references"])
                        ],
                    }
                    for n, row in enumerate(rows, 1)
                ]
            }
        else:
            raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"{path}: question file not found") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not valid JSON: {exc}") from None
    except KeyError as exc:
        raise EvalError(f"{path}: a CSV question file needs the column {exc}") from None
    try:
        return QuestionSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise EvalError(f"{path}: {problems}") from None


def load_questions(
    path: Path,
    texts: Mapping[str, str],
    *,
    files: Mapping[str, str] | None = None,
    failures: Mapping[str, str] | None = None,
    skip_missing: bool = False,
) -> QuestionFile:
    """Read a question file and place each reference in the loaded documents' text.

    `texts` maps source ids (``source:path``) to loaded text, `files` to the source file's
    own text (what offsets count in), `failures` to why a document did not load. Every
    reference that cannot be placed is listed in one EvalError; with `skip_missing` they
    are left out instead (a question left with none is skipped) and come back as `missing`.
    """
    spec = _question_set(path)
    files = files or {}
    failures = failures or {}
    index: dict[str, list[str]] = defaultdict(list)
    for sid in [*texts, *failures]:
        doc = DocumentId.parse(sid)
        for name in {doc.path, str(Path(doc.path).with_suffix(""))}:
            index[name].append(sid)

    questions: list[Question] = []
    missing: list[MissingReference] = []
    for n, q in enumerate(spec.questions, 1):
        qid = q.id or f"q{n}"
        spans = []
        for ref in q.references:
            where = ref.source
            excerpt = ref.text or ""
            candidates = [ref.source] if ref.source in texts else index.get(ref.source, [])
            if len(candidates) > 1:
                raise EvalError(
                    f"{path}: question {qid} ({q.question[:60]!r}): {ref.source!r} is in "
                    f"several sources ({', '.join(candidates)}); write it as source:path"
                )
            if not candidates:
                reason = f"no loaded document {ref.source!r}"
            elif candidates[0] in failures:
                reason = f"the document did not load: {failures[candidates[0]]}"
            else:
                sid = where = candidates[0]
                placed = _place(ref, texts[sid], files.get(sid))
                if isinstance(placed, tuple):
                    spans.append(CharSpan(sid, *placed))
                    continue
                reason, excerpt = placed.reason, placed.excerpt
            missing.append(MissingReference(qid, where, excerpt, reason))
        if len(spans) == len(q.references) or (skip_missing and spans):
            questions.append(Question(qid, q.question, tuple(spans)))
    if missing and not skip_missing:
        lines = "\n".join(f"  {m}" for m in missing)
        raise EvalError(
            f"{path}: {len(missing)} reference(s) not found (--skip-missing runs without "
            f"them):\n{lines}"
        )
    if not questions:
        raise EvalError(f"{path}: no question has a reference that was found")
    return QuestionFile(questions, missing)


@dataclass(frozen=True)
class _NotPlaced:
    excerpt: str
    reason: str


def _place(ref: ReferenceSpec, loaded: str, file_text: str | None) -> tuple[int, int] | _NotPlaced:
    """A reference's span in the loaded text, or why it has none."""
    excerpt = ref.text
    if ref.start is not None and ref.end is not None:
        if file_text is None:
            return _NotPlaced(excerpt or "", "offsets given, but the source file was not read")
        in_file = file_text[ref.start : ref.end]
        if len(in_file) < ref.end - ref.start:
            return _NotPlaced(
                excerpt or in_file, f"offsets {ref.start}..{ref.end} are past the file's end"
            )
        if excerpt is not None and _flexible(excerpt) != _flexible(in_file):
            return _NotPlaced(
                excerpt, f"the file's characters {ref.start}..{ref.end} are {in_file[:40]!r}"
            )
        excerpt = in_file
    assert excerpt is not None
    found = find_excerpt(loaded, excerpt, near=ref.start)
    return (
        found if found is not None else _NotPlaced(excerpt, why_missing(loaded, excerpt, file_text))
    )


# -- metrics ----------------------------------------------------------------------------


Intervals = dict[str, list[tuple[int, int]]]


def _merged(spans: Iterable[CharSpan]) -> Intervals:
    """Per document, the spans' union as sorted, disjoint intervals."""
    by_doc: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for s in spans:
        if s.end > s.start:
            by_doc[s.source_id].append((s.start, s.end))
    out = {}
    for sid, intervals in by_doc.items():
        intervals.sort()
        merged = [intervals[0]]
        for start, end in intervals[1:]:
            if start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        out[sid] = merged
    return out


def _length(intervals: Mapping[str, list[tuple[int, int]]]) -> int:
    return sum(e - s for spans in intervals.values() for s, e in spans)


def _shared(a: Mapping[str, list[tuple[int, int]]], b: Mapping[str, list[tuple[int, int]]]) -> int:
    total = 0
    for sid, left in a.items():
        right = b.get(sid, [])
        i = j = 0
        while i < len(left) and j < len(right):
            lo, hi = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
            total += max(0, hi - lo)
            if left[i][1] < right[j][1]:
                i += 1
            else:
                j += 1
    return total


@dataclass(frozen=True)
class Scores:
    recall: float
    precision: float
    iou: float


def score(
    references: Sequence[CharSpan],
    retrieved: Sequence[CharSpan],
    convention: Convention = "headwater",
) -> Scores:
    """Recall, precision and IoU of retrieved characters against reference characters.

    ``headwater`` counts characters as sets (overlaps once); ``chroma`` sums the retrieved
    spans' lengths and each reference's length, as the report does.
    """
    ref, got = _merged(references), _merged(retrieved)
    shared = _shared(ref, got)
    if convention == "chroma":
        n_ref = sum(max(0, s.end - s.start) for s in references)
        n_got = sum(max(0, s.end - s.start) for s in retrieved)
        uncovered = sum(
            (r.end - r.start) - _shared(_merged([r]), got) for r in references if r.end > r.start
        )
        union = n_got + uncovered
    else:
        n_ref, n_got = _length(ref), _length(got)
        union = n_ref + n_got - shared
    return Scores(
        recall=shared / n_ref if n_ref else 0.0,
        precision=shared / n_got if n_got else 0.0,
        iou=shared / union if union else 0.0,
    )


def _overlaps(span: CharSpan, references: Sequence[CharSpan]) -> bool:
    return any(
        r.source_id == span.source_id and min(r.end, span.end) > max(r.start, span.start)
        for r in references
    )


@dataclass(frozen=True)
class RankScores:
    hit: float
    reciprocal_rank: float
    ndcg: float


def rank_scores(
    references: Sequence[CharSpan], retrieved: Sequence[CharSpan], relevant_total: int, k: int
) -> RankScores:
    """Hit, reciprocal rank and nDCG@k; a retrieved chunk is relevant when it overlaps a
    reference, and `relevant_total` chunks of the store do."""
    relevant = [_overlaps(s, references) for s in retrieved[:k]]
    first = next((i for i, r in enumerate(relevant) if r), None)
    dcg = sum(1 / math.log2(i + 2) for i, r in enumerate(relevant) if r)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, max(relevant_total, sum(relevant)))))
    return RankScores(
        hit=1.0 if first is not None else 0.0,
        reciprocal_rank=1 / (first + 1) if first is not None else 0.0,
        ndcg=dcg / ideal if ideal else 0.0,
    )


# -- results ----------------------------------------------------------------------------


@dataclass
class QuestionResult:
    id: str
    recall: float
    precision: float
    iou: float
    hit: float
    reciprocal_rank: float
    ndcg: float
    retrieved: list[CharSpan]
    """The retrieved chunks at their true place in the loaded text, best first."""
    documents: list[str] = field(default_factory=list)
    """The documents its references are in."""


@dataclass
class Figures:
    """Scores averaged over a set of questions."""

    questions: int
    recall: float
    precision: float
    iou: float
    hit_rate: float
    mrr: float
    ndcg: float

    @classmethod
    def of(cls, results: Sequence[QuestionResult]) -> Figures:
        def mean(name: str) -> float:
            return float(np.mean([getattr(r, name) for r in results])) if results else 0.0

        return cls(
            len(results),
            mean("recall"),
            mean("precision"),
            mean("iou"),
            mean("hit"),
            mean("reciprocal_rank"),
            mean("ndcg"),
        )


@dataclass
class StrategyResult:
    name: str
    settings: str
    chunks: int
    mean_chars: float
    mean_tokens: float
    over_window: int
    """Chunks longer than the model's input window (truncated when embedded)."""
    chunk_seconds: float
    """Time to chunk every document (for `semantic`, that includes embedding sentences)."""
    recall: float
    precision: float
    iou: float
    hit_rate: float = 0.0
    mrr: float = 0.0
    ndcg: float = 0.0
    embedded: int = 0
    """Texts the model embedded for this variant (not found in memory or the cache)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time per stage: chunk, embed, index, query, total."""
    by_source: dict[str, Figures] = field(default_factory=dict)
    by_document: dict[str, Figures] = field(default_factory=dict)
    chunk_failures: dict[str, str] = field(default_factory=dict)
    """Documents this variant could not chunk, with the reason (left out of its store)."""
    questions: list[QuestionResult] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


@dataclass
class EvalReport:
    k: int
    model: str
    documents: int
    questions: int
    strategies: list[StrategyResult]
    convention: Convention = "headwater"
    failures: dict[str, str] = field(default_factory=dict)
    """Documents that could not be loaded, with the reason (they are left out)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Variants that failed, with the reason; the others ran."""
    missing: list[MissingReference] = field(default_factory=list)
    """References left out (--skip-missing), with the reason."""
    embedded: int = 0
    """Texts the model embedded in this run, questions included; 0 when all were cached."""
    load_seconds: float = 0.0

    HEADER: ClassVar[tuple[str, ...]] = (
        "strategy",
        "chunks",
        "mean tokens",
        "over window",
        "recall",
        "IoU",
        "precision",
        "hit rate",
        "MRR",
        "nDCG",
        "embedded",
        "seconds",
    )
    FIGURES_HEADER: ClassVar[tuple[str, ...]] = (
        "strategy",
        "document",
        "questions",
        "recall",
        "IoU",
        "precision",
        "hit rate",
        "MRR",
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[list[str]]:
        """The side-by-side table: one row per variant; scores in percent."""
        return [
            [
                s.name,
                str(s.chunks),
                f"{s.mean_tokens:.0f}",
                str(s.over_window),
                _pct(s.recall),
                _pct(s.iou),
                _pct(s.precision),
                _pct(s.hit_rate),
                _pct(s.mrr),
                _pct(s.ndcg),
                str(s.embedded),
                f"{s.seconds.get('total', 0.0):.1f}",
            ]
            for s in self.strategies
        ]

    def figure_rows(self, by: Literal["document", "source"] = "document") -> list[list[str]]:
        """One row per variant and document (or source)."""
        return [
            [
                s.name,
                name,
                str(f.questions),
                _pct(f.recall),
                _pct(f.iou),
                _pct(f.precision),
                _pct(f.hit_rate),
                _pct(f.mrr),
            ]
            for s in self.strategies
            for name, f in (s.by_document if by == "document" else s.by_source).items()
        ]

    def markdown(self, settings: bool = True) -> str:
        def table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
            return [
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
                *("| " + " | ".join(row) + " |" for row in rows),
            ]

        lines = table(self.HEADER, self.rows())
        if len({d for s in self.strategies for d in s.by_document}) > 1:
            lines += ["", *table(self.FIGURES_HEADER, self.figure_rows())]
        if len({d for s in self.strategies for d in s.by_source}) > 1:
            header = ("strategy", "source", *self.FIGURES_HEADER[2:])
            lines += ["", *table(header, self.figure_rows("source"))]
        if settings:
            lines += [
                "",
                "| strategy | settings |",
                "|---|---|",
                *(f"| {s.name} | `{s.settings}` |" for s in self.strategies),
            ]
        if self.failed:
            lines += ["", *(f"- failed: {name}: {why}" for name, why in self.failed.items())]
        return "\n".join(lines)


# -- documents --------------------------------------------------------------------------


@dataclass
class Corpus:
    """The loaded documents, the source files' own text (for offsets) and load failures."""

    documents: list[Document]
    files: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def texts(self) -> dict[str, str]:
        return {d.source_id: document_text(d.elements)[0] for d in self.documents}


_LOADER_MODULES = ("loading.py", "textfiles.py", "pdf.py", "mail.py")
"""The loader's code: a change to any of them changes what a document loads to."""


def _loader_version() -> str:
    # Cached documents must be loaded again when the loader's code changes, not only
    # its settings: hash the modules' own source.
    import headwater.ingest.loading as loading_module

    folder = Path(loading_module.__file__).parent
    code = b"".join((folder / name).read_bytes() for name in _LOADER_MODULES)
    return hashlib.blake2b(code, digest_size=8).hexdigest()


def load_documents(
    sources: Sequence[Source],
    loading: LoadingConfig,
    progress: Progress | None = None,
    *,
    cache_dir: Path | None = None,
) -> Corpus:
    """Every document of `sources`, loaded; failures come back with reasons.

    With `cache_dir`, a document loaded before from the same bytes, settings and loader
    code is read back from there rather than parsed again.
    """
    progress = progress or (lambda stage, done, total: None)
    files: list[tuple[Source, SourceFile]] = []
    for source in sources:
        files.extend((source, f) for f in source.list_files())
    corpus = Corpus([])
    version = _loader_version() + loading.model_dump_json() if cache_dir else ""
    for i, (source, f) in enumerate(files):
        progress("load", i, len(files))
        try:
            data = source.read_bytes(f)
            corpus.files[f.source_id] = data.decode("utf-8", errors="replace")
            cached = None
            if cache_dir is not None:
                key = hashlib.blake2b(data + version.encode(), digest_size=16).hexdigest()
                cached = cache_dir / f"{key}.pickle"
                if cached.is_file():
                    try:
                        doc = pickle.loads(cached.read_bytes())
                        if isinstance(doc, Document) and doc.file == f:
                            corpus.documents.append(doc)
                            continue
                    except Exception:  # a bad cache entry only costs a parse
                        pass
            doc = load_document(f, data, loading)
            corpus.documents.append(doc)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(pickle.dumps(doc))
        except (LoadError, OSError) as exc:
            corpus.failures[f.source_id] = getattr(exc, "reason", None) or str(exc)
    progress("load", len(files), len(files))
    return corpus


# -- the run ----------------------------------------------------------------------------


class Evaluation:
    """Builds each variant into a scratch store and scores retrieval.

    Vectors are kept by embedded text, in memory and in `embedding_cache` when given, so
    text that two variants (or two runs) cut the same way is embedded once. The scratch
    stores live in a temporary folder removed at the end.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        loading: LoadingConfig,
        variants: Mapping[str, EvalVariant | ChunkingConfig],
        *,
        embedder: Embedder,
        scratch_store: Callable[[Path], VectorStore],
        k: int,
        progress: Progress | None = None,
        embedding_cache: EmbeddingCache | None = None,
        document_cache: Path | None = None,
        context: EmbeddingContext = "none",
        convention: Convention = "headwater",
        skip_missing: bool = False,
        fusion: Fusion | None = None,
    ) -> None:
        if not variants:
            raise EvalError("no variants to evaluate")
        self.sources = list(sources)
        self.loading = loading
        self.variants = {name: as_variant(v) for name, v in variants.items()}
        self.k = k
        self.embedder = embedder
        self.model = embedder.config.model
        self.scratch_store = scratch_store
        """Makes an empty store in the given folder, one per variant."""
        self.progress = progress or (lambda stage, done, total: None)
        self.embedding_cache = embedding_cache
        self.document_cache = document_cache
        self.context: EmbeddingContext = context
        """Embedding context for variants that do not set their own."""
        self.convention: Convention = convention
        self.skip_missing = skip_missing
        self.fusion = fusion or Fusion()
        """Hybrid fusion for variants that do not set their own ([search])."""
        self._vectors: dict[str, np.ndarray] = {}

    def _embed(self, texts: Iterable[str]) -> int:
        """Vectors for `texts` into memory; returns how many the model embedded now."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        embedded = 0
        batch = self.embedder.batch_size * 4
        for i in range(0, len(missing), batch):
            part = missing[i : i + batch]
            self.progress("embed", i, len(missing))
            if self.embedding_cache is None:
                vectors, reused = self.embedder.embed(part), set[int]()
            else:
                vectors, reused = self.embedding_cache.embed(self.embedder, part)
            embedded += len(part) - len(reused)
            for text, vector in zip(part, vectors, strict=True):
                self._vectors[text] = vector
        self.progress("embed", len(missing), len(missing))
        return embedded

    def load(self) -> Corpus:
        return load_documents(
            self.sources, self.loading, self.progress, cache_dir=self.document_cache
        )

    def run(self, questions_file: Path, corpus: Corpus | None = None) -> EvalReport:
        t0 = time.perf_counter()
        corpus = corpus if corpus is not None else self.load()
        load_seconds = time.perf_counter() - t0
        if not corpus.documents:
            raise EvalError("no documents could be loaded from the configured sources")
        texts = corpus.texts
        qfile = load_questions(
            questions_file,
            texts,
            files=corpus.files,
            failures=corpus.failures,
            skip_missing=self.skip_missing,
        )
        questions = qfile.questions
        embedded = self._embed(q.question for q in questions)
        query_vectors = np.stack([self._vectors[q.question] for q in questions])
        results: list[StrategyResult] = []
        failed: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="headwater-eval-") as scratch:
            for i, (name, variant) in enumerate(self.variants.items()):
                self.progress("strategies", i, len(self.variants))
                try:
                    result = self._variant(
                        name, variant, corpus.documents, texts, questions, query_vectors, scratch
                    )
                except Exception as exc:  # one variant must not stop the rest
                    failed[name] = f"{type(exc).__name__}: {exc}"
                    continue
                embedded += result.embedded
                results.append(result)
            self.progress("strategies", len(self.variants), len(self.variants))
        return EvalReport(
            k=self.k,
            model=self.model,
            documents=len(corpus.documents),
            questions=len(questions),
            strategies=results,
            convention=self.convention,
            failures=corpus.failures,
            failed=failed,
            missing=qfile.missing,
            embedded=embedded,
            load_seconds=load_seconds,
        )

    def _search(
        self, store: VectorStore, variant: EvalVariant
    ) -> Callable[[Question, np.ndarray], list[QueryHit]]:
        """The store's query for the variant's mode, as `headwater query` runs it."""
        mode = SearchMode(variant.mode)
        fusion = variant.fusion_settings(self.fusion)

        def search(q: Question, vector: np.ndarray) -> list[QueryHit]:
            dense = [float(x) for x in vector]
            return search_store(
                store, q.question, lambda _: dense, k=self.k, filters=None, mode=mode, fusion=fusion
            )

        return search

    def _variant(
        self,
        name: str,
        variant: EvalVariant,
        documents: Sequence[Document],
        texts: Mapping[str, str],
        questions: Sequence[Question],
        query_vectors: np.ndarray,
        scratch: str,
    ) -> StrategyResult:
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        chunker = create_chunker(variant.chunking, self.model, embedder=self.embedder)
        chunks: list[Chunk] = []
        chunk_failures: dict[str, str] = {}
        for d in documents:
            try:
                chunks.extend(chunker.chunk(d))
            except Exception as exc:  # one document must not stop the variant
                chunk_failures[d.source_id] = f"{type(exc).__name__}: {exc}"
        seconds["chunk"] = time.perf_counter() - t0
        if not chunks:
            raise EvalError(f"variant {name!r} made no chunks")
        context = variant.context or self.context
        inputs = [embedding_input(c, context) for c in chunks]
        t = time.perf_counter()
        embedded = self._embed(inputs)
        seconds["embed"] = time.perf_counter() - t
        counts = self.embedder.token_counts(inputs)
        limit = self.embedder.max_tokens

        t = time.perf_counter()
        store = self.scratch_store(Path(scratch) / re.sub(r"[^A-Za-z0-9_-]", "_", name))
        try:
            store.ensure_collection(CollectionSpec(self.embedder.dimension, self.model))
            store.upsert(
                [
                    VectorRecord(c, self._vectors[x].tolist())
                    for c, x in zip(chunks, inputs, strict=True)
                ]
            )
            seconds["index"] = time.perf_counter() - t
            search = self._search(store, variant)
            t = time.perf_counter()
            hits = [search(q, vector) for q, vector in zip(questions, query_vectors, strict=True)]
            seconds["query"] = time.perf_counter() - t
        finally:
            store.close()

        # The span each chunk is scored at: its own, or (chroma) its text's first occurrence.
        spans = {
            c.id: CharSpan(c.metadata.source_id, c.metadata.start, c.metadata.end) for c in chunks
        }
        scored = dict(spans)
        if self.convention == "chroma":
            for c in chunks:
                first = texts[c.metadata.source_id].find(c.text)
                if first >= 0:
                    scored[c.id] = CharSpan(c.metadata.source_id, first, first + len(c.text))
        by_doc: dict[str, list[CharSpan]] = defaultdict(list)
        for span in scored.values():
            by_doc[span.source_id].append(span)

        per_question = []
        for q, found in zip(questions, hits, strict=True):
            got = [scored.get(h.id) or spans.get(h.id) or _hit_span(h) for h in found]
            s = score(q.references, got, self.convention)
            relevant = sum(
                _overlaps(c, q.references)
                for sid in {r.source_id for r in q.references}
                for c in by_doc.get(sid, [])
            )
            r = rank_scores(q.references, got, relevant, self.k)
            per_question.append(
                QuestionResult(
                    q.id,
                    s.recall,
                    s.precision,
                    s.iou,
                    r.hit,
                    r.reciprocal_rank,
                    r.ndcg,
                    [spans.get(h.id) or _hit_span(h) for h in found],
                    sorted({ref.source_id for ref in q.references}),
                )
            )
        seconds["total"] = time.perf_counter() - t0
        overall = Figures.of(per_question)
        by_document: dict[str, list[QuestionResult]] = defaultdict(list)
        by_source: dict[str, list[QuestionResult]] = defaultdict(list)
        for qr in per_question:
            for sid in qr.documents:
                by_document[sid].append(qr)
            for source in sorted({DocumentId.parse(sid).source for sid in qr.documents}):
                by_source[source].append(qr)
        special = self.embedder.model.tokenizer.num_special_tokens_to_add()
        return StrategyResult(
            name=name,
            settings=describe(variant, self.model),
            chunks=len(chunks),
            mean_chars=float(np.mean([len(c.text) for c in chunks])),
            mean_tokens=float(np.mean(counts)) - special,
            over_window=sum(n > limit for n in counts) if limit else 0,
            chunk_seconds=seconds["chunk"],
            recall=overall.recall,
            precision=overall.precision,
            iou=overall.iou,
            hit_rate=overall.hit_rate,
            mrr=overall.mrr,
            ndcg=overall.ndcg,
            embedded=embedded,
            seconds=seconds,
            by_source={k: Figures.of(v) for k, v in sorted(by_source.items())},
            by_document={k: Figures.of(v) for k, v in sorted(by_document.items())},
            chunk_failures=chunk_failures,
            questions=per_question,
        )


def _hit_span(hit: Any) -> CharSpan:
    return CharSpan(hit.metadata.source_id, hit.metadata.start, hit.metadata.end)


def select_variants(
    config: EvalConfig, names: Sequence[str] | None = None
) -> dict[str, EvalVariant]:
    """The variants to compare, by name among ``[eval.strategies]`` and the built-ins.

    Without names: the configured variants, or the built-ins when none are configured.
    """
    builtin = default_variants()
    available = {**builtin, **config.strategies}
    if not names:
        return dict(config.strategies) or builtin
    unknown = [n for n in names if n not in available]
    if unknown:
        raise EvalError(
            f"unknown strategy name(s) {', '.join(unknown)}; known: {', '.join(available)} "
            "(configure more in [eval.strategies.<name>])"
        )
    return {n: available[n] for n in names}


# -- the chart --------------------------------------------------------------------------


def write_plot(report: EvalReport, path: Path) -> None:
    """Recall against IoU, one point per variant: SVG by hand, PNG with matplotlib."""
    points = [(s.name, 100 * s.iou, 100 * s.recall) for s in report.strategies]
    title = f"top {report.k}, {report.questions} questions, {report.convention} convention"
    suffix = path.suffix.lower()
    if suffix == ".svg":
        path.write_text(_svg(points, title), encoding="utf-8")
    elif suffix == ".png":
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise EvalError(
                f"{path}: a PNG chart needs matplotlib (pip install matplotlib); "
                "an .svg file needs nothing"
            ) from None
        fig, ax = plt.subplots(figsize=(7, 5))
        for name, x, y in points:
            ax.scatter([x], [y])
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("IoU %")
        ax.set_ylabel("recall %")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
    else:
        raise EvalError(f"{path}: the chart is written as .svg or .png")


def _svg(points: Sequence[tuple[str, float, float]], title: str) -> str:
    from xml.sax.saxutils import escape

    width, height, pad = 640, 440, 60
    xs = [x for _, x, _ in points] or [0.0]
    ys = [y for _, _, y in points] or [0.0]
    x0, x1 = 0.0, max(1.0, max(xs) * 1.15)
    y0, y1 = max(0.0, min(ys) - 10), min(100.0, max(ys) + 5) if max(ys) + 5 > min(ys) else 100.0

    def px(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def py(y: float) -> float:
        return height - pad - (y - y0) / ((y1 - y0) or 1) * (height - 2 * pad)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 20}" text-anchor="middle">IoU %</text>',
        f'<text x="18" y="{height / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {height / 2})">recall %</text>',
    ]
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        y = y0 + (y1 - y0) * i / 5
        out += [
            f'<text x="{px(x):.1f}" y="{height - pad + 16}" text-anchor="middle">{x:.1f}</text>',
            f'<text x="{pad - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>',
            f'<line x1="{pad}" y1="{py(y):.1f}" x2="{width - pad}" y2="{py(y):.1f}" '
            'stroke="#ddd"/>',
        ]
    for name, x, y in points:
        out += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="#1f77b4"/>',
            f'<text x="{px(x) + 6:.1f}" y="{py(y) - 6:.1f}">{escape(name)}</text>',
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"
