"""Record `headwater eval` tables for one corpus as markdown in benchmarks/results/.

    python benchmarks/chunking_eval.py --config headwater.toml \\
        --questions tests/fixtures/eval_sample_docs.json --k 5 --k 1 \\
        --out benchmarks/results/eval_sample_docs.md

Each table is what ``headwater eval --config C --questions Q --k K --markdown`` prints;
the documents are loaded once and chunk vectors are shared between the runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe_machine  # noqa: E402
from headwater.compose import build_evaluation  # noqa: E402
from headwater.config import load_config  # noqa: E402
from headwater.ingest.evaluation import EvalReport, select_variants  # noqa: E402


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def gpu() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"


def missed_by_all(report: EvalReport) -> list[str]:
    """Questions for which no strategy retrieved any reference character."""
    ids = [q.id for q in report.strategies[0].questions]
    return [
        qid
        for i, qid in enumerate(ids)
        if all(s.questions[i].recall == 0 for s in report.strategies)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--k", type=int, action="append", help="repeat for several tables")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--note", default="", help="a remark about this run")
    parser.add_argument("--convention", default="headwater", choices=["headwater", "chroma"])
    args = parser.parse_args()

    config = load_config(args.config)
    variants = select_variants(config.eval)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.perf_counter()
    ks = args.k or [config.eval.k]
    evaluation = build_evaluation(config, variants, k=ks[0], convention=args.convention)
    corpus = evaluation.load()
    failures = corpus.failures
    reports = []
    for k in ks:
        evaluation.k = k
        reports.append(evaluation.run(args.questions, corpus))
    seconds = time.perf_counter() - t0

    machine = describe_machine()
    first = reports[0]
    lines = [
        f"# Chunking evaluation: {args.title or rel(args.config)}",
        "",
        f"- date: {started}",
        f"- machine: {machine['summary']}, {machine['os']}, {gpu()}"
        + (f" ({args.note})" if args.note else ""),
        f"- documents: {first.documents} from `{rel(args.config)}`"
        + (f" ({len(failures)} not loaded: {', '.join(failures)})" if failures else ""),
        f"- questions: {first.questions} in `{rel(args.questions)}`",
        f"- model: `{first.model}`; scratch store: Milvus Lite; total {seconds:.0f} s",
        "",
        "recall, IoU and precision (%) compare the characters of the retrieved chunks with "
        f"the characters of the reference passages ({first.convention} convention), "
        "averaged over questions; hit rate, MRR and nDCG count a chunk as relevant when it "
        "overlaps a reference. `over window` counts chunks longer than the model's input "
        "window, which the model truncates when it embeds them. `seconds` is chunk + embed "
        "+ index + query time per variant (cached vectors are not embedded again).",
    ]
    for report in reports:
        command = (
            f"headwater eval --config {rel(args.config)} --questions {rel(args.questions)} "
            f"--k {report.k} --convention {report.convention} --markdown"
        )
        best = max(report.strategies, key=lambda s: (s.iou, s.recall))
        top_recall = max(report.strategies, key=lambda s: (s.recall, s.iou))
        if report.failed:
            lines += ["", *(f"- failed: {n}: {why}" for n, why in report.failed.items())]
        lines += [
            "",
            f"## Top {report.k}",
            "",
            f"`{command}`",
            "",
            report.markdown(settings=False),
            "",
            f"Best IoU: **{best.name}** ({best.iou:.3f}); best recall: "
            f"**{top_recall.name}** ({top_recall.recall:.3f}).",
        ]
        missed = missed_by_all(report)
        if missed:
            lines += ["", f"No strategy retrieved any reference text for: {', '.join(missed)}."]
    lines += [
        "",
        "## Settings",
        "",
        "| strategy | settings |",
        "|---|---|",
        *(f"| {s.name} | `{s.settings}` |" for s in first.strategies),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
