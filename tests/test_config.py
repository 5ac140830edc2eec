from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater.config import load_config
from headwater.ingest.chunking.config import (
    ElementsChunking,
    HeadersChunking,
    RecursiveChunking,
    TokenChunking,
)
from headwater.ingest.config import IngestConfig, stays_on_legacy_lite
from headwater.ingest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "headwater.toml"
    path.write_text(text)
    return path


def test_shipped_configs_are_valid() -> None:
    demo = load_config(ROOT / "headwater.toml")
    assert demo.store.backend == "faiss"
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


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        # A misspelt key or table, at any depth: its path and the closest valid key.
        ('[embeding]\ndevice = "cpu"', "embeding: unknown key; did you mean embedding?"),
        (
            '[store]\ncolection = "x"',
            "store.colection: unknown key; did you mean store.collection?",
        ),
        (
            "[store.fais]\nnlist = 4",
            "store.fais: not a known backend table; did you mean store.faiss?",
        ),
        (
            '[store]\nbackend = "faiss"\n[store.faiss]\nnlistt = 4',
            "store.faiss.nlistt: unknown key; did you mean store.faiss.nlist?",
        ),
        (
            '[[sources]]\nname = "docs"\npath = "d"\nexlude = ["*.tmp"]',
            "sources.docs.exlude: unknown key; did you mean sources.docs.exclude?",
        ),
        (
            '[[sources]]\nname = "docs"\npath = "d"\n[sources.chunking]\nstrategy = "token"\n'
            "chunk_sise = 5",
            "sources.docs.chunking.chunk_sise: unknown key; did you mean "
            "sources.docs.chunking.chunk_size?",
        ),
        (
            '[eval.strategies.fine]\nstrategy = "token"\nchunk_overlapp = 5',
            "eval.strategies.fine.chunk_overlapp: unknown key; did you mean "
            "eval.strategies.fine.chunk_overlap?",
        ),
        (
            '[eval.strategies.fine]\nmdoe = "hybrid"',
            "eval.strategies.fine.mdoe: unknown key; did you mean eval.strategies.fine.mode?",
        ),
        (
            "[orchestration.watch]\ndebounce = 300",
            "orchestration.watch.debounce: unknown key; did you mean orchestration.watch.debounce_ms?",
        ),
        # Nothing close: no guess.
        ("[embedding]\nzzzz = 1", "embedding.zzzz: unknown key (check the spelling)"),
    ],
)
def test_a_misspelt_key_gets_the_closest_valid_one(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    lines = str(exc.value).splitlines()
    assert lines == [f"{path}: invalid configuration", f"  {message}"]


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
            r"sources\.docs\.chunking\.header_levels: `header_levels` belongs to the headers "
            r"strategy; this source uses `token`",
        ),
        (
            'strategy = "token"\nunit = "chars"',
            r"sources\.docs\.chunking\.unit: `unit` belongs to the recursive and headers "
            r"strategies; this source uses `token`",
        ),
        (
            'strategy = "token"\nchunk_sise = 5',
            r"sources\.docs\.chunking\.chunk_sise: unknown key",
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


def test_eval_variant_key_of_another_strategy_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[eval.strategies.v]\nstrategy = "semantic"\nsplit_by = "page"\n')
    with pytest.raises(
        ConfigError,
        match=r"eval\.strategies\.v\.split_by: `split_by` belongs to the elements strategy; "
        r"this variant uses `semantic`",
    ):
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
    assert cfg.store.backend_options("milvus")["uri"] == "http://localhost:19530"


def test_duplicate_source_names_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[[sources]]\nname = "a"\npath = "x"\n[[sources]]\nname = "a"\npath = "y"\n'
    )
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "key", "variable"),
    [
        (
            '[store.milvus]\nuri = "http://reader:pw@milvus:19530"',
            "store.milvus.uri",
            "MILVUS_TOKEN",
        ),
        ('[store.milvus]\ntoken = "reader:pw"', "store.milvus.token", "MILVUS_TOKEN"),
        (
            '[store.weaviate]\nurl = "https://admin:pw@example.weaviate.cloud"',
            "store.weaviate.url",
            "WEAVIATE_API_KEY",
        ),
        ('[store.weaviate]\napi_key = "pw"', "store.weaviate.api_key", "WEAVIATE_API_KEY"),
        (
            '[[sources]]\nname = "b"\npath = "s3://AKIA:pw@bucket/docs"',
            "sources.b.path",
            "AWS_SECRET_ACCESS_KEY",
        ),
        (
            '[[sources]]\nname = "b"\npath = "s3://bucket/docs"\n'
            '[sources.storage_options]\nclient_kwargs = {aws_secret_access_key = "pw"}',
            "sources.b.storage_options.client_kwargs.aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
        ),
        (
            '[orchestration]\ndask_address = "tls://user:pw@10.0.0.5:8786"',
            "orchestration.dask_address",
            "environment",
        ),
    ],
)
def test_secrets_in_the_file_are_refused_with_the_variable_to_use(
    tmp_path: Path, text: str, key: str, variable: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text + "\n"))
    message = str(exc.value)
    assert "secrets do not belong in the file" in message
    line = next(line for line in message.splitlines() if line.strip().startswith(key + ":"))
    assert variable in line
    assert "pw" not in message.replace("password", "")


def test_secrets_from_the_environment_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_STORE__MILVUS__URI", "http://reader:pw@milvus:19530")
    cfg = load_config(write(tmp_path, '[store.milvus]\ntoken_env = "MY_TOKEN"\n'))
    assert cfg.store.backend_options("milvus")["uri"] == "http://reader:pw@milvus:19530"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[sources]]\nname = "docs"\npath = "d"\n[sources.chunking]\nchunk_size = "200"',
            "sources.docs.chunking.chunk_size: must be a whole number, not the string '200'",
        ),
        ('[loading]\nocr = "true"', "loading.ocr: must be true or false, not the string 'true'"),
        ("[loading]\nworkers = 2.0", "loading.workers: must be a whole number, not 2.0"),
        ("[embedding]\ncache = 1", "embedding.cache: must be true or false, not 1"),
        (
            '[store.milvus]\ntimeout = "30"',
            "store.milvus.timeout: must be a number, not the string",
        ),
        (
            '[store.faiss]\nnlist = "64"',
            "store.faiss.nlist: must be a whole number, not the string",
        ),
    ],
)
def test_values_that_pass_only_by_coercion_are_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text + "\n"))


def test_environment_strings_are_still_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "HEADWATER_LOADING__WORKERS": "0",
        "HEADWATER_LOADING__OCR": "true",
        "HEADWATER_EMBEDDING__CACHE": "false",
        "HEADWATER_STORE__MILVUS__TIMEOUT": "3.5",
        "HEADWATER_STORE__RETRY__ATTEMPTS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, '[[sources]]\nname = "a"\npath = "d"\n[loading]\nmax_file_mb = 5\n')
    cfg = load_config(path)
    assert cfg.loading.workers == 0 and cfg.loading.ocr is True
    assert cfg.embedding.cache is False and cfg.store.retry.attempts == 2
    assert cfg.loading.max_file_mb == 5.0  # an integer where a float goes is no coercion
    assert cfg.store.backend_options("milvus")["timeout"] == "3.5"  # the backend validates it


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # A misspelt section or key: named, with the closest real variable.
        (
            {"HEADWATER_EMBEDING__DEVICE": "cpu"},
            r"^unknown environment variable .*\n  HEADWATER_EMBEDING__DEVICE: unknown variable; "
            r"did you mean HEADWATER_EMBEDDING__DEVICE\?$",
        ),
        (
            {"HEADWATER_LOADING__WORKER": "0"},
            r"HEADWATER_LOADING__WORKER: unknown variable; did you mean HEADWATER_LOADING__WORKERS\?",
        ),
        # Keys of a backend's own table are checked against that backend's model.
        (
            {"HEADWATER_STORE__MILVUS__URII": "x"},
            r"HEADWATER_STORE__MILVUS__URII: unknown variable; did you mean "
            r"HEADWATER_STORE__MILVUS__URI\?",
        ),
        (
            {"HEADWATER_STORE__MILVSU__URI": "x"},
            r"did you mean HEADWATER_STORE__MILVUS__URI\?",
        ),
        (
            {"HEADWATER_NOTHING_LIKE_IT": "1"},
            r"HEADWATER_NOTHING_LIKE_IT: unknown variable; no config key has this name",
        ),
        # A value from a variable: the variable is named, not the file.
        (
            {"HEADWATER_STORE__BACKEND": "fais"},
            r"^invalid environment variable\n  HEADWATER_STORE__BACKEND \(store\.backend\): unknown "
            r"backend 'fais'; "
            r"known: faiss, milvus, weaviate$",
        ),
        (
            {"HEADWATER_EMBEDDING__BATCH_SIZE": "many"},
            r"^invalid environment variable\n  HEADWATER_EMBEDDING__BATCH_SIZE \(embedding\.batch_size\): "
            r"must be 'auto'",
        ),
        (
            {"HEADWATER_STORE__MILVUS__TIMEOUT": "soon"},
            r"^invalid environment variable\n  HEADWATER_STORE__MILVUS__TIMEOUT \(store\.milvus\.timeout\): "
            r"Input should be "
            r"a valid number",
        ),
        # A lower-case variable is read by pydantic-settings too, so it is checked too.
        (
            {"headwater_embedding__devise": "cpu"},
            r"headwater_embedding__devise: unknown variable; did you mean "
            r"HEADWATER_EMBEDDING__DEVICE\?",
        ),
    ],
)
def test_environment_errors_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, '[[sources]]\nname = "docs"\npath = "d"\n')
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as exc:
        load_config(path)
    assert str(path) not in str(exc.value)


def test_variables_that_are_not_config_keys_are_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[[sources]]\nname = "docs"\npath = "d"\n')
    for name in (
        "HEADWATER_CONFIG",
        "HEADWATER_FAULT",
        "HEADWATER_FAULT_FILE",
        "HEADWATER_WRITE_DOCS",
        "HEADWATER_TEST_MILVUS_URI",
    ):
        monkeypatch.setenv(name, "")
    # Keys inside lists and tables (eval variants) and whole tables as JSON are config keys.
    monkeypatch.setenv("HEADWATER_EVAL__STRATEGIES__X__CHUNK_SIZE", "64")
    monkeypatch.setenv("HEADWATER_STORE__RETRY__ATTEMPTS", "2")
    cfg = load_config(path)
    assert cfg.eval.strategies["x"].chunking.chunk_size == 64
    assert cfg.store.retry.attempts == 2


def test_a_bad_variable_and_a_bad_key_are_both_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[embedding]\nmodle = "x"\n')
    monkeypatch.setenv("HEADWATER_LOADING__WORKERS", "-1")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    lines = str(exc.value).splitlines()
    assert lines[0] == f"{path}: invalid configuration"
    assert "  embedding.modle: unknown key; did you mean embedding.model?" in lines
    assert (
        "  HEADWATER_LOADING__WORKERS (loading.workers): Input should be greater than or equal to 0"
        in lines
    )


@pytest.mark.parametrize(
    ("store", "lite_file", "faiss_store", "stays"),
    [
        ({}, True, False, True),  # an old default's Lite store, nothing named: keep it
        ({}, False, False, False),  # a new state folder: the default, FAISS
        ({}, True, True, False),  # a FAISS store exists beside it: the default again
        ({"backend": "faiss"}, True, False, False),  # named: the config decides
        ({"backend": "milvus"}, True, False, False),  # named already, nothing to do
    ],
)
def test_which_configs_stay_on_an_old_default_lite_store(
    store: dict[str, str], lite_file: bool, faiss_store: bool, stays: bool
) -> None:
    config = IngestConfig(store=store)
    assert stays_on_legacy_lite(config, lite_file=lite_file, faiss_store=faiss_store) is stays


def test_a_state_folder_of_the_old_default_keeps_milvus_lite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, '[[sources]]\nname = "a"\npath = "docs"\n')
    assert load_config(path).store.backend == "faiss"
    (tmp_path / ".headwater" / "milvus.db").mkdir(parents=True)  # Lite 3 makes a folder
    with caplog.at_level("WARNING"):
        assert load_config(path).store.backend == "milvus"
    assert 'Set [store] backend = "milvus"' in caplog.text and "migrate" in caplog.text
    path.write_text(path.read_text() + '[store]\nbackend = "faiss"\n')
    assert load_config(path).store.backend == "faiss"
