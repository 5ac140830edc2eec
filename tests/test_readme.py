"""The README's quickstart and the getting-started page's bucket example, run as written,
so their examples cannot rot.

The quickstart's config file points at a copy of two sample_docs/ folders, and its
commands and Python block run there. For the bucket example, the bucket is moto's S3
server on loopback, the config block is the config file, the cron line's command runs in
a shell, and each Python block runs in the config's folder. No LLM can be reached here,
so `llm` is a stand-in that answers with the prompt it was given: what the retriever
found must reach the model.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, SAMPLE_DOCS

pytestmark = pytest.mark.slow


def needs_bucket_extras() -> None:
    pytest.importorskip("s3fs", reason="the s3 extra is not installed")
    pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
    pytest.importorskip("llama_index.core", reason="the llamaindex extra is not installed")


PAGE = ROOT / "docs" / "getting-started.md"
SECTION = "## A bucket on a schedule, answers in LangChain and LlamaIndex"


def section_blocks(path: Path, heading: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block in the section under `heading`, in order;
    the language is empty for a block without one."""
    text = path.read_text()
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    section = text[start : end if end != -1 else None]
    return re.findall(r"^```(\w*)\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)


def blocks(language: str, path: Path = PAGE, heading: str = SECTION) -> list[str]:
    return [code for lang, code in section_blocks(path, heading) if lang == language]


def test_readme_quickstart_runs_on_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first screen: the config file, the three commands, then the Python block."""
    readme = ROOT / "README.md"
    assert readme.read_text().startswith("# Headwater\n\n```\nmake demo\nmake test\n```\n")
    (toml,) = blocks("toml", readme, "## Quickstart")
    (commands,) = blocks("", readme, "## Quickstart")
    (api,) = blocks("python", readme, "## From Python")
    notes = tmp_path / "notes"
    for folder in ("it", "handbook"):
        shutil.copytree(SAMPLE_DOCS / folder, notes / folder)
    config = toml.replace('path = "~/notes"', 'path = "notes"')
    assert config != toml, "the quickstart's config names ~/notes"
    (tmp_path / "my-docs.toml").write_text(config)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADWATER_CONFIG", raising=False)
    bindir = Path(sys.executable).parent
    outputs = []
    for line in commands.splitlines():
        command = line.split("#")[0].strip()
        assert command.startswith("headwater "), command
        done = subprocess.run(
            [str(bindir / "headwater"), *shlex.split(command)[1:]],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    first, found, again = outputs
    assert re.search(r"\b2 added", first), first  # it/security-faq.txt, handbook/welcome.md
    # The answer ranks first: the first file the results name.
    assert re.findall(r"[\w/-]+\.(?:txt|md)\b", found)[0] == "it/security-faq.txt", found
    assert re.search(r"\b0 embedded|embedded\W+0\b", again), again  # nothing changed

    exec(compile(api, "README.md", "exec"), {"__name__": "readme"})
    top = capsys.readouterr().out.splitlines()[0]
    assert "notes:it/security-faq.txt" in top


@pytest.fixture
def project(tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The page's bucket filled with sample_docs/, its config file, credentials in env."""
    needs_bucket_extras()
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTREADME")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "readme-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("HEADWATER_CONFIG", raising=False)
    (toml,) = blocks("toml")
    url = re.search(r'^path = "s3://([^/]+)/(.+)"$', toml, flags=re.MULTILINE)
    assert url, "the page's config names an s3:// path"
    bucket, prefix = url.groups()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for f in sorted(SAMPLE_DOCS.rglob("*")):
        if f.is_file():
            key = f"{prefix}/{f.relative_to(SAMPLE_DOCS).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=f.read_bytes())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/drafts/next-year.md", Body=b"# Draft\n\nTBC.")
    (tmp_path / "headwater.toml").write_text(toml)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_python(code: str, llm: Any, capsys: pytest.CaptureFixture[str]) -> str:
    exec(compile(code, str(PAGE.relative_to(ROOT)), "exec"), {"__name__": "readme", "llm": llm})
    return capsys.readouterr().out


def test_getting_started_bucket_example_runs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.runnables import RunnableLambda
    from llama_index.core.llms import MockLLM

    # The schedule: cron runs the command after the five time fields.
    (line,) = [ln for ln in blocks("cron")[0].splitlines() if ln.strip()]
    command = line.split(maxsplit=5)[5].replace("cd /srv/kb", f"cd {shlex.quote(str(project))}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", command], env=env, timeout=600, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    log = (project / "sync.log").read_text()
    assert '"added": 11' in log and '"failed": 0' in log
    assert "next-year.md" not in log  # excluded by the page's globs
    assert "readme-secret" not in log

    # The same schedule, served by Prefect: the config gives a deployment on that cron.
    if importlib.util.find_spec("prefect") is not None:
        from headwater.config import load_config
        from headwater.flows.deployments import deployments

        config = str(project / "headwater.toml")
        (scheduled,) = [d for d in deployments(load_config(config), config) if d.schedules]
        assert scheduled.name == "headwater-all"
        assert scheduled.schedules[0].schedule.cron == " ".join(line.split()[:5])

    api, langchain, llamaindex = blocks("python")
    out = run_python(api, None, capsys)
    first = out.splitlines()[0]
    assert "handbook:policies/expenses.pdf page 4 § Section 4. Receipts" in first

    echo = RunnableLambda(lambda prompt: AIMessage(content=prompt.to_string()))
    out = run_python(langchain, echo, capsys)
    assert "[handbook:policies/expenses.pdf, page 4]" in out and "Question: Do I need" in out

    out = run_python(llamaindex, MockLLM(), capsys)
    assert "handbook:engineering/oncall-runbook.html" in out.splitlines()[0]
    # The query engine's answer is the prompt it sent: the runbook chunk with its source.
    assert "source: handbook:engineering/oncall-runbook.html" in out
