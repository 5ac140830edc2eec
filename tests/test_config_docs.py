"""docs/configuration.md is generated from the config models (scripts/gen_config_docs.py):
the committed page must be what the models say today, so it cannot drift from them.

Regenerate with `HEADWATER_WRITE_DOCS=1 .venv/bin/pytest tests/test_config_docs.py` (or run
the script)."""

from __future__ import annotations

import importlib.util
import os
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

from headwater.config import load_config
from headwater.ingest.errors import ConfigError

from .conftest import ROOT

_spec = importlib.util.spec_from_file_location(
    "gen_config_docs", ROOT / "scripts" / "gen_config_docs.py"
)
assert _spec is not None and _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def _keys(table: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in table.items():
        if isinstance(value, dict) and key not in ("storage_options", "schedule"):
            out |= _keys(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                out |= _keys(item, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_configuration_page_is_generated_from_the_models() -> None:
    page = gen.render()
    if os.environ.get("HEADWATER_WRITE_DOCS") == "1":
        gen.PAGE.write_text(page)
    committed = gen.PAGE.read_text() if gen.PAGE.exists() else ""
    assert committed == page, (
        "docs/configuration.md is stale: run `python scripts/gen_config_docs.py` "
        "(or rerun this test with HEADWATER_WRITE_DOCS=1)"
    )


def test_every_key_of_the_example_file_is_documented_in_its_table() -> None:
    page = gen.render()
    example = tomllib.loads((ROOT / "headwater.example.toml").read_text())
    # Each table's section runs from its heading to the next heading of the same level
    # or above; the key must sit in a row of the table's own section.
    sections = dict(
        (m.group(1), page[m.end() :].split("\n## ", 1)[0])
        for m in re.finditer(r"^#+ `\[+([a-z_.]+)\]+`", page, flags=re.MULTILINE)
    )
    missing = []
    for dotted in sorted(_keys(example)):
        table, _, key = dotted.rpartition(".")
        body = sections.get(table, "")
        if table == "sources.chunking":  # one section per strategy, under one heading
            body = page.split("### `[sources.chunking]`", 1)[1].split("\n## ", 1)[0]
        if f"| `{key}` |" not in body:
            missing.append(dotted)
    assert not missing, f"keys of headwater.example.toml missing from their table: {missing}"
    assert "min(2, CPU cores)" in page  # a machine-dependent default is stated, not computed


def test_every_config_example_in_the_docs_loads(tmp_path: Path) -> None:
    """Each ```toml block of the README and the docs is a config file the loader accepts."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = 0
    for page in pages:
        fence = r"^( *)```toml\n(.*?)^\1```$"
        for indent, block in re.findall(fence, page.read_text(), flags=re.DOTALL | re.M):
            found += 1
            config = tmp_path / f"{page.stem}-{found}.toml"
            config.write_text(textwrap.dedent(block) if indent else block)
            try:
                load_config(config)
            except ConfigError as exc:
                raise AssertionError(f"{page.name}, block {found}:\n{block}\n{exc}") from None
    assert found >= 5
