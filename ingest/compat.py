"""Work-arounds for broken combinations of third-party packages, applied on import.

unstructured's PDF extra, which Headwater no longer installs but a user may add for the
hi_res strategy, pulls torchvision (through unstructured-inference and timm), and
pip pairs the CPU build of torch with torchvision's CUDA-linked build, whose import fails
("operator torchvision::nms does not exist"). transformers imports torchvision whenever
it is installed, so that one package would stop sentence-transformers. Nothing in
Headwater needs torchvision (only unstructured's hi_res strategy would), so a build that
cannot load is made to look absent. The check reads two version files; it imports
neither package.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path


def _version_file(package: str, pattern: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(pattern, text, re.M)
    return found.group(1) if found else None


def hide_broken_torchvision() -> bool:
    """Hide a CUDA build of torchvision beside a CPU build of torch; True if it did."""
    if "torchvision" in sys.modules:
        return False
    vision = _version_file("torchvision", r"^__version__\s*=\s*['\"]([^'\"]+)")
    if vision is None or "+cu" not in vision:
        return False
    if _version_file("torch", r"^cuda\b[^=]*=\s*(\S+)") != "None":
        return False
    # importlib.util.find_spec() answers None for a module set to None in sys.modules,
    # which is what transformers asks.
    sys.modules["torchvision"] = None  # type: ignore[assignment]
    return True
