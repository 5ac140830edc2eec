"""scripts/make_odd_files.py, importable by the tests (scripts/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys

from .conftest import ROOT

_PATH = ROOT / "scripts" / "make_odd_files.py"
_spec = importlib.util.spec_from_file_location("make_odd_files", _PATH)
assert _spec is not None and _spec.loader is not None
odd = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("make_odd_files", odd)
_spec.loader.exec_module(odd)
