from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import load_config
from headwater.ingest.chunking.config import (
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    TokenChunking,
)
from headwater.ingest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "headwater.toml"
    path.write_text(text)
    return path


def test_shipped_configs_are_valid() -> None:
    demo = load_config(ROOT / "headwater.toml")
    assert demo.store.backend == "milvus"
    assert demo.sources[0].name == "sample_docs"
    assert demo.resolve(demo.sources[0].path) == ROOT / "sample_docs"
    example = load_config(ROOT / "headwater.example.toml")
    assert example.sources[0].exclude == ["**/drafts/**", "*.tmp"]


def test_default_config_is_found_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[[sources]]\nname = "a"\npath = "docs"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADWATER_CONFIG", raising=False)
    cfg = load_config()
    assert cfg.sources[0].name == "a"
    assert cfg.state_dir == tmp_path / ".headwater"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[embedding]\nmodle = "x"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "embedding.modle: unknown key" in str(exc.value)
    assert str(path) in str(exc.value)


def test_bad_value_names_the_nested_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[sources]]\nname = "a"\npath = "d"\n[sources.chunking]\nchunk_size = 50\nchunk_overlap = 80\n',
    )
    with pytest.raises(
        ConfigError,
        match=r"sources\.a\.chunking\.chunk_overlap: 80 must be smaller than chunk_size \(50\)",
    ):
        load_config(path)


def test_each_strategy_has_its_own_validated_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[sources]]\nname = "docs"\npath = "d"\n[sources.chunking]\nstrategy = "headers"\n'
        'header_levels = 2\n[[sources]]\nname = "pdfs"\npath = "p"\n[sources.chunking]\n'
        'strategy = "elements"\nsplit_by = "page"\nmax_characters = 600\n'
        '[eval.strategies.fine]\nstrategy = "token"\nchunk_size = 64\n',
    )
    cfg = load_config(path)
    headers, elements = (s.chunking for s in cfg.sources)
    assert isinstance(headers, HeadersChunking) and headers.header_levels == 2
    assert isinstance(elements, ElementsChunking) and elements.max_characters == 600
    assert isinstance(cfg.eval.strategies["fine"].chunking, TokenChunking)
    # No strategy key: the default strategy, as before strategies existed.
    plain = load_config(write(tmp_path, '[[sources]]\nname = "a"\npath = "d"\n'))
    assert isinstance(plain.sources[0].chunking, RecursiveChunking)


@pytest.mark.parametrize(
    ("chunking", "message"),
    [
        (
            'strategy = "fixed"',
            r"sources\.docs\.chunking\.strategy: unknown strategy 'fixed'; choose one of: recursive, token, headers, elements, semantic",
        ),
        ("chunk_size = 0", r"sources\.docs\.chunking\.chunk_size: Input should be greater than 0"),
        (
            'strategy = "token"\nheader_levels = 2',
            r"sources\.docs\.chunking\.header_levels: unknown key",
        ),
        (
            'strategy = "headers"\nheader_levels = 9',
            r"sources\.docs\.chunking\.header_levels: Input should be less than or equal to 6",
        ),
        (
            'strategy = "elements"\nsplit_by = "page"\ncombine_text_under_n_chars = 100',
            r"sources\.docs\.chunking: combine_text_under_n_chars applies to split_by = 'title' only",
        ),
        (
            'strategy = "semantic"\nchunk_size = 30\nmin_chunk_size = 40',
            r"sources\.docs\.chunking\.min_chunk_size: 40 must be smaller than chunk_size \(30\)",
        ),
    ],
)
def test_chunking_errors_name_the_source_and_key(
    tmp_path: Path, chunking: str, message: str
) -> None:
    path = write(
        tmp_path, f'[[sources]]\nname = "docs"\npath = "d"\n[sources.chunking]\n{chunking}\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_eval_strategy_errors_name_the_variant(tmp_path: Path) -> None:
    path = write(tmp_path, '[eval.strategies.tiny]\nstrategy = "recursive"\nchunk_overlap = 300\n')
    with pytest.raises(ConfigError, match=r"eval\.strategies\.tiny\.chunk_overlap: 300 must be"):
        load_config(path)


def test_bad_device_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[embedding]\ndevice = "gpu"\n')
    with pytest.raises(ConfigError, match=r"embedding\.device: must be 'auto'"):
        load_config(path)


def test_backend_table_keys_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, '[store.milvus]\nurii = "x"\n')
    with pytest.raises(ConfigError, match=r"store\.milvus\.urii"):
        load_config(path)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[store\nbackend = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '[embedding]\ndevice = "cpu"\nbatch_size = 8\n[store]\ncollection = "a"\n'
    )
    monkeypatch.setenv("HEADWATER_EMBEDDING__DEVICE", "cuda:1")
    monkeypatch.setenv("HEADWATER_STORE__MILVUS__URI", "http://localhost:19530")
    cfg = load_config(path)
    assert cfg.embedding.device == "cuda:1"
    assert cfg.embedding.batch_size == 8  # untouched keys of the same section survive
    assert cfg.store.collection == "a"
    assert cfg.store.backend_options()["uri"] == "http://localhost:19530"


def test_bad_environment_override_names_key_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "")
    monkeypatch.setenv("HEADWATER_STORE__BACKEND", "nosuchstore")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "store.backend" in str(exc.value) or "store: unknown backend 'nosuchstore'" in str(
        exc.value
    )
    assert "nosuchstore" in str(exc.value)


def test_duplicate_source_names_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[sources]]\nname = "a"\npath = "x"\n[[sources]]\nname = "a"\npath = "y"\n'
    )
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
