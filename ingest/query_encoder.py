"""Query encoding without torch: the embedding model exported to ONNX once, run by ONNX Runtime.

Importing torch, transformers and sentence-transformers takes seconds; encoding one query
takes milliseconds. So the first query that finds no export of the model exports it (that
process pays torch once), checks it against the torch model on a fixed set of probe texts,
and keeps it in the state folder; later queries load ``onnxruntime`` and ``tokenizers``
only. The export is the model's whole sentence-transformers pipeline (transformer, pooling,
normalization, as its ``modules.json`` says), traced on CPU in float32.

An export is found by the model's identity: its name, its folder, and each file's size and
modification time there. It appears whole or not at all (written in a temporary folder,
then renamed). An export whose vectors or rankings differ from the torch model's is kept
as a record of the failed check only, and queries use torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel

from headwater.ingest.embedding import EmbeddingConfig, QueryRuntime, resolve_model
from headwater.ingest.errors import ModelLoadError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession
    from tokenizers import Tokenizer

    from headwater.ingest.embedding import Embedder

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
"""Changes when an export's files change shape; an older export is then made again."""

FOLDER = "query-encoder"
"""Where exports live inside the state folder."""

MIN_COSINE = 0.99999
"""Cosine every probe's ONNX vector must reach against the torch model's (float noise: 1e-7)."""

TOP = 5
"""Each probe's nearest other probes, in order, must be the same under both runtimes."""

PROBES = (
    "How many days of paid holiday does a full-time employee get each year?",
    "Do I need to keep receipts for the things I claim back on expenses?",
    "I'm on call and nobody acknowledges a page. Who gets paged next, and after how long?",
    "By what time do I have to tell my manager that I'm off sick?",
    "How many people died in the Lion Air Flight 610 accident?",
    "What does asyncio.Queue.join() wait for?",
    "bisect.insort_left(a, x, lo=0, hi=len(a), *, key=None)",
    "GDPR article 17",
    "vacation",
    "VPN",
    "Wie viele Urlaubstage habe ich pro Jahr?",
    "¿Cuántos días de vacaciones tengo?",
    "年次有給休暇は何日ですか",
    "Café crème, naïve résumé – “quoted” text… and an emoji 🚲",
    "Parental leave: 26 weeks at full pay, then 13 weeks at half pay.",
    "The school board approved the 2016-17 budget of $146.3 million on April 6.",
    "Retry with exponential backoff: wait 1 s, 2 s, 4 s, then give up after 5 attempts.",
    "SELECT id, name FROM employees WHERE start_date < '2020-01-01' ORDER BY name;",
    "   leading and trailing spaces   ",
    "UPPER CASE QUERY ABOUT EXPENSE LIMITS",
    # Longer than MiniLM's 256-token window, so truncation is compared too.
    " ".join(
        f"Clause {i}: the contractor shall deliver item {i} within {i + 3} working days, "
        "inspected and signed off by the site manager."
        for i in range(1, 30)
    ),
)
"""Texts both runtimes encode before an export is used: questions like the shipped question
sets', other languages, code, odd spacing, and one text past the model's input window."""

_INPUTS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
"""Model inputs the exporter knows, and the `tokenizers.Encoding` field that fills each."""


class QueryEmbedder(Protocol):
    """Anything that turns a query into a vector (`Embedder`, `QueryEncoder`)."""

    def embed_query(self, text: str) -> list[float]: ...


class ExportCheck(BaseModel):
    """How the export's vectors compared with the torch model's on `PROBES`."""

    probes: int
    min_cosine: float
    mean_cosine: float
    same_rankings: bool
    passed: bool
    reason: str = ""


class ExportInfo(BaseModel):
    """``info.json`` of one export: what it was made from, how to feed it, its check."""

    format: int
    model: str
    folder: str
    fingerprint: str
    inputs: list[str]
    max_length: int
    do_lower_case: bool
    dimension: int
    check: ExportCheck
    seconds: float
    versions: dict[str, str]


# -- finding an export -----------------------------------------------------------------------


def model_folder(model: str) -> Path | None:
    """The local folder holding `model`'s files: a path, the copy a package ships, or the
    Hugging Face cache's snapshot; None when the model is only on the hub."""
    resolved = Path(resolve_model(model))
    if resolved.is_dir():
        return resolved
    if model.startswith(("/", ".", "~")):
        return None  # a path that is no folder: the model's own loader says so
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(model, "modules.json")
    except ValueError:  # not a valid repo id either
        return None
    return Path(found).parent if isinstance(found, str) else None


def fingerprint(folder: Path) -> str:
    """Each file's path, size and modification time under `folder`: cheap to read on every
    query, and changed by any edit or replacement of the model's files."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            st = path.stat()
            h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def export_path(state_dir: Path, model: str, folder: Path, stamp: str) -> Path:
    key = hashlib.sha256(f"{EXPORT_FORMAT}\0{model}\0{folder}\0{stamp}".encode()).hexdigest()
    return state_dir / FOLDER / key[:20]


def read_export(path: Path) -> ExportInfo | None:
    """The export's record, or None when there is none (or it is unreadable)."""
    try:
        return ExportInfo.model_validate_json((path / "info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def choose_runtime(setting: QueryRuntime, export: ExportInfo | None) -> str:
    """The runtime to use: "onnx", "torch", or "export" (make the export, then ask again)."""
    if setting == "torch":
        return "torch"
    if export is None:
        return "export"
    if export.check.passed:
        return "onnx"
    return "torch"


# -- the light runtime -----------------------------------------------------------------------


class OnnxEncoder:
    """Encodes one text at a time with an export's ONNX model and tokenizer; loads on first use."""

    def __init__(self, path: Path, info: ExportInfo) -> None:
        self.path = path
        self.info = info
        self._session: InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[InferenceSession, Tokenizer]:
        with self._lock:
            if self._session is None or self._tokenizer is None:
                import onnxruntime
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
                # The same cut as sentence-transformers: max_seq_length, from the right.
                tokenizer.enable_truncation(max_length=self.info.max_length)
                tokenizer.no_padding()
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3
                # One short text: a second thread saves little and its pool spins on the CPU.
                options.intra_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    str(self.path / "model.onnx"), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def embed(self, text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        session, tokenizer = self._load()
        encoding = tokenizer.encode(text.lower() if self.info.do_lower_case else text)
        feeds = {
            name: np.asarray([getattr(encoding, _INPUTS[name])], dtype=np.int64)
            for name in self.info.inputs
        }
        (vectors,) = session.run(["sentence_embedding"], feeds)
        return np.asarray(vectors[0], dtype=np.float32)

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embed(text)]


# -- making an export (torch) ----------------------------------------------------------------


def compare(reference: np.ndarray[Any, Any], candidate: np.ndarray[Any, Any]) -> ExportCheck:
    """Row-wise cosine of two sets of normalized vectors of the same texts, and whether each
    text's `TOP` nearest others come out in the same order under both."""
    cosines = np.sum(reference * candidate, axis=1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    )

    def rankings(vectors: np.ndarray[Any, Any]) -> list[list[int]]:
        scores = vectors @ vectors.T
        np.fill_diagonal(scores, -np.inf)
        return [list(np.argsort(-row, kind="stable")[:TOP]) for row in scores]

    same = rankings(reference) == rankings(candidate)
    low = float(cosines.min())
    reasons = []
    if low < MIN_COSINE:
        reasons.append(f"a probe's cosine to the torch vector is {low:.6f} (< {MIN_COSINE})")
    if not same:
        reasons.append(f"the top {TOP} neighbours of some probe differ")
    return ExportCheck(
        probes=len(reference),
        min_cosine=low,
        mean_cosine=float(cosines.mean()),
        same_rankings=same,
        passed=not reasons,
        reason="; ".join(reasons),
    )


def export_model(model: str, folder: Path, dest: Path, stamp: str) -> ExportInfo:
    """Export `model` (files in `folder`) into `dest`, check it, and record the result.

    Loads torch and the model on CPU; `dest` appears whole (a failed check leaves only
    ``info.json``, so it is not tried again for the same files).
    """
    # A state folder that cannot be written fails here, before the model is loaded.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{dest.name}-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        return _export(model, folder, tmp, dest, stamp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export(model: str, folder: Path, tmp: Path, dest: Path, stamp: str) -> ExportInfo:
    import onnxruntime
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    st = SentenceTransformer(str(folder), device="cpu")
    st.eval()
    prepare = getattr(st, "preprocess", None) or st.tokenize
    sample = {k: v for k, v in prepare(list(PROBES[:2])).items() if isinstance(v, torch.Tensor)}
    names = list(sample)
    unknown = [n for n in names if n not in _INPUTS]
    if unknown:
        raise ModelLoadError(f"{model}: the ONNX export does not know the inputs {unknown}")

    class Forward(torch.nn.Module):
        # The exporter passes tensors by position; the model takes one dict of features.
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.st(dict(zip(names, tensors, strict=True)))[
                "sentence_embedding"
            ]
            return out

    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    # The tracer warns of Python branches on shapes; the probes' check is the real test.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Forward().eval(),
            tuple(sample[n] for n in names),
            str(tmp / "model.onnx"),
            input_names=names,
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    st.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    first = st[0]
    info = ExportInfo(
        format=EXPORT_FORMAT,
        model=model,
        folder=str(folder),
        fingerprint=stamp,
        inputs=names,
        max_length=int(st.max_seq_length or 512),
        do_lower_case=bool(getattr(first, "do_lower_case", False)),
        dimension=int(st.get_embedding_dimension() or 0),
        check=ExportCheck(probes=0, min_cosine=0, mean_cosine=0, same_rankings=False, passed=False),
        seconds=0,
        versions={
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
    )
    reference = st.encode(
        list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    encoder = OnnxEncoder(tmp, info)
    candidate = np.stack([encoder.embed(text) for text in PROBES])
    del encoder
    info.check = compare(np.asarray(reference, dtype=np.float32), candidate)
    info.seconds = round(time.perf_counter() - started, 3)
    if not info.check.passed:
        # Nothing to load later; the record keeps auto from exporting on every query.
        (tmp / "model.onnx").unlink()
    _write_synced(tmp / "info.json", info.model_dump_json(indent=2))
    _publish(tmp, dest)
    return info


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _publish(tmp: Path, dest: Path) -> None:
    for name in os.listdir(tmp):
        with open(tmp / name, "rb") as f:
            os.fsync(f.fileno())
    try:
        os.rename(tmp, dest)
    except OSError:
        if not (dest / "info.json").is_file():
            raise
        # Another process published the same export first; theirs is as good as ours.
        return
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_other_exports(root: Path, model: str, keep: Path) -> None:
    """Older exports of `model` (its files changed since): about the model's size each."""
    for path in root.iterdir() if root.is_dir() else ():
        if path == keep or path.name.startswith("."):
            continue
        info = read_export(path)
        if info is not None and info.model == model:
            shutil.rmtree(path, ignore_errors=True)


# -- the query encoder -----------------------------------------------------------------------


class QueryEncoder:
    """Encodes queries with the runtime ``embedding.query_runtime`` asks for.

    auto: ONNX Runtime when an export of the model passed its check; the first query that
    finds none makes it (loading torch once). onnx: the same, but an export that cannot be
    made or failed its check is an error. torch: always the full model.
    """

    def __init__(
        self, config: EmbeddingConfig, state_dir: Path, torch_model: Callable[[], Embedder]
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self._torch_model = torch_model
        self._onnx: OnnxEncoder | None = None
        self._runtime: str | None = None
        self._lock = threading.Lock()

    @property
    def runtime(self) -> str:
        """What encodes the queries, "onnx" or "torch" (decided on first use)."""
        with self._lock:
            if self._runtime is None:
                self._runtime = self._decide()
            return self._runtime

    def prepared(self) -> bool:
        """Whether queries will run on an export that exists and passed its check: no
        torch, no export to make (reads only file metadata and ``info.json``)."""
        if self._runtime is not None:
            return self._runtime == "onnx"
        if self.config.query_runtime == "torch":
            return False
        folder = model_folder(self.config.model)
        if folder is None:
            return False
        stamp = fingerprint(folder)
        info = read_export(export_path(self.state_dir, self.config.model, folder, stamp))
        return choose_runtime(self.config.query_runtime, info) == "onnx"

    def embed_query(self, text: str) -> list[float]:
        if self.runtime == "onnx" and self._onnx is not None:
            return self._onnx.embed_query(text)
        return self._torch_model().embed_query(text)

    def _decide(self) -> str:
        setting: QueryRuntime = self.config.query_runtime
        if setting == "torch":
            return "torch"
        model = self.config.model
        folder = model_folder(model)
        if folder is None:
            return self._unavailable("the model has no local folder to export from")
        stamp = fingerprint(folder)
        path = export_path(self.state_dir, model, folder, stamp)
        info = read_export(path)
        if choose_runtime(setting, info) == "export":
            info = self._export(model, folder, path, stamp)
            if info is None:
                return "torch"
        assert info is not None
        if choose_runtime(setting, info) == "onnx":
            self._onnx = OnnxEncoder(path, info)
            return "onnx"
        return self._unavailable(f"its ONNX export did not match the model: {info.check.reason}")

    def _export(self, model: str, folder: Path, path: Path, stamp: str) -> ExportInfo | None:
        if importlib.util.find_spec("onnx") is None:
            self._unavailable("the 'onnx' package, which exports it, is not installed")
            return None
        log.info("exporting %s to ONNX for queries (once; later queries skip torch)", model)
        try:
            info = export_model(model, folder, path, stamp)
        except OSError as exc:
            self._unavailable(f"its export could not be written to {path.parent}: {exc}")
            return None
        except Exception as exc:
            self._unavailable(f"exporting it failed: {type(exc).__name__}: {exc}")
            return None
        remove_other_exports(path.parent, model, keep=path)
        log.info(
            "ONNX export of %s: check %s (min cosine %.6f, same rankings %s), %.1fs",
            model,
            "passed" if info.check.passed else f"failed: {info.check.reason}",
            info.check.min_cosine,
            info.check.same_rankings,
            info.seconds,
        )
        return info

    def _unavailable(self, why: str) -> str:
        message = f"queries with {self.config.model!r} cannot run on ONNX Runtime: {why}"
        if self.config.query_runtime == "onnx":
            raise ModelLoadError(
                f"{message}. Set embedding.query_runtime = 'auto' (falls back to torch) or 'torch'"
            )
        log.info("%s; they use torch", message)
        return "torch"
