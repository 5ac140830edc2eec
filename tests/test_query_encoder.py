"""Queries encoded with the model's ONNX export: same rankings as torch, no torch imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from headwater.api import KnowledgeBase
from headwater.compose import build_engine
from headwater.config import HeadwaterConfig
from headwater.ingest.embedding import DEFAULT_MODEL, Embedder, EmbeddingConfig
from headwater.ingest.errors import ModelLoadError
from headwater.ingest.query_encoder import (
    FOLDER,
    ExportCheck,
    ExportInfo,
    QueryEncoder,
    choose_runtime,
    compare,
    export_path,
    fingerprint,
    model_folder,
    read_export,
)

from .conftest import FIXTURES, SAMPLE_DOCS, make_config

HEAVY = (
    "torch",
    "transformers",
    "sentence_transformers",
    "sklearn",
    "scipy",
    "unstructured",
    "prefect",
    "langchain_core",
    "llama_index",
)
"""Packages `headwater query` must not import once the model's export exists."""


def _check(passed: bool) -> ExportCheck:
    return ExportCheck(
        probes=3, min_cosine=1.0, mean_cosine=1.0, same_rankings=passed, passed=passed
    )


def _info(passed: bool, folder: Path, stamp: str) -> ExportInfo:
    return ExportInfo(
        format=1,
        model=DEFAULT_MODEL,
        folder=str(folder),
        fingerprint=stamp,
        inputs=["input_ids", "attention_mask"],
        max_length=256,
        do_lower_case=False,
        dimension=384,
        check=_check(passed),
        seconds=0,
        versions={},
    )


@pytest.mark.parametrize(
    ("setting", "export", "expected"),
    [
        ("torch", None, "torch"),
        ("torch", True, "torch"),
        ("auto", None, "export"),
        ("auto", True, "onnx"),
        ("auto", False, "torch"),
        ("onnx", None, "export"),
        ("onnx", True, "onnx"),
        ("onnx", False, "torch"),  # the encoder turns this one into an error
    ],
)
def test_choose_runtime(setting: str, export: bool | None, expected: str) -> None:
    info = None if export is None else _info(export, Path("/m"), "x")
    assert choose_runtime(setting, info) == expected  # type: ignore[arg-type]


def test_compare_needs_equal_vectors_and_equal_rankings() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(12, 8)).astype(np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    same = compare(reference, reference + np.float32(1e-8))
    assert same.passed and same.same_rankings and same.min_cosine > 0.99999

    moved = reference.copy()
    moved[3] = reference[7]  # one text's vector is another's: cosine and rankings change
    changed = compare(reference, moved)
    assert not changed.passed
    assert "cosine" in changed.reason and changed.min_cosine < 0.99999


def test_fingerprint_follows_the_model_files(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / ".gitattributes").write_text("ignored")
    before = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == before
    (tmp_path / ".gitattributes").write_text("still ignored")
    assert fingerprint(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert fingerprint(tmp_path) != before


def test_a_failed_check_means_torch_in_auto_and_an_error_in_onnx(tmp_path: Path) -> None:
    folder = model_folder(DEFAULT_MODEL)
    assert folder is not None
    stamp = fingerprint(folder)
    path = export_path(tmp_path, DEFAULT_MODEL, folder, stamp)
    path.mkdir(parents=True)
    (path / "info.json").write_text(_info(False, folder, stamp).model_dump_json())

    def no_torch() -> Embedder:
        raise AssertionError("the runtime is decided without loading the torch model")

    auto = QueryEncoder(EmbeddingConfig(), tmp_path, no_torch)
    assert not auto.prepared()
    assert auto.runtime == "torch"
    strict = QueryEncoder(EmbeddingConfig(query_runtime="onnx"), tmp_path, no_torch)
    with pytest.raises(ModelLoadError, match=r"embedding\.query_runtime"):
        _ = strict.runtime


# -- the real model ----------------------------------------------------------------------


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HEADWATER_CONFIG": str(cwd / "headwater.toml")},
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Path]:
    """Three sample documents synced into FAISS; the first `headwater query` exports the model."""
    root = tmp_path_factory.mktemp("onnx-query")
    docs = root / "docs"
    for rel in ("policies/expenses.pdf", "policies/leave-policy.docx", "it/security-faq.txt"):
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        (docs / rel).write_bytes((SAMPLE_DOCS / rel).read_bytes())
    (root / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n'
        '[store]\nbackend = "faiss"\n[loading]\nworkers = 0\n'
    )
    config = make_config(root, docs, store={"backend": "faiss"}, state={"dir": ".headwater"})
    engine = build_engine(config, embedder=embedder)
    try:
        assert engine.run().ok
    finally:
        engine.close()
    first = _run("-m", "headwater", "query", "receipts", "--json", cwd=root)
    assert first.returncode == 0, first.stderr
    yield root


@pytest.mark.slow
def test_first_query_exports_and_later_queries_import_no_torch(project: Path) -> None:
    exports = [p for p in (project / ".headwater" / FOLDER).iterdir() if read_export(p)]
    assert len(exports) == 1
    info = read_export(exports[0])
    assert info is not None and info.check.passed, info
    assert (exports[0] / "model.onnx").is_file()

    question = "How many days of annual leave do I get?"
    out = _run("-X", "importtime", "-m", "headwater", "query", question, "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    imported = set(re.findall(r"^import time:.*\|\s+([\w.]+)$", out.stderr, re.MULTILINE))
    assert "onnxruntime" in imported and "tokenizers" in imported
    assert not {m.split(".")[0] for m in imported} & set(HEAVY)
    hits = json.loads(out.stdout)
    assert hits[0]["path"] == "policies/leave-policy.docx"


def _questions() -> list[str]:
    sets = json.loads((FIXTURES / "eval_sample_docs.json").read_text())["questions"]
    queries = json.loads((FIXTURES / "sample_queries.json").read_text())
    return [q["question"] for q in sets] + [q["question"] for q in queries]


@pytest.mark.slow
def test_onnx_ranks_the_shipped_questions_as_torch_does(
    project: Path, synced_config: HeadwaterConfig, embedder: Embedder
) -> None:
    # The whole sample_docs store; the export made by the project's first query.
    onnx = QueryEncoder(EmbeddingConfig(device="cpu"), project / ".headwater", lambda: embedder)
    assert onnx.prepared() and onnx.runtime == "onnx"
    with (
        KnowledgeBase(synced_config, embedder=embedder) as torch_kb,
        KnowledgeBase(synced_config) as onnx_kb,
    ):
        onnx_kb.__dict__["query_encoder"] = onnx
        lowest = 1.0
        for question in _questions():
            for mode in ("dense", "hybrid"):
                want = [h.id for h in torch_kb.search(question, k=5, mode=mode)]
                got = [h.id for h in onnx_kb.search(question, k=5, mode=mode)]
                assert got == want, (question, mode)
            a = np.asarray(embedder.embed_query(question))
            b = np.asarray(onnx.embed_query(question))
            lowest = min(lowest, float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
        assert lowest > 0.99999
