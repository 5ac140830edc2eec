"""What the command line prints: help, levels, quiet runs, heartbeats, other libraries' noise."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from headwater import __version__
from headwater.cli import app, parse_file_types, parse_pages
from headwater.ingest.logs import shown
from headwater.ingest.progress import Heartbeat, Tally, duration

from .test_cli import headwater

COMMANDS = ["sync", "query", "migrate", "verify", "status", "serve", "watch", "eval"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_everywhere_with_the_common_options_and_no_bool_metavar(
    command: str | None, flag: str
) -> None:
    args = [command, flag] if command else [flag]
    out = CliRunner().invoke(app, args, prog_name="headwater", env={"COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    assert "Usage: headwater" in out.output
    assert "<bool>" not in out.output
    for option in ("--log-level", "--quiet", "--verbose", "-h"):
        assert option in out.output
    # -v says what it does.
    assert re.search(r"-v\s+Log more", out.output)


def test_version() -> None:
    out = CliRunner().invoke(app, ["--version"])
    assert out.exit_code == 0
    assert out.output.strip() == f"headwater {__version__}"


def test_a_bad_log_level_names_the_choices() -> None:
    out = CliRunner().invoke(app, ["status", "--log-level", "loud"])
    assert out.exit_code == 2
    assert "debug" in out.output and "error" in out.output


@pytest.mark.parametrize(
    ("name", "level", "threshold", "expected"),
    [
        ("headwater.ingest.pdf", logging.WARNING, logging.WARNING, True),
        ("headwater.ingest.pdf", logging.INFO, logging.WARNING, False),
        ("headwater.ingest.pdf", logging.INFO, logging.INFO, True),
        ("distributed.nanny", logging.WARNING, logging.WARNING, True),
        ("pdfminer.pdfinterp", logging.WARNING, logging.WARNING, False),
        ("pypdf._reader", logging.ERROR, logging.WARNING, False),
        ("pypdf._reader", logging.WARNING, logging.ERROR, False),
        ("pdfminer.pdfinterp", logging.WARNING, logging.INFO, True),
        ("pdfminer.pdfinterp", logging.INFO, logging.INFO, False),
        ("pdfminer.psparser", logging.DEBUG, logging.DEBUG, True),
        ("pymilvus", logging.CRITICAL, logging.WARNING, True),
        ("headwaterish", logging.WARNING, logging.WARNING, False),
    ],
)
def test_other_libraries_are_the_debug_log(
    name: str, level: int, threshold: int, expected: bool
) -> None:
    assert shown(name, level, threshold) is expected


def test_heartbeat_lines_add_up_batches() -> None:
    tally = Tally(started=0.0)
    assert tally.line(now=4) == "starting; 4s elapsed"
    tally.update("load", 0, 151)
    tally.update("load", 40, 151)
    for batch in (512, 300):  # each batch is embedded from 0 to its size
        tally.update("embed", 0, batch)
        tally.update("embed", batch, batch)
    tally.update("embed", 0, 200)
    assert tally.line(now=150) == "40/151 files loaded, 812 chunks embedded; 2m30s elapsed"
    assert tally.counts("embed") == (812, 1012)
    tally.update("strategies", 1, 3)
    assert tally.line(now=3725).endswith(", strategies 1/3; 1h02m elapsed")
    assert duration(59.9) == "59s"


def _beating() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "headwater-heartbeat"]


def test_a_heartbeat_says_each_runs_own_counts_while_it_lasts() -> None:
    said: queue.Queue[str] = queue.Queue()
    heart = Heartbeat(said.put, every=0.01)
    for run in (1, 2):  # the watcher beats for each batch, each counted from zero
        with heart.beating():
            heart.progress("load", run, 10)
            line = said.get(timeout=30)
            while "files loaded" not in line:  # a beat before the first callback
                line = said.get(timeout=30)
            assert re.fullmatch(rf"{run}/10 files loaded; \ds elapsed", line), line
        assert _beating() == []  # the run is over: so are its lines
    silent = Heartbeat(said.put, every=0)  # --quiet, or bars on a terminal
    with silent.beating():
        assert _beating() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["3"], (3,)), (["2,5", "4-6"], (2, 5, 4, 6)), ([" 1 , 1"], (1,)), ([], ())],
)
def test_pages_are_listed_or_ranges(args: list[str], expected: tuple[int, ...]) -> None:
    assert parse_pages(args) == expected


@pytest.mark.parametrize("bad", ["x", "0", "5-3", "1-x"])
def test_a_bad_page_is_a_usage_error(bad: str) -> None:
    with pytest.raises(typer.BadParameter, match="page"):
        parse_pages([bad])


def test_file_types_are_normalised() -> None:
    assert parse_file_types(["PDF,.docx", "md", "pdf"]) == ("pdf", "docx", "md")


def noisy_pdf(text: str) -> bytes:
    """A one-page PDF whose colour operators have too few components for their colour
    spaces (pdfminer: "Cannot set non-stroke color") and whose startxref points past its
    xref table (pypdf: "incorrect startxref pointer"): both read it, and log warnings."""
    content = (
        f"/DeviceRGB cs 0.5 sc /DeviceCMYK CS 1 SC BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
    ).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    return out + b"startxref\n%d\n%%%%EOF\n" % (xref + 7)


NOISE = ("Cannot set", "startxref", "GOAWAY", "too_many_pings")


def test_a_noisy_pdf_leaves_stderr_clean_quiet_prints_only_errors_and_heartbeats(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "receipts.pdf").write_bytes(noisy_pdf("Receipts are kept for seven years."))
    (docs / "notes.xyz").write_text("?")
    (tmp_path / "headwater.toml").write_text(
        '[[sources]]\nname = "docs"\npath = "docs"\n[embedding]\ndevice = "cpu"\n'
        # One parser worker: the noise came from the worker processes.
        "[loading]\nworkers = 1\n"
    )

    # Stderr is not a terminal here: no bars, a heartbeat (1 s instead of 30 s).
    first = headwater("sync", "--heartbeat", "1", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "files: 1 added" in first.stdout
    assert "stages overlap" in first.stdout and "wall" in first.stdout
    lines = first.stderr.splitlines()
    assert lines[0].startswith("Listing 1 source, loading the embedding model")
    assert "starting 1 parser worker…" in lines[0]
    assert any(re.search(r"elapsed$", line) for line in lines)
    assert not [line for line in lines if any(n in line for n in NOISE)], first.stderr
    assert "failed docs:notes.xyz: unsupported file type '.xyz'" in first.stderr

    # The same kind of file with -v: the parsers' warnings are there, in the debug log.
    (docs / "more.pdf").write_bytes(noisy_pdf("Mileage is paid per kilometre."))
    loud = headwater("sync", "-v", "--json", "--heartbeat", "1", cwd=tmp_path)
    assert json.loads(loud.stdout)["files"]["added"] == 1
    assert "Cannot set" in loud.stderr and "startxref" in loud.stderr
    assert re.search(r"files loaded.*elapsed", loud.stderr), loud.stderr

    # --quiet, after the subcommand: nothing but the error, nothing on stdout.
    quiet = headwater("sync", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 1
    assert quiet.stdout == ""
    assert [line for line in quiet.stderr.splitlines() if line.strip()] == [
        "failed docs:notes.xyz: unsupported file type '.xyz' (unchanged since it failed; "
        "not parsed again)"
    ]


def test_options_of_one_command_line_do_not_leak_into_the_next() -> None:
    from headwater.cli import _out

    runner = CliRunner()
    missing = ["--config", "/nonexistent/headwater.toml"]
    first = runner.invoke(app, ["status", "--quiet", "--log-level", "debug", *missing])
    assert first.exit_code == 2 and (_out.quiet, _out.level) == (True, "debug")
    runner.invoke(app, ["-h"])
    assert (_out.quiet, _out.level, _out.log_level) == (False, None, logging.WARNING)


@pytest.mark.parametrize(
    ("level", "preset", "expected"),
    [
        (logging.WARNING, None, "NONE"),
        (logging.INFO, None, "NONE"),
        (logging.DEBUG, None, None),  # the debug log shows gRPC's own lines
        (logging.WARNING, "ERROR", "ERROR"),  # a variable the user set wins
    ],
)
def test_grpc_core_is_silenced_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, level: int, preset: str | None, expected: str | None
) -> None:
    from headwater.ingest.logs import quiet_native_libraries

    if preset is None:
        monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    else:
        monkeypatch.setenv("GRPC_VERBOSITY", preset)
    monkeypatch.delenv("GRPC_TRACE", raising=False)
    quiet_native_libraries(level)
    assert os.environ.get("GRPC_VERBOSITY") == expected
