"""Sync throughput on a real corpus, against the floor: parsing alone and encoding alone.

    .venv/bin/python -m benchmarks.throughput --corpus ../shared/bench-corpus
    .venv/bin/python -m benchmarks.throughput --scenarios sync,floor --limit 30   # quick look
    .venv/bin/python -m benchmarks.throughput --summary        # throughput.md from the JSONs

An older checkout is measured with its own copy of this script (0.1 imported `ingest`,
0.2 imports `headwater`), writing into this tree's results folder:

    git worktree add /tmp/hw-before dd255ba
    cd /tmp/hw-before && PYTHONPATH=/tmp/hw-before /work/main/.venv/bin/python \\
        benchmarks/throughput.py --label before --out /work/main/benchmarks/results

records the "before" figures. Scenarios (each in a fresh process, so peak memory is its own):

- floor: parse every file alone (load_document, then chunking timed apart), and bare
  `model.encode` on exactly the chunk texts the cold sync stored;
- sync: cold sync, re-sync with nothing changed, re-sync after one file edited and one
  deleted (the edited file's chunks that really changed are counted by chunking both
  versions);
- scale: cold sync of the corpus repeated --scale times under other names, for peak memory;
- embed: the pipeline's Embedder against bare `model.encode` on the same chunks, on the
  device `auto` picks (fp16 on CUDA for both).

The corpus is read in place: a temporary folder of hard links (copies where /tmp is
another file system) stands for it, files at the corpus's top level (SOURCES.md) left out. Results: benchmarks/results/
throughput-<label>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Appended, not prepended: an older checkout on PYTHONPATH must win (see the docstring).
sys.path.append(str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
SUFFIXES = {".pdf", ".html", ".htm", ".md", ".txt", ".docx", ".pptx", ".xlsx", ".eml", ".epub"}
EDIT = " Headwater benchmark edit: this sentence was added to one paragraph."


# -- measuring -----------------------------------------------------------------------


class PeakMemory:
    """Largest RSS of this process plus all its descendants (worker processes), sampled."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def maxrss_mb() -> dict[str, float]:
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN is the largest single child, not a sum.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"maxrss_self_mb": round(own, 1), "maxrss_largest_child_mb": round(kids, 1)}


@contextmanager
def measured(out: dict[str, Any]) -> Iterator[None]:
    out["load_before"] = [round(x, 2) for x in os.getloadavg()]
    with PeakMemory() as peak:
        t0 = time.perf_counter()
        yield
        out["wall_seconds"] = round(time.perf_counter() - t0, 3)
    out["peak_rss_mb"] = round(peak.peak / 2**20, 1)
    out.update(maxrss_mb())
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]


# -- the corpus view -----------------------------------------------------------------


def corpus_files(corpus: Path, limit: int | None) -> list[str]:
    files = sorted(
        p.relative_to(corpus).as_posix()
        for p in corpus.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and p.parent != corpus
    )
    if limit:
        # Every type in the subset, in the corpus's proportions.
        step = max(1, len(files) // limit)
        files = files[::step][:limit]
    return files


def build_view(corpus: Path, files: list[str], view: Path, copies: int = 1) -> None:
    """The corpus files, hard-linked where the file system allows, else copied (a source
    may refuse symbolic links that lead outside it); copy k > 0 lives under `repeat<k>/`."""
    if view.exists():
        shutil.rmtree(view)
    for k in range(copies):
        base = view if k == 0 else view / f"repeat{k}"
        for rel in files:
            target = base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(corpus / rel, target)
            except OSError:
                shutil.copy2(corpus / rel, target)


def write_config(work: Path, view: Path, state: Path, backend: str) -> Path:
    path = work / f"headwater-{state.name}.toml"
    path.write_text(
        f'[[sources]]\nname = "bench"\npath = "{view}"\n\n'
        f'[store]\nbackend = "{backend}"\ncollection = "bench"\n\n'
        f'[state]\ndir = "{state}"\n'
    )
    return path


def edit_copy(view: Path, rel: str) -> None:
    """Replace the file with a copy that has one sentence added to one paragraph."""
    link = view / rel
    text = link.read_text(encoding="utf-8", errors="surrogateescape")
    link.unlink()  # a hard link: writing through it would edit the corpus
    cut = [i for i in range(len(text)) if text.startswith("</p>", i)]
    at = cut[len(cut) // 2] if cut else len(text)
    link.write_text(text[:at] + EDIT + text[at:], encoding="utf-8", errors="surrogateescape")


def pick_edit_and_delete(files: list[str]) -> tuple[str, str]:
    html = [f for f in files if f.endswith((".html", ".htm"))] or files
    edit = html[len(html) // 2]
    delete = next(f for f in files if f != edit)
    return edit, delete


# -- child tasks (each runs in its own process) --------------------------------------


def task_sync(args: dict[str, Any]) -> dict[str, Any]:
    from headwater.compose import build_engine
    from headwater.config import load_config

    out: dict[str, Any] = {}
    config = load_config(args["config"])
    with measured(out):
        engine = build_engine(config)
        report = engine.run()
        engine.close()
    data = report.to_dict()
    out["report"] = {k: v for k, v in data.items() if k != "per_file"}
    watch = set(args.get("watch", []))
    out["per_file"] = [f for f in data["per_file"] if f["path"] in watch]
    out["failed_files"] = len(data["failures"])
    if args.get("dump_texts"):
        engine = build_engine(config)
        texts = [r.chunk.text for batch in engine.state.store.scan() for r in batch]
        engine.close()
        Path(args["dump_texts"]).write_text(json.dumps(texts))
        out["stored_chunks"] = len(texts)
    return out


def _source_file(root: Path, rel: str) -> Any:
    from headwater.ingest.models import SourceFile

    p = root / rel
    st = p.stat()
    return SourceFile(
        source="bench", path=rel, uri=str(p), size=st.st_size, fingerprint=f"{st.st_size}"
    )


def task_parse(args: dict[str, Any]) -> dict[str, Any]:
    """Parsing alone, one file after another in this process, as a sync without overlap."""
    from headwater.config import load_config
    from headwater.ingest.chunking import create_chunker
    from headwater.ingest.loading import load_document

    config = load_config(args["config"])
    chunker = create_chunker(config.sources[0].chunking, config.embedding.model)
    root = Path(args["view"])
    out: dict[str, Any] = {}
    load_s = chunk_s = 0.0
    pages = chunks = failed = 0
    with measured(out):
        for rel in args["files"]:
            f = _source_file(root, rel)
            data = Path(f.uri).read_bytes()
            t0 = time.perf_counter()
            try:
                doc = load_document(f, data, config.loading)
            except Exception:
                failed += 1
                load_s += time.perf_counter() - t0
                continue
            t1 = time.perf_counter()
            chunks += len(chunker.chunk(doc))
            chunk_s += time.perf_counter() - t1
            load_s += t1 - t0
            pages += max((e.page or 1 for e in doc.elements), default=1)
    out.update(
        parse_seconds=round(load_s, 3),
        chunk_seconds=round(chunk_s, 3),
        files=len(args["files"]),
        failed=failed,
        pages=pages,
        chunks=chunks,
    )
    return out


def task_changed_chunks(args: dict[str, Any]) -> dict[str, Any]:
    """How many chunks of the edited file really differ from its original's."""
    from collections import Counter

    from headwater.config import load_config
    from headwater.ingest.chunking import create_chunker
    from headwater.ingest.loading import load_document

    config = load_config(args["config"])
    chunker = create_chunker(config.sources[0].chunking, config.embedding.model)

    def texts(root: Path) -> Counter[str]:
        f = _source_file(root, args["path"])
        doc = load_document(f, Path(f.uri).read_bytes(), config.loading)
        return Counter(c.text for c in chunker.chunk(doc))

    old, new = texts(Path(args["corpus"])), texts(Path(args["view"]))
    return {"chunks": sum(new.values()), "changed": sum((new - old).values())}


def _bare_encode(texts: list[str], device: str, fp16: bool) -> tuple[float, str]:
    import torch
    from sentence_transformers import SentenceTransformer

    from headwater.ingest.embedding import EmbeddingConfig, resolve_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformer(resolve_model(EmbeddingConfig().model), device=device)
    if fp16 and model.device.type == "cuda":
        model.half()
    model.encode(texts[:64], normalize_embeddings=True)  # warm-up: kernels, allocator
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, str(model.device)


def task_encode(args: dict[str, Any]) -> dict[str, Any]:
    """Bare `model.encode` with sentence-transformers' defaults on the given texts."""
    import torch

    texts = json.loads(Path(args["texts"]).read_text())
    out: dict[str, Any] = {}
    with measured(out):
        seconds, device = _bare_encode(texts, args.get("device", "cpu"), fp16=False)
    out.update(
        encode_seconds=round(seconds, 3),
        chunks=len(texts),
        device=device,
        torch_threads=torch.get_num_threads(),
        chunks_per_second=round(len(texts) / seconds, 2),
    )
    return out


def task_embed(args: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's Embedder against bare `model.encode` on the same texts and device."""
    import torch

    from headwater.ingest.embedding import Embedder, EmbeddingConfig

    texts = json.loads(Path(args["texts"]).read_text())
    if args.get("limit"):
        texts = texts[: args["limit"]]
    embedder = Embedder(EmbeddingConfig())
    device = embedder.device
    bare, _ = _bare_encode(texts, device, fp16=True)
    embedder.embed(texts[:64])
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    embedder.embed(texts)
    if cuda:
        torch.cuda.synchronize()
    pipeline = time.perf_counter() - t0
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "chunks": len(texts),
        "bare_fp16" if cuda else "bare": {
            "seconds": round(bare, 3),
            "chunks_per_second": round(len(texts) / bare, 1),
        },
        "pipeline": {
            "seconds": round(pipeline, 3),
            "chunks_per_second": round(len(texts) / pipeline, 1),
            "batch_size": getattr(embedder, "batch_size", embedder.config.batch_size),
        },
        "pipeline_vs_bare": round(bare / pipeline, 3),
    }


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "sync": task_sync,
    "parse": task_parse,
    "changed": task_changed_chunks,
    "encode": task_encode,
    "embed": task_embed,
}


def child(task: str, **args: Any) -> dict[str, Any]:
    """Run one task in a fresh interpreter (same PYTHONPATH) and return its JSON."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps([task, args])]
    env = {**os.environ, "DO_NOT_TRACK": "true", "UNSTRUCTURED_DISABLE_NOTICE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"benchmark task {task} failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- scenarios -----------------------------------------------------------------------


def rates(sync: dict[str, Any], pages: int, files: int) -> dict[str, float]:
    wall = sync["wall_seconds"] or 1e-9
    chunks = sync["report"]["chunks"]
    return {
        "files_per_second": round(files / wall, 2),
        "pages_per_second": round(pages / wall, 2),
        "chunks_per_second": round(chunks["written"] / wall, 2),
    }


def run_label(opts: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.machine import describe_machine

    corpus = Path(opts.corpus).resolve()
    files = corpus_files(corpus, opts.limit)
    work = Path(tempfile.mkdtemp(prefix=f"hw-throughput-{opts.label}-"))
    scenarios = set(opts.scenarios.split(","))
    result: dict[str, Any] = {
        "label": opts.label,
        "machine": describe_machine(),
        "code": code_version(),
        "corpus": str(corpus),
        "files": len(files),
        "backend": opts.backend,
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    view = work / "corpus"
    build_view(corpus, files, view)
    config = write_config(work, view, work / "state", opts.backend)
    texts = work / "cold_texts.json"
    try:
        if "floor" in scenarios or "sync" in scenarios:
            parse = [child("parse", config=str(config), view=str(view), files=files)]
            for _ in range(opts.repeat - 1):
                parse.append(child("parse", config=str(config), view=str(view), files=files))
            result["parse"] = min(parse, key=lambda r: r["parse_seconds"])
            result["parse_runs"] = [r["parse_seconds"] for r in parse]
            print(f"parse alone: {result['parse']['parse_seconds']} s", flush=True)
        pages = result.get("parse", {}).get("pages", 0)
        if "sync" in scenarios:
            edit, delete = pick_edit_and_delete(files)
            colds = []
            for i in range(opts.repeat):
                state = work / "state"
                shutil.rmtree(state, ignore_errors=True)
                colds.append(child("sync", config=str(config), dump_texts=str(texts)))
                print(f"cold sync {i + 1}: {colds[-1]['wall_seconds']} s", flush=True)
            cold = min(colds, key=lambda r: r["wall_seconds"])
            cold["runs"] = [r["wall_seconds"] for r in colds]
            cold.update(rates(cold, pages, len(files)))
            noop = child("sync", config=str(config))
            noop.update(rates(noop, 0, len(files)))
            print(f"no-op re-sync: {noop['wall_seconds']} s", flush=True)
            edit_copy(view, edit)
            (view / delete).unlink()
            changed = child(
                "changed", config=str(config), corpus=str(corpus), view=str(view), path=edit
            )
            edited = child("sync", config=str(config), watch=[edit, delete])
            edited.update(rates(edited, 0, len(files)))
            edited["edited_file"] = {"path": edit, "changed_chunks": changed["changed"], **changed}
            edited["deleted_file"] = delete
            print(f"edit+delete re-sync: {edited['wall_seconds']} s", flush=True)
            result.update(cold=cold, noop=noop, edit_delete=edited)
        if "floor" in scenarios:
            if not texts.exists():
                shutil.rmtree(work / "state", ignore_errors=True)
                child("sync", config=str(config), dump_texts=str(texts))
            encodes = [child("encode", texts=str(texts)) for _ in range(opts.repeat)]
            result["encode"] = min(encodes, key=lambda r: r["encode_seconds"])
            result["encode_runs"] = [r["encode_seconds"] for r in encodes]
            print(f"encode alone: {result['encode']['encode_seconds']} s", flush=True)
        if "scale" in scenarios:
            big = work / "corpus-x"
            build_view(corpus, files, big, copies=opts.scale)
            big_config = write_config(work, big, work / "state-x", opts.backend)
            scaled = child("sync", config=str(big_config))
            scaled.update(rates(scaled, pages * opts.scale, len(files) * opts.scale))
            scaled["copies"] = opts.scale
            result["scale"] = scaled
            print(f"{opts.scale}x cold sync: {scaled['wall_seconds']} s", flush=True)
        if "embed" in scenarios:
            if not texts.exists():
                child("sync", config=str(config), dump_texts=str(texts))
            result["embed"] = child("embed", texts=str(texts), limit=opts.embed_limit)
            print(f"embedding: {result['embed']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return result


def code_version() -> str:
    here = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(here), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return str(here)
    return f"{here} @ {rev}{' + working tree changes' if dirty else ''}"


# -- reports -------------------------------------------------------------------------


def floor_seconds(r: dict[str, Any]) -> float | None:
    if "parse" in r and "encode" in r:
        return float(r["parse"]["parse_seconds"] + r["encode"]["encode_seconds"])
    return None


def label_markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Throughput: {r['label']}",
        "",
        f"Machine: {r['machine']['summary']}. Code: `{r['code']}`. Corpus: `{r['corpus']}` "
        f"({r['files']} files), store `{r['backend']}`. {r['started']} to {r['finished']}.",
        "",
        f"Command: `{r['command']}`",
        "",
    ]
    floor = floor_seconds(r)
    if floor:
        p, e = r["parse"], r["encode"]
        lines += [
            "## Floor",
            "",
            f"- parsing alone (load_document, one file after another): **{p['parse_seconds']} s** "
            f"for {p['files']} files, {p['pages']} pages ({p['failed']} failed); chunking them "
            f"took {p['chunk_seconds']} s more",
            f"- `model.encode` alone on the cold sync's {e['chunks']} chunks ({e['device']}, "
            f"{e['torch_threads']} torch threads): **{e['encode_seconds']} s** "
            f"({e['chunks_per_second']} chunks/s)",
            f"- floor = {floor:.1f} s; load average {e['load_before']}",
            "",
        ]
    rows = [
        ("cold", "cold sync"),
        ("noop", "re-sync, nothing changed"),
        ("edit_delete", "re-sync, 1 edited + 1 deleted"),
        ("scale", "cold sync, corpus x3"),
    ]
    present = [(k, name) for k, name in rows if k in r]
    if present:
        lines += [
            "## Syncs",
            "",
            "| scenario | wall s | x floor | list_plan | load | chunk | embed | write | commit "
            "| files/s | pages/s | chunks/s | embedded | written | peak MB | load avg |",
            "|---|" + "---:|" * 15 + "---|",
        ]
        for key, name in present:
            s = r[key]
            st = s["report"]["stage_seconds"]
            ratio = f"{s['wall_seconds'] / floor:.2f}" if floor and key == "cold" else ""
            lines.append(
                f"| {name} | {s['wall_seconds']} | {ratio} | "
                + " | ".join(
                    str(st.get(k, 0))
                    for k in ("list_plan", "load", "chunk", "embed", "write", "commit")
                )
                + f" | {s['files_per_second']} | {s['pages_per_second']} | {s['chunks_per_second']}"
                f" | {s['report']['chunks']['embedded']} | {s['report']['chunks']['written']}"
                f" | {s['peak_rss_mb']} | {s['load_before'][0]} |"
            )
        lines += [
            "",
            "Stage seconds add up each file's own time; where stages overlap (files parsed "
            "while a batch embeds) their sum exceeds the wall time. Peak MB is the largest "
            "RSS of the sync's process and its worker processes together, sampled every 50 ms.",
            "",
        ]
    if "edit_delete" in r:
        ed = r["edit_delete"]
        f = ed["edited_file"]
        per = {p["path"]: p for p in ed["per_file"]}
        got = per.get(f["path"], {})
        lines += [
            f"Edited `{f['path']}` (one sentence added to one paragraph): {f['chunks']} chunks, "
            f"{f['changed']} of them changed; the sync embedded **{got.get('embedded')}** "
            f"and deleted {got.get('deleted')}. Deleted `{ed['deleted_file']}`: "
            f"{per.get(ed['deleted_file'], {}).get('deleted')} chunks removed.",
            "",
        ]
    if "embed" in r:
        lines += [
            "## Embedding: pipeline vs bare `model.encode`",
            "",
            "```",
            json.dumps(r["embed"], indent=1),
            "```",
            "",
        ]
    return "\n".join(lines)


TARGETS = """\
| target | before | after |
|---|---|---|
| cold sync <= 0.85 x floor | {cold_before} | {cold_after} |
| no-op re-sync < 3% of cold, 0 embedded | {noop_before} | {noop_after} |
| edit re-embeds only changed chunks | {edit_before} | {edit_after} |
| peak memory x3 corpus <= 1.2 x peak | {mem_before} | {mem_after} |
| GPU pipeline >= 90% of bare fp16 encode | {gpu_before} | {gpu_after} |
"""


def target_cells(r: dict[str, Any] | None) -> dict[str, str]:
    if r is None:
        return dict.fromkeys(("cold", "noop", "edit", "mem", "gpu"), "not measured")
    out = {}
    floor = floor_seconds(r)
    cold = r.get("cold")
    out["cold"] = (
        f"{cold['wall_seconds']:.1f} s / floor {floor:.1f} s = **{cold['wall_seconds'] / floor:.2f}**"
        if cold and floor
        else "not measured"
    )
    noop = r.get("noop")
    out["noop"] = (
        f"{noop['wall_seconds']:.2f} s = **{100 * noop['wall_seconds'] / cold['wall_seconds']:.1f}%**, "
        f"{noop['report']['chunks']['embedded']} embedded"
        if noop and cold
        else "not measured"
    )
    ed = r.get("edit_delete")
    if ed:
        f = ed["edited_file"]
        got = {p["path"]: p for p in ed["per_file"]}.get(f["path"], {})
        out["edit"] = (
            f"{got.get('embedded')} embedded for {f['changed']} changed of {f['chunks']} chunks "
            f"(run total {ed['report']['chunks']['embedded']})"
        )
    else:
        out["edit"] = "not measured"
    scale = r.get("scale")
    if scale and cold:
        # The 1x peak of the same run as the 3x sync, when the two come from different runs.
        one = r.get("scale_reference_cold_peak_mb", cold["peak_rss_mb"])
        out["mem"] = (
            f"{one:.0f} MB -> {scale['peak_rss_mb']:.0f} MB = **{scale['peak_rss_mb'] / one:.2f}**"
        )
    else:
        out["mem"] = "not measured"
    emb = r.get("embed")
    out["gpu"] = (
        f"{emb['pipeline']['chunks_per_second']} vs {emb['bare_fp16']['chunks_per_second']} "
        f"chunks/s = **{emb['pipeline_vs_bare']:.2f}**"
        if emb and emb.get("gpu")
        else r.get("gpu_note", "not measured: no GPU was lent to this task")
    )
    return out


REPRODUCE = """\
## Reproduce

```
# after (this working tree, 0.2: one package, engine run/diff split, pebble parser pool,
# PDFs read without unstructured's pdf extra); about 12 minutes on 2 cores
.venv/bin/python -m benchmarks.throughput --corpus ../shared/bench-corpus --label after \\
    --scenarios floor,sync
# before (0.1, recorded by the previous round at 2377d6f, which dd255ba changed only in
# the README): the same command at that commit, which imported `ingest`, not `headwater`
git worktree add /tmp/hw-before dd255ba
cd /tmp/hw-before && PYTHONPATH=/tmp/hw-before /work/main/.venv/bin/python \\
    benchmarks/throughput.py --corpus /work/shared/bench-corpus --label before \\
    --scenarios floor,sync,scale --out /work/main/benchmarks/results
# GPU: pipeline Embedder vs bare model.encode (fp16) on the cold sync's chunks
.venv/bin/python -m benchmarks.throughput --scenarios embed --label gpu
# this table
.venv/bin/python -m benchmarks.throughput --summary
```

The floor is parsing alone (load_document over every file, one after another, in one
process) plus bare `model.encode` (sentence-transformers defaults, all cores) on exactly
the chunk texts the cold sync stored, each run by itself in a fresh process. Every
scenario runs in a fresh process; peak memory is the largest sampled RSS of that process
and its parser workers together. The machine is shared: each result file records the load
average at the start and end of every scenario.
"""


def summary(out: Path) -> str:
    runs = {}
    for label in ("before", "after"):
        path = out / f"throughput-{label}.json"
        runs[label] = json.loads(path.read_text()) if path.exists() else None
    gpu = out / "throughput-gpu.json"
    if runs["after"] is not None and gpu.exists():
        runs["after"]["embed"] = json.loads(gpu.read_text()).get("embed")
    b, a = target_cells(runs["before"]), target_cells(runs["after"])
    table = TARGETS.format(
        **{f"{k}_before": v for k, v in b.items()}, **{f"{k}_after": v for k, v in a.items()}
    )
    machine = next((r["machine"]["summary"] for r in runs.values() if r), "")
    return (
        "# Throughput: before and after\n\n"
        f"Machine: {machine}. Corpus: ../shared/bench-corpus (150 files: 50 PDF, 100 HTML). "
        "Details per run: throughput-before.md, throughput-after.md (and their JSON).\n\n"
        + table
        + "\n"
        + REPRODUCE
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "bench-corpus"))
    parser.add_argument("--label", default="after", help="names the result files")
    parser.add_argument("--scenarios", default="floor,sync,scale", help="floor,sync,scale,embed")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of cold sync and floors; best kept"
    )
    parser.add_argument("--scale", type=int, default=3, help="copies of the corpus for 'scale'")
    parser.add_argument(
        "--limit", type=int, default=None, help="only this many files (a quick look)"
    )
    parser.add_argument("--embed-limit", type=int, default=None, help="chunks for 'embed'")
    parser.add_argument("--backend", default="faiss", help="store backend for the syncs")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument(
        "--summary", action="store_true", help="print the before/after targets table"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        task, args = json.loads(opts.child)
        print(json.dumps(TASKS[task](args)))
        return
    out = Path(opts.out)
    if opts.summary:
        text = summary(out)
        (out / "throughput.md").write_text(text)
        print(text)
        return
    result = run_label(opts)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"throughput-{opts.label}" + (f"-limit{opts.limit}" if opts.limit else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{stem}.md").write_text(label_markdown(result) + "\n")
    print(label_markdown(result))


if __name__ == "__main__":
    main()
