"""Planted secrets (a password in the Milvus URI, the Milvus token, the Weaviate API key)
never show in logs, reports, exceptions, or the output of sync, status and query, even
when every store call fails."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from headwater.compose import build_engine
from headwater.ingest.embedding import Embedder
from headwater.ingest.engine import SyncEngine
from headwater.ingest.errors import HeadwaterError

from .conftest import make_config

PASSWORD, TOKEN, API_KEY = "S3CRETpw-in-uri", "S3CRETtoken-in-env", "S3CRETkey-in-env"
# Nothing listens on port 1: every connection is refused at once.
MILVUS_URI = f"http://reader:{PASSWORD}@127.0.0.1:1"
HEADWATER = Path(sys.executable).parent / "headwater"
FAST_FAIL = {"attempts": 2, "initial_s": 0.1, "max_s": 0.2}


def env() -> dict[str, str]:
    return {
        **os.environ,
        "MILVUS_TOKEN": f"reader:{TOKEN}",
        "WEAVIATE_API_KEY": API_KEY,
        "HEADWATER_STORE__BACKEND": "milvus",
        "HEADWATER_STORE__MILVUS__URI": MILVUS_URI,
        "HEADWATER_STORE__MILVUS__TIMEOUT": "2",
        "HEADWATER_STORE__RETRY__ATTEMPTS": "2",
        "HEADWATER_STORE__RETRY__INITIAL_S": "0.1",
    }


def in_process(engine: SyncEngine) -> list[str]:
    """Everything a caller of the API can see of a failed sync."""
    seen: list[str] = []
    try:
        report = engine.run()
        seen.append(json.dumps(report.to_dict()))
    except HeadwaterError as exc:
        seen += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen += [engine.state.store.location, engine.state.target, repr(engine.state.store)]
    try:
        engine.close()
    except Exception as exc:
        seen.append("".join(traceback.format_exception(exc)))
    return seen


@pytest.mark.slow
def test_planted_secrets_appear_nowhere(
    tmp_path: Path,
    docs: Path,
    embedder: Embedder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MILVUS_TOKEN", f"reader:{TOKEN}")
    monkeypatch.setenv("WEAVIATE_API_KEY", API_KEY)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    milvus = make_config(
        tmp_path,
        docs,
        store={"milvus": {"uri": MILVUS_URI, "timeout": 2}, "retry": FAST_FAIL},
    )
    seen += in_process(build_engine(milvus, embedder=embedder))
    pytest.importorskip("weaviate")
    weaviate = make_config(
        tmp_path,
        docs,
        store={
            "backend": "weaviate",
            "weaviate": {"url": "http://127.0.0.1:1", "timeout": 2},
            "retry": FAST_FAIL,
        },
    )
    seen += in_process(build_engine(weaviate, embedder=embedder))
    seen.append(caplog.text)

    config = tmp_path / "headwater.toml"
    config.write_text(
        f'[[sources]]\nname = "docs"\npath = "{docs}"\n[loading]\nworkers = 0\n'
        f'[embedding]\ndevice = "cpu"\n[state]\ndir = "{tmp_path / "cli-state"}"\n'
    )
    for args in (["sync", "--json", "-v"], ["status"], ["query", "receipts"], ["verify"]):
        proc = subprocess.run(
            [str(HEADWATER), *args, "-c", str(config)],
            capture_output=True,
            text=True,
            env=env(),
            timeout=300,
        )
        assert proc.returncode != 0, (args, proc.stdout, proc.stderr)
        seen += [proc.stdout, proc.stderr]

    everything = "\n".join(seen)
    assert "127.0.0.1:1" in everything  # the failures were seen and reported
    for secret in (PASSWORD, TOKEN, API_KEY):
        assert secret not in everything, f"{secret} leaked"
