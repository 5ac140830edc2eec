"""Runs syncs in forked children for tests/test_kill.py, so each run skips the imports
and the model load and a kill costs about a second.

The harness imports everything and loads the embedding model without ever running it
(a process whose thread pools have started cannot be forked safely); each child runs one
real `SyncEngine.run()`, exactly as `headwater sync` does. Commands arrive on stdin as JSON
lines and answers leave on stdout the same way:

- ``{"op": "sync", "config": PATH, "fault": "commit:1" | null}`` ->
  ``{"exit": CODE}`` or ``{"signal": NUMBER}``
- ``{"op": "ids", "config": PATH}`` -> ``{"ids": [...], "count": N, "verified": BOOL}``
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

EMBEDDER = Embedder(EmbeddingConfig(device="cpu"))
_ = EMBEDDER.dimension  # loads the weights, runs nothing


def _sync(config: str) -> int:
    engine = build_engine(load_config(config), embedder=EMBEDDER)
    try:
        return 0 if engine.run().ok else 1
    finally:
        engine.close()


def _ids(config: str, out: str) -> int:
    from headwater.ingest.verify import verify

    engine = build_engine(load_config(config), embedder=EMBEDDER)
    try:
        ids = [r.id for batch in engine.state.store.scan() for r in batch]
        answer = {
            "ids": ids,
            "count": engine.state.store.count(),
            "verified": verify(engine.state).ok,
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
