"""One package, `headwater`: the wheel holds it alone, with every subpackage and one version."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import headwater

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAPPED = PYPROJECT["tool"]["setuptools"]["package-dir"]


def _packages_on_disk() -> set[str]:
    found = set()
    for name, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts or rel.parts[:1] in (
                ("ingest",),
                ("connectors",),
                ("flows",),
            ):
                continue  # headwater/ingest etc. are symlinks to the folders mapped below
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_package_folder_is_listed_for_the_install() -> None:
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _packages_on_disk()


def test_one_version_everywhere() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "headwater", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"headwater {headwater.__version__}"
    assert importlib.metadata.version("headwater") == headwater.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {headwater.__version__} " in changelog


def test_the_wheel_installs_headwater_alone(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("headwater-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"headwater"}
    for expected in (
        "headwater/py.typed",
        "headwater/cli.py",
        "headwater/ingest/engine.py",
        "headwater/ingest/chunking/config.py",
        "headwater/connectors/testing.py",
        "headwater/flows/sync.py",
    ):
        assert expected in names
    assert len(names) == len(set(names))
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "headwater = headwater.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
