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
