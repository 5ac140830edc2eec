"""The install works: PDF parsing and sentence-transformers in one fresh process, offline."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import SAMPLE_DOCS

SCRIPT = f"""
import headwater
from sentence_transformers import SentenceTransformer
from headwater.ingest.config import LoadingConfig
from headwater.ingest.embedding import Embedder, resolve_model
from headwater.ingest.embedding import EmbeddingConfig
from headwater.ingest.loading import load_document
from headwater.ingest.models import SourceFile

path = {str(SAMPLE_DOCS / "policies/expenses.pdf")!r}
data = open(path, "rb").read()
doc = load_document(SourceFile("s", "expenses.pdf", path, len(data), "fp"), data, LoadingConfig())
assert len(doc.elements) > 20, len(doc.elements)
assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").endswith(("all-MiniLM-L6-v2", "model"))
v = Embedder(EmbeddingConfig(device="cpu")).embed(["hello"])
assert v.shape == (1, 384)
# The install never pulls torchvision: its only build beside the CPU torch cannot load,
# and transformers imports it whenever it is installed.
import importlib.util
assert importlib.util.find_spec("torchvision") is None
print("ok")
"""


def test_pdf_parsing_and_embeddings_work_in_one_offline_process() -> None:
    # Point every proxy at a closed port: any attempt to reach the internet fails fast.
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("NO_PROXY", "HF_HUB_OFFLINE")}
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
