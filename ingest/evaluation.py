"""Retrieval evaluation: which chunking strategy retrieves the reference passages best.

Given questions with reference passages (exact excerpts of the loaded documents), every
chunking variant is built into its own scratch store, each question retrieves its top
``k`` chunks, and the characters those chunks cover are compared with the characters of
the references, as in Chroma's "Evaluating Chunking Strategies for Retrieval" (2024),
which counts tokens where we count characters:

- recall: the share of reference characters that some retrieved chunk covers;
- precision: the share of retrieved characters that belong to a reference;
- IoU: shared characters over the union of reference and retrieved characters.

Characters are counted as sets per document, so text that two overlapping chunks both
hold counts once. Scores are averaged over questions.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headwater.ingest.chunking import create_chunker
from headwater.ingest.chunking.base import document_text
from headwater.ingest.chunking.config import (
    ChunkingConfig,
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    SemanticChunking,
    TokenChunking,
)
from headwater.ingest.config import EvalConfig, LoadingConfig
from headwater.ingest.embedding import Embedder
from headwater.ingest.errors import HeadwaterError, LoadError
from headwater.ingest.loading import load_document
from headwater.ingest.models import (
    Chunk,
    CollectionSpec,
    Document,
    DocumentId,
    SourceFile,
    VectorRecord,
)
from headwater.ingest.source import Source
from headwater.ingest.store import VectorStore

Progress = Callable[[str, int, int], None]


class EvalError(HeadwaterError):
    """The question file or the evaluation setup is wrong; the message says where."""


def default_variants() -> dict[str, ChunkingConfig]:
    """One variant per strategy with its defaults: what `eval` compares unless told otherwise."""
    return {
        "recursive": RecursiveChunking(),
        "token": TokenChunking(),
        "headers": HeadersChunking(),
        "elements-title": ElementsChunking(split_by="title"),
        "elements-page": ElementsChunking(split_by="page"),
        "semantic": SemanticChunking(),
    }


def describe(variant: ChunkingConfig) -> str:
    """A variant's settings in one line, e.g. ``recursive unit=tokens chunk_size=200 ...``."""
    settings = variant.model_dump()
    name = settings.pop("strategy")
    return " ".join([name, *(f"{k}={v}" for k, v in settings.items() if v is not None)])


# -- the question file ------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReferenceSpec(_Strict):
    """A passage that answers a question: where it is and its exact text."""

    source: str = Field(description="Document path inside its source, or `source:path`.")
    text: str = Field(min_length=1, description="Excerpt copied from the loaded document text.")


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


def find_excerpt(text: str, excerpt: str) -> tuple[int, int] | None:
    """Where `excerpt` is in `text`: verbatim, else with any run of whitespace matching any.

    Loaded text joins elements with blank lines and keeps the parser's line breaks; an
    excerpt copied across them, or re-wrapped in a JSON file, should still be found.
    """
    at = text.find(excerpt)
    if at >= 0:
        return at, at + len(excerpt)
    words = excerpt.split()
    if not words:
        return None
    m = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (m.start(), m.end()) if m else None


def load_questions(path: Path, texts: Mapping[str, str]) -> list[Question]:
    """Read a question file and locate each reference in the loaded documents' text.

    `texts` maps source ids (``source:path``) to document text. A reference whose
    document was not loaded, or whose excerpt is not in it, is an error naming the question.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"{path}: question file not found") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not valid JSON: {exc}") from None
    try:
        spec = QuestionSet.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise EvalError(f"{path}: {problems}") from None

    by_path: dict[str, list[str]] = defaultdict(list)
    for sid in texts:
        by_path[DocumentId.parse(sid).path].append(sid)

    questions = []
    for n, q in enumerate(spec.questions, 1):
        qid = q.id or f"q{n}"
        where = f"{path}: question {qid} ({q.question[:60]!r})"
        spans = []
        for ref in q.references:
            if ref.source in texts:
                sid = ref.source
            elif len(by_path.get(ref.source, [])) == 1:
                sid = by_path[ref.source][0]
            elif ref.source in by_path:
                raise EvalError(
                    f"{where}: {ref.source!r} is in several sources "
                    f"({', '.join(by_path[ref.source])}); write it as source:path"
                )
            else:
                raise EvalError(f"{where}: no loaded document {ref.source!r}")
            found = find_excerpt(texts[sid], ref.text)
            if found is None:
                raise EvalError(f"{where}: reference not found in {sid}: {ref.text[:80]!r}")
            spans.append(CharSpan(sid, *found))
        questions.append(Question(qid, q.question, tuple(spans)))
    return questions


# -- metrics ----------------------------------------------------------------------------


def _merged(spans: Iterable[CharSpan]) -> dict[str, list[tuple[int, int]]]:
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


def score(references: Sequence[CharSpan], retrieved: Sequence[CharSpan]) -> Scores:
    """Recall, precision and IoU of retrieved characters against reference characters."""
    ref, got = _merged(references), _merged(retrieved)
    shared, n_ref, n_got = _shared(ref, got), _length(ref), _length(got)
    union = n_ref + n_got - shared
    return Scores(
        recall=shared / n_ref if n_ref else 0.0,
        precision=shared / n_got if n_got else 0.0,
        iou=shared / union if union else 0.0,
    )


# -- the run ----------------------------------------------------------------------------


@dataclass
class QuestionResult:
    id: str
    recall: float
    precision: float
    iou: float
    retrieved: list[CharSpan]


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
    questions: list[QuestionResult] = field(default_factory=list)


@dataclass
class EvalReport:
    k: int
    model: str
    documents: int
    questions: int
    strategies: list[StrategyResult]
    failures: dict[str, str] = field(default_factory=dict)
    """Documents that could not be loaded, with the reason (they are left out)."""

    HEADER: ClassVar[tuple[str, ...]] = (
        "strategy",
        "chunks",
        "mean chars",
        "mean tokens",
        "over window",
        "recall",
        "precision",
        "IoU",
        "chunking s",
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[list[str]]:
        """The side-by-side table: one row per strategy."""
        return [
            [
                s.name,
                str(s.chunks),
                f"{s.mean_chars:.0f}",
                f"{s.mean_tokens:.0f}",
                str(s.over_window),
                f"{s.recall:.3f}",
                f"{s.precision:.3f}",
                f"{s.iou:.3f}",
                f"{s.chunk_seconds:.1f}",
            ]
            for s in self.strategies
        ]

    def markdown(self, settings: bool = True) -> str:
        lines = [
            "| " + " | ".join(self.HEADER) + " |",
            "|" + "---|" * len(self.HEADER),
            *("| " + " | ".join(row) + " |" for row in self.rows()),
        ]
        if settings:
            lines += [
                "",
                "| strategy | settings |",
                "|---|---|",
                *(f"| {s.name} | `{s.settings}` |" for s in self.strategies),
            ]
        return "\n".join(lines)


def load_documents(
    sources: Sequence[Source], loading: LoadingConfig, progress: Progress | None = None
) -> tuple[list[Document], dict[str, str]]:
    """Every document of `sources`, loaded; failures come back with reasons."""
    progress = progress or (lambda stage, done, total: None)
    files: list[tuple[Source, SourceFile]] = []
    for source in sources:
        files.extend((source, f) for f in source.list_files())
    docs: list[Document] = []
    failures: dict[str, str] = {}
    for i, (source, f) in enumerate(files):
        progress("load", i, len(files))
        try:
            docs.append(load_document(f, source.read_bytes(f), loading))
        except (LoadError, OSError) as exc:
            failures[f.source_id] = getattr(exc, "reason", None) or str(exc)
    progress("load", len(files), len(files))
    return docs, failures


class Evaluation:
    """Builds each chunking variant into a scratch store and scores retrieval.

    Vectors are cached by chunk text, so text that two variants cut the same way is
    embedded once. The scratch stores live in a temporary folder removed at the end.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        loading: LoadingConfig,
        variants: Mapping[str, ChunkingConfig],
        *,
        embedder: Embedder,
        scratch_store: Callable[[Path], VectorStore],
        k: int,
        progress: Progress | None = None,
    ) -> None:
        if not variants:
            raise EvalError("no chunking variants to evaluate")
        self.sources = list(sources)
        self.loading = loading
        self.variants = dict(variants)
        self.k = k
        self.embedder = embedder
        self.model = embedder.config.model
        self.scratch_store = scratch_store
        """Makes an empty store in the given folder, one per variant."""
        self.progress = progress or (lambda stage, done, total: None)
        self._vectors: dict[str, np.ndarray] = {}

    def _embed(self, texts: Iterable[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        batch = self.embedder.batch_size * 4
        for i in range(0, len(missing), batch):
            part = missing[i : i + batch]
            self.progress("embed", i, len(missing))
            for text, vector in zip(part, self.embedder.embed(part), strict=True):
                self._vectors[text] = vector
        self.progress("embed", len(missing), len(missing))

    def run(self, questions_file: Path, documents: Sequence[Document] | None = None) -> EvalReport:
        failures: dict[str, str] = {}
        if documents is None:
            documents, failures = load_documents(self.sources, self.loading, self.progress)
        if not documents:
            raise EvalError("no documents could be loaded from the configured sources")
        texts = {d.source_id: document_text(d.elements)[0] for d in documents}
        questions = load_questions(questions_file, texts)
        query_vectors = self.embedder.embed([q.question for q in questions])
        results = []
        with tempfile.TemporaryDirectory(prefix="headwater-eval-") as scratch:
            for i, (name, variant) in enumerate(self.variants.items()):
                self.progress("strategies", i, len(self.variants))
                results.append(
                    self._variant(name, variant, documents, questions, query_vectors, Path(scratch))
                )
            self.progress("strategies", len(self.variants), len(self.variants))
        return EvalReport(
            k=self.k,
            model=self.model,
            documents=len(documents),
            questions=len(questions),
            strategies=results,
            failures=failures,
        )

    def _variant(
        self,
        name: str,
        variant: ChunkingConfig,
        documents: Sequence[Document],
        questions: Sequence[Question],
        query_vectors: np.ndarray,
        scratch: Path,
    ) -> StrategyResult:
        t0 = time.perf_counter()
        chunker = create_chunker(variant, self.model, embedder=self.embedder)
        chunks: list[Chunk] = [c for d in documents for c in chunker.chunk(d)]
        chunk_seconds = time.perf_counter() - t0
        if not chunks:
            raise EvalError(f"strategy {name!r} made no chunks")
        self._embed(c.text for c in chunks)
        counts = self.embedder.token_counts([c.text for c in chunks])
        limit = self.embedder.max_tokens
        store = self.scratch_store(scratch / name)
        try:
            store.ensure_collection(CollectionSpec(self.embedder.dimension, self.model))
            store.upsert([VectorRecord(c, self._vectors[c.text].tolist()) for c in chunks])
            per_question = []
            for q, vector in zip(questions, query_vectors, strict=True):
                hits = store.query([float(x) for x in vector], k=self.k)
                got = [
                    CharSpan(h.metadata.source_id, h.metadata.start, h.metadata.end) for h in hits
                ]
                s = score(q.references, got)
                per_question.append(QuestionResult(q.id, s.recall, s.precision, s.iou, got))
        finally:
            store.close()
        special = self.embedder.model.tokenizer.num_special_tokens_to_add()
        return StrategyResult(
            name=name,
            settings=describe(variant),
            chunks=len(chunks),
            mean_chars=float(np.mean([len(c.text) for c in chunks])),
            mean_tokens=float(np.mean(counts)) - special,
            over_window=sum(n > limit for n in counts) if limit else 0,
            chunk_seconds=chunk_seconds,
            recall=float(np.mean([r.recall for r in per_question])),
            precision=float(np.mean([r.precision for r in per_question])),
            iou=float(np.mean([r.iou for r in per_question])),
            questions=per_question,
        )


def select_variants(
    config: EvalConfig, names: Sequence[str] | None = None
) -> dict[str, ChunkingConfig]:
    """The variants to compare: ``[eval.strategies]`` (or the defaults), narrowed to `names`."""
    available = dict(config.strategies) or default_variants()
    if not names:
        return available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise EvalError(
            f"unknown strategy name(s) {', '.join(unknown)}; "
            f"known: {', '.join(available)} (configure more in [eval.strategies])"
        )
    return {n: available[n] for n in names}
