"""Runs syncs in forked children for tests/test_kill.py, so each run skips the imports
and the model load and a kill costs about a second.

The harness imports everything and loads the embedding model without ever running it
(a process whose thread pools have started cannot be forked safely); each child runs one
real `SyncEngine.run()`, exactly as `headwater sync` does. Commands arrive on stdin as JSON
lines and answers leave on stdout the same way:

- ``{"op": "sync", "config": PATH, "fault": "commit:1" | null}`` ->
  ``{"exit": CODE}`` or ``{"signal": NUMBER}``
- ``{"op": "ids", "config": PATH}`` -> ``{"ids": [...], "count": N, "verified": BOOL,
  "lexical_missing": [...], "lexical_ghosts": [...]}``: stored chunks the full-text index
  does not find by their own text, and ids it finds that are not stored.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from headwater.compose import build_engine
from headwater.config import load_config
from headwater.ingest.embedding import Embedder, EmbeddingConfig
from headwater.ingest.faults import ENV
from headwater.ingest.store import VectorStore

EMBEDDER = Embedder(EmbeddingConfig(device="cpu"))
_ = EMBEDDER.dimension  # loads the weights, runs nothing


def _sync(config: str) -> int:
    engine = build_engine(load_config(config), embedder=EMBEDDER)
    try:
        return 0 if engine.run().ok else 1
    finally:
        engine.close()


def _lexical_check(store: VectorStore, texts: dict[str, str]) -> tuple[list[str], list[str]]:
    """Each chunk's own text, searched with k = every chunk, must find it and only stored ids."""
    missing, found = [], set()
    for cid, text in texts.items():
        hits = {h.id for h in store.lexical_query(text, k=len(texts))}
        found |= hits
        if cid not in hits:
            missing.append(cid)
    return sorted(missing), sorted(found - texts.keys())


def _ids(config: str, out: str) -> int:
    from headwater.ingest.verify import verify

    engine = build_engine(load_config(config), embedder=EMBEDDER)
    try:
        store = engine.state.store
        records = [r for batch in store.scan() for r in batch]
        missing, ghosts = _lexical_check(store, {r.id: r.chunk.text for r in records})
        answer = {
            "ids": [r.id for r in records],
            "count": store.count(),
            "verified": verify(engine.state).ok,
            "lexical_missing": missing,
            "lexical_ghosts": ghosts,
        }
    finally:
        engine.close()
    with open(out, "w") as f:
        json.dump(answer, f)
    return 0


def _in_child(command: dict[str, Any], out: str) -> dict[str, Any]:
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            if command.get("fault"):
                os.environ[ENV] = command["fault"]
            code = (
                _sync(command["config"])
                if command["op"] == "sync"
                else _ids(command["config"], out)
            )
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.WEXITSTATUS(status)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "answer.json")
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            answer = _in_child(command, out)
            if command["op"] == "ids" and answer.get("exit") == 0:
                with open(out) as f:
                    answer = json.load(f)
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
