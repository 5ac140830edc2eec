"""What machine a benchmark ran on, recorded beside its results."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        mem_gb = f"{kb / 1024 / 1024:.0f} GB"
    cores = str(
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    )
    return {
        "cpu": cpu,
        "cores": cores,
        "memory": mem_gb,
        "python": platform.python_version(),
        "os": platform.platform(),
        "summary": f"{cores} cores ({cpu}), {mem_gb} RAM, Python {platform.python_version()}",
    }


def save_results(
    out: Path, stem: str, results: list[object], command: str, title: str
) -> list[str]:
    """Write `<stem>.json` (results as dataclasses, with the machine and the command) and
    return the first lines of its Markdown table file."""
    import json
    import time
    from dataclasses import asdict

    machine = describe_machine()
    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine,
        "command": command,
        "results": [asdict(r) for r in results],  # type: ignore[call-overload]
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return [
        f"# {title}",
        "",
        f"{payload['date']}, {machine['summary']}. Reproduce: `{command}`",
        "",
    ]
