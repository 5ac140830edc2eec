"""The Headwater config: one TOML file, validated on load, overridable by environment.

Environment variables named ``HEADWATER_<SECTION>__<KEY>`` override the file, for
example ``HEADWATER_STORE__BACKEND=milvus`` or ``HEADWATER_EMBEDDING__DEVICE=cpu``.
Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from headwater.ingest.chunking.config import (
    STRATEGIES,
    STRATEGY_MODELS,
    ChunkingConfig,
    RecursiveChunking,
)
from headwater.ingest.cluster import ClusterConfig
from headwater.ingest.embedding import EmbeddingConfig, EmbeddingContext
from headwater.ingest.errors import ConfigError
from headwater.ingest.models import Fusion, FusionMethod
from headwater.ingest.search import SearchConfig

CONFIG_FILENAME = "headwater.toml"
ENV_PREFIX = "HEADWATER_"

OTHER_VARIABLES = frozenset({"HEADWATER_CONFIG", "HEADWATER_FAULT", "HEADWATER_FAULT_FILE"})
"""HEADWATER_* variables Headwater reads that are not config keys: the config file's path
and the fault injection of the kill tests (ingest/faults.py)."""

OTHER_PREFIXES = ("HEADWATER_TEST_", "HEADWATER_WRITE_")
"""Prefixes of variables the test suite reads (HEADWATER_TEST_MILVUS_URI,
HEADWATER_WRITE_DOCS...): never config keys either."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceConfig(_Section):
    """A local folder or an fsspec URL whose documents are kept in the store."""

    name: str = Field(
        description="Short unique name; part of every document id, so keep it stable.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    path: str = Field(
        description="Local folder (relative to the config file) or URL: s3://bucket/prefix, "
        "gs://, az://, http(s):// (a page listing links). Credentials come from the "
        "environment, never from the URL."
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options for the URL's fsspec filesystem, e.g. endpoint_url, anon, "
        "client_kwargs = {region_name = ...}. Secrets (key, secret, token, password...) are "
        "refused here: set them in the environment.",
    )
    include: list[str] = Field(
        default_factory=lambda: ["**/*"], description="Globs of files to ingest, relative to path."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Globs of files to skip, relative to path."
    )
    follow_symlinks: bool = Field(
        False,
        description="Local folders: follow symbolic links that lead outside the folder. Off: "
        "such links are reported as failed, never read. Links inside the folder are read.",
    )
    chunking: ChunkingConfig = Field(
        default_factory=RecursiveChunking,
        description="Chunking strategy and settings for this source (`strategy` picks one).",
    )

    @field_validator("path")
    @classmethod
    def _no_password_in_url(cls, value: str) -> str:
        if "://" in value and urlsplit(value).password is not None:
            raise ValueError("the URL carries a password; set credentials in the environment")
        return value

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = sorted(_secret_keys(value))
        if found:
            raise ValueError(
                f"{', '.join(found)}: secrets do not belong in the config file; set them in "
                "the environment (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            )
        return value


SECRET_OPTION_KEYS = frozenset(
    {
        "key",
        "secret",
        "password",
        "token",
        "session_token",
        "sas_token",
        "account_key",
        "connection_string",
        "client_secret",
        "credential",
        "credentials",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "authorization",
    }
)
"""storage_options keys (at any depth) that hold credentials, which belong in the environment."""

# gcsfs takes `token` as an auth mode too; these name a method, not a secret.
_TOKEN_MODES = frozenset({"anon", "google_default", "cloud", "cache", "browser"})


def _secret_keys(options: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found |= _secret_keys(value, f"{name}.")
        elif str(key).lower() in SECRET_OPTION_KEYS and not (
            str(key).lower() == "token" and value in _TOKEN_MODES
        ):
            found.add(name)
    return found


class LoadingConfig(_Section):
    """How files are turned into text."""

    pdf_strategy: Literal["fast", "ocr_only", "hi_res", "auto"] = Field(
        "fast",
        description="unstructured's PDF strategy. 'fast' reads the text layer; 'hi_res' needs "
        "layout models from the Hugging Face hub.",
    )
    languages: list[str] = Field(
        default_factory=lambda: ["eng"], description="Document languages (Tesseract codes)."
    )
    max_file_mb: float = Field(
        200, gt=0, description="Files larger than this are reported as failed, not parsed."
    )
    max_unpacked_mb: float = Field(
        1024,
        gt=0,
        description="DOCX, PPTX, XLSX, EPUB and ODT files are ZIP archives; one that would "
        "expand to more than this is reported as failed (a zip bomb), not parsed.",
    )
    text_encoding: str = Field(
        "cp1252",
        description="Encoding of text files (.txt, .md, .csv...) that are not UTF-8 and in no "
        "multi-byte encoding that can be detected (Shift-JIS, GB18030, EUC-KR...). Single-byte "
        "code pages cannot be told apart reliably, so this one is assumed.",
    )
    ocr: bool = Field(
        False,
        description="Read PDF files without a text layer (scans) with Tesseract, which must be "
        "installed (Debian: tesseract-ocr). Off: such files are reported as failed.",
    )
    workers: int = Field(
        default_factory=lambda: min(2, os.cpu_count() or 1),
        ge=0,
        le=64,
        description="Worker processes that parse files, each with the time and memory limits "
        "below, so a parser that hangs or runs out of memory fails only its file. 0 parses "
        "in the sync's own process, without limits. Default: min(2, CPU cores).",
    )
    timeout_s: float = Field(
        300,
        gt=0,
        description="A file whose parsing takes longer is reported as failed and its worker "
        "process replaced (workers > 0 only).",
    )
    max_memory_mb: int = Field(
        4096,
        ge=256,
        description="A worker process parsing a file may use this much memory (a cap on "
        "its heap, inherited by pandoc or Tesseract; about 800 MB go to parser libraries); a "
        "file that needs more is reported as failed (workers > 0 only).",
    )

    @field_validator("text_encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


class RetryConfig(_Section):
    """How store writes are retried when the store is unreachable or fails mid-run."""

    attempts: int = Field(
        5, ge=1, le=100, description="Tries per store call, the first one included."
    )
    initial_s: float = Field(1.0, ge=0, description="Wait before the first retry, in seconds.")
    max_s: float = Field(30.0, ge=0, description="Longest wait between two tries, in seconds.")
    multiplier: float = Field(
        2.0, ge=1, description="Each wait is this many times the one before (up to max_s)."
    )


class StoreConfig(BaseModel):
    """Which vector store holds the chunks, and its settings.

    Each backend reads its own table, ``[store.<backend>]``, validated by the backend's
    own model (`headwater.connectors.registry.check_store_tables`); the core only carries
    the tables.
    """

    model_config = ConfigDict(extra="allow")

    backend: str = Field(
        "faiss",
        description="Backend name: faiss (embedded, the default), milvus (Milvus Lite "
        "embedded, or a server by URI), weaviate, or an installed plug-in.",
    )
    collection: str = Field(
        "headwater",
        description="Collection (table/index) name inside the store.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig,
        description="Retries with exponential backoff for store calls during a sync.",
    )

    def backend_options(self, backend: str | None = None) -> dict[str, Any]:
        """The raw ``[store.<backend>]`` table (empty when absent)."""
        return dict((self.model_extra or {}).get(backend or self.backend, {}))


class StateConfig(_Section):
    """Where Headwater keeps its own state (manifest, embedded store files)."""

    dir: Path = Field(Path(".headwater"), description="State folder, relative to the config file.")


RetrievalMode = Literal["dense", "hybrid", "lexical"]
"""How a store searches: vectors only, vectors fused with full-text search, or full text."""


_VARIANT_KEYS = ("context", "mode", "fusion", "rrf_k", "alpha", "candidates")
"""An eval variant's own keys; the rest of its table is chunking."""


class EvalVariant(_Section):
    """One variant `headwater eval` compares: how documents are chunked, how chunks are
    embedded and how the store is searched. Written as one flat table: the chunking keys
    (as in [sources.chunking]) beside `context` and `mode`."""

    chunking: ChunkingConfig = Field(
        default_factory=RecursiveChunking, description="How documents are split into chunks."
    )
    context: EmbeddingContext | None = Field(
        None,
        description="Text embedded in front of each chunk ('none', 'title', 'title+section'; "
        "see embedding.context); empty: embedding.context.",
    )
    mode: RetrievalMode = Field(
        "dense",
        description="How the scratch store is searched: 'dense' (vectors), 'hybrid' (vectors "
        "and full text, fused) or 'lexical' (full text, BM25).",
    )
    fusion: FusionMethod | None = Field(
        None, description="hybrid: 'rrf' or 'weighted'; empty: search.fusion."
    )
    rrf_k: int | None = Field(None, ge=1, description="hybrid, rrf: empty: search.rrf_k.")
    alpha: float | None = Field(
        None, ge=0, le=1, description="hybrid, weighted: dense weight; empty: search.alpha."
    )
    candidates: int | None = Field(
        None,
        ge=1,
        description="hybrid: each ranking cut at candidates x k; empty: search.candidates.",
    )

    def fusion_settings(self, default: Fusion) -> Fusion:
        """`default` (the [search] table's) with this variant's own fusion keys over it."""
        return Fusion(
            default.method if self.fusion is None else self.fusion,
            default.rrf_k if self.rrf_k is None else self.rrf_k,
            default.alpha if self.alpha is None else self.alpha,
            default.candidates if self.candidates is None else self.candidates,
        )

    @model_validator(mode="before")
    @classmethod
    def _flat_table(cls, value: Any) -> Any:
        # [eval.strategies.x] is one table: its chunking keys sit beside the search keys.
        if isinstance(value, dict) and "chunking" not in value:
            own = {k: value[k] for k in _VARIANT_KEYS if k in value}
            return {**own, "chunking": {k: v for k, v in value.items() if k not in own}}
        return value


class EvalConfig(_Section):
    """`headwater eval`: the variants it compares and how many chunks it retrieves."""

    k: int = Field(5, gt=0, le=100, description="Chunks retrieved per question.")
    strategies: dict[str, EvalVariant] = Field(
        default_factory=dict,
        description="Named variants to compare, one table each ([eval.strategies.<name>]: the "
        "keys of [sources.chunking], plus `context` and `mode`). The built-in variants (one "
        "per strategy with its defaults) stay available by name; a table of the same name "
        "replaces one. Compared by default: these tables, or the built-ins when there are none.",
    )

    @field_validator("strategies")
    @classmethod
    def _simple_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name)]
        if bad:
            raise ValueError(f"names may use letters, digits, '_', '.', '+', '-': {', '.join(bad)}")
        return value


class IngestConfig(BaseSettings):
    """What the pipeline reads: sources, loading, embedding, store, state and eval.

    The config file's whole model (`headwater.HeadwaterConfig`) adds orchestration, which
    the flows own; everything in `headwater.ingest` takes this core.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    sources: list[SourceConfig] = Field(default_factory=list, description="Document sources.")
    loading: LoadingConfig = Field(default_factory=LoadingConfig, description="File loading.")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig, description="Embedding.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Vector store.")
    state: StateConfig = Field(default_factory=StateConfig, description="State folder.")
    search: SearchConfig = Field(
        default_factory=SearchConfig,
        description="How queries rank chunks (dense, lexical, hybrid).",
    )
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="Retrieval evaluation (`headwater eval`)."
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig,
        description="A Dask cluster that loads, chunks and embeds (`[cluster]`).",
    )
    config_dir: Path = Field(
        default_factory=Path.cwd, exclude=True, description="Folder relative paths start from."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return (env_settings, init_settings)

    @classmethod
    def free_tables(cls, section: str) -> dict[str, Callable[[], type[BaseModel]]]:
        """The free-form tables a section holds (the store backends' under ``store``), each
        with a function that returns its model; the core knows none."""
        return {}

    @model_validator(mode="after")
    def _unique_source_names(self) -> IngestConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: names must be unique, repeated: {', '.join(dupes)}")
        return self

    def resolve(self, path: str | Path) -> Path:
        """A config path made absolute against the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.config_dir / p)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.state.dir)


LEGACY_LITE_FILE = "milvus.db"
"""The Milvus Lite file that the default store of Headwater 0.2 and earlier made in the
state folder."""


def stays_on_legacy_lite(config: IngestConfig, *, lite_file: bool, faiss_store: bool) -> bool:
    """Whether a config that names no backend keeps the Milvus Lite store that the old
    default made (`lite_file`), instead of starting an empty FAISS store beside it. Once
    a FAISS store exists (`faiss_store`), or a backend is named, the config decides."""
    named = "backend" in config.store.model_fields_set
    return not named and lite_file and not faiss_store


def find_config(explicit: str | Path | None = None) -> Path | None:
    """The config file to use: explicit, $HEADWATER_CONFIG, or ./headwater.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("HEADWATER_CONFIG")
    if env:
        return Path(env)
    default = Path.cwd() / CONFIG_FILENAME
    return default if default.exists() else None


C = TypeVar("C", bound=IngestConfig)


def load_settings(
    model: type[C],
    path: str | Path | None = None,
    strict_tables: Callable[[dict[str, Any]], list[str]] | None = None,
) -> C:
    """Read the file as `model`, merge with the environment, and validate; errors name the
    bad key. Secrets in the file are refused, and so are values of the wrong type that
    would only pass by coercion (`chunk_size = "200"`); environment variables, which are
    strings, are still parsed. `strict_tables` checks the file's free-form tables (the
    store backends') the same way and returns one line per problem."""
    file = find_config(path)
    data: dict[str, Any] = {}
    where = "defaults and environment"
    if file is not None:
        where = str(file)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        secrets = [f"  {line}" for line in secrets_in_file(data)]
        if secrets:
            raise ConfigError("\n".join([f"{file}: secrets do not belong in the file", *secrets]))
        data["config_dir"] = file.resolve().parent
    unknown = unknown_variables(model, os.environ)
    if unknown:
        head = "unknown environment variable" + ("s" if len(unknown) > 1 else "")
        head += " (Headwater reads HEADWATER_<SECTION>__<KEY>)"
        raise ConfigError("\n".join([head, *(f"  {u}" for u in unknown)]))
    try:
        config = model(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, data, model)) from None
    if file is not None:
        coerced = _coerced_in_file(model, data) + (strict_tables(data) if strict_tables else [])
        if coerced:
            lines = [f"{where}: invalid configuration", *(f"  {c}" for c in coerced)]
            raise ConfigError("\n".join(lines))
    return config


_STRICT_TYPES = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
}


def strict_type_problem(error: Any) -> str | None:
    """The message for a pydantic strict-mode type error (None for any other error)."""
    wanted = _STRICT_TYPES.get(error["type"])
    if wanted is None:
        return None
    given = error["input"]
    if isinstance(given, str):
        return f"must be {wanted}, not the string {given!r} (remove the quotes)"
    return f"must be {wanted}, not {given!r}"


def _coerced_in_file(model: type[IngestConfig], data: dict[str, Any]) -> list[str]:
    """The file's values that pass only by coercion (a quoted number, 1 for true...).

    Each section of the file alone is validated in strict mode (as JSON, so paths may be
    strings); environment variables, always strings, never go through this check.
    """
    out = []
    for section, value in data.items():
        field = model.model_fields.get(section)
        if field is None or field.annotation is None or section == "config_dir":
            continue
        try:
            TypeAdapter(field.annotation).validate_json(json.dumps(value, default=str), strict=True)
        except ValidationError as exc:
            for err in exc.errors():
                loc = (section, *err["loc"])
                problem = strict_type_problem(err)
                env = ENV_PREFIX + "__".join(str(p).upper() for p in loc if isinstance(p, str))
                if problem is not None and env not in os.environ:
                    key = ".".join(str(p) for p in _readable_loc(loc, data))
                    out.append(f"{key}: {problem}")
    return out


SECRET_KEYS = SECRET_OPTION_KEYS - {"key"} | {"api_key", "apikey", "passwd", "access_key"}
"""Keys that hold a credential wherever they appear in the file (``key`` only counts in
storage_options, where it is S3's access key)."""

_SECRET_ENV = {
    ("store", "milvus"): "MILVUS_TOKEN (the variable store.milvus.token_env names) as "
    "'user:password', or the whole URI in HEADWATER_STORE__MILVUS__URI",
    ("store", "weaviate"): "WEAVIATE_API_KEY (the variable store.weaviate.api_key_env names)",
    ("sources",): "the environment, as the URL's filesystem reads it (S3: AWS_ACCESS_KEY_ID "
    "and AWS_SECRET_ACCESS_KEY; GCS: GOOGLE_APPLICATION_CREDENTIALS; Azure: "
    "AZURE_STORAGE_ACCOUNT_KEY)",
}


def _walk(
    value: Any, loc: tuple[int | str, ...] = ()
) -> Iterator[tuple[tuple[int | str, ...], Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*loc, i))
    else:
        yield loc, value


def secrets_in_file(data: dict[str, Any]) -> list[str]:
    """One line per credential written into the config file: a password in any URL, or a
    secret-named key anywhere, each with the environment variable that should hold it."""
    out = []
    for loc, value in _walk(data):
        name = str(loc[-1]).lower() if loc and isinstance(loc[-1], str) else ""
        in_options = "storage_options" in loc
        secret_key = not name.endswith("_env") and (
            name in SECRET_KEYS or (in_options and name in SECRET_OPTION_KEYS)
        )
        if name == "token" and value in _TOKEN_MODES:
            secret_key = False
        in_url = isinstance(value, str) and "://" in value and _has_password(value)
        if not (secret_key or in_url):
            continue
        where = next((v for k, v in _SECRET_ENV.items() if loc[: len(k)] == k), None)
        use = f"set it in {where}" if where else "set it in an environment variable"
        what = "the URL carries a password" if in_url else "a secret"
        key = ".".join(str(p) for p in _readable_loc(loc, data))
        out.append(f"{key}: {what}; {use}")
    return out


def _has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def _models_in(annotation: Any) -> tuple[list[type[BaseModel]], bool]:
    """The config models a field's type holds (all members of a union), and whether it
    also takes free-form values (a list or a table), whose keys the model cannot name."""
    models: list[type[BaseModel]] = []
    free = False
    for tp in _members([annotation]):
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            models.append(tp)
        elif typing.get_origin(tp) in (list, dict) or tp is Any:
            free = True
    return models, free


def env_names(
    model: type[BaseModel],
    tables: Callable[[str], dict[str, Callable[[], type[BaseModel]]]] | None = None,
    prefix: str = ENV_PREFIX,
) -> tuple[set[str], set[str]]:
    """Every variable name that sets a key of `model` (``HEADWATER_EMBEDDING__DEVICE``),
    and the names below which any key goes (lists and tables, set as a whole or by key).
    `tables` gives a section's free-form tables and their models (see
    `IngestConfig.free_tables`)."""
    names: set[str] = set()
    open_: set[str] = set()
    for field, info in model.model_fields.items():
        name = prefix + field.upper()
        names.add(name)
        models, free = _models_in(info.annotation)
        if free:
            open_.add(name)
        for sub in models:
            more, more_open = env_names(sub, None, name + "__")
            names |= more
            open_ |= more_open
        if tables is not None:
            for table, table_model in tables(field).items():
                more, more_open = env_names(table_model(), None, f"{name}__{table.upper()}__")
                names |= more | {f"{name}__{table.upper()}"}
                open_ |= more_open
    return names, open_


def unknown_variables(model: type[IngestConfig], environ: Mapping[str, str]) -> list[str]:
    """One line per ``HEADWATER_*`` variable that sets no config key, with the closest
    valid name: a misspelt variable must not be ignored without a word."""
    candidates = sorted(
        v
        for v in environ
        if v.upper().startswith(ENV_PREFIX)
        and v.upper() not in OTHER_VARIABLES
        and not v.upper().startswith(OTHER_PREFIXES)
    )
    if not candidates:
        return []
    names, open_ = env_names(model)
    unknown = [v for v in candidates if not _sets_a_key(v.upper(), names, open_)]
    if unknown:
        # The backends' own tables are only imported when a variable may point into them.
        names, open_ = env_names(model, model.free_tables)
        unknown = [v for v in unknown if not _sets_a_key(v.upper(), names, open_)]
    out = []
    for var in unknown:
        close = closest(var.upper(), names)
        hint = f"did you mean {close}?" if close else "no config key has this name"
        out.append(f"{var}: unknown variable; {hint}")
    return out


def closest(word: str, choices: Iterable[str], cutoff: float = 0.75) -> str | None:
    """The valid name most like a misspelt one, if one is close enough to suggest."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown_key(path: str, valid: Iterable[str]) -> str:
    """What to say about the unknown key at `path` (``store.colection``), given the keys
    its table takes: the closest one, named by its whole path."""
    table, _, key = path.rpartition(".")
    close = closest(key, valid, cutoff=0.6)
    if close is None:
        return "unknown key (check the spelling)"
    return f"unknown key; did you mean {table + '.' if table else ''}{close}?"


def _keys_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> set[str]:
    """The keys the table at pydantic's `loc` takes (empty where it cannot tell): through
    lists, tables of models and the chunking strategies' tags."""
    here: list[Any] = [model]
    for part in loc:
        below: list[Any] = []
        for tp in _members(here):
            args = typing.get_args(tp)
            origin = typing.get_origin(tp)
            if origin is list and isinstance(part, int) and args:
                below.append(args[0])
            elif origin is dict and isinstance(part, str) and len(args) == 2:
                below.append(args[1])
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                if part in tp.model_fields:
                    below.append(tp.model_fields[part].annotation)
                elif STRATEGY_MODELS.get(str(part)) is tp:  # a tagged union's tag
                    below.append(tp)
        here = below
    return {
        name
        for tp in _members(here)
        if isinstance(tp, type) and issubclass(tp, BaseModel)
        for name, info in tp.model_fields.items()
        if not info.exclude
    }


def _members(annotations: list[Any]) -> list[Any]:
    """The types the annotations stand for: unions split, Annotated and Optional unwrapped."""
    out, todo = [], list(annotations)
    while todo:
        tp = todo.pop()
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            todo.append(typing.get_args(tp)[0])
        elif origin in (typing.Union, types.UnionType):
            todo.extend(typing.get_args(tp))
        elif tp is not type(None):
            out.append(tp)
    return out


def _sets_a_key(var: str, names: set[str], open_: set[str]) -> bool:
    return var in names or any(var.startswith(o + "__") for o in open_)


def _variable_for(loc: tuple[int | str, ...]) -> str | None:
    """The set environment variable that gave the value at `loc`, if one did: the longest
    one naming the key or a table above it (the environment wins over the file)."""
    parts = [str(p).upper() for p in loc if not isinstance(p, int)]
    upper = {k.upper(): k for k in os.environ}
    for n in range(len(parts), 0, -1):
        var = ENV_PREFIX + "__".join(parts[:n])
        if var in upper:
            return upper[var]
    return None


def _other_strategy_key(loc: tuple[int | str, ...]) -> str | None:
    """For a key that the source's strategy lacks but another has, which strategy has it."""
    if len(loc) < 3 or loc[-3] != "chunking" or loc[-2] not in STRATEGIES:
        return None
    key, used = str(loc[-1]), str(loc[-2])
    owners = [name for name, m in STRATEGY_MODELS.items() if key in m.model_fields]
    if not owners:
        return None
    whose = " and ".join(owners)
    what = "variant" if "strategies" in loc else "source"
    return (
        f"`{key}` belongs to the {whose} strateg{'ies' if len(owners) > 1 else 'y'}; "
        f"this {what} uses `{used}`"
    )


def format_validation_error(
    exc: ValidationError,
    where: str,
    data: dict[str, Any] | None = None,
    model: type[BaseModel] | None = None,
) -> str:
    """One line per problem, each naming the key, or the environment variable where one
    set the value; the first line names the file only when the file is to blame. With the
    `model`, an unknown key gets the closest valid one."""
    lines = []
    from_file = False
    for err in exc.errors():
        loc = _readable_loc(err["loc"], data or {})
        raw_loc: tuple[int | str, ...] = err["loc"]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            valid = _keys_at(model, raw_loc[:-1]) if model is not None else set()
            if raw_loc[:2] == ("eval", "strategies"):  # one flat table with the chunking keys
                valid |= set(_VARIANT_KEYS)
            msg = _other_strategy_key(raw_loc) or unknown_key(".".join(map(str, loc)), valid)
        elif err["type"] == "invalid_strategy":
            loc = (*loc, "strategy")
            given = err["input"].get("strategy") if isinstance(err["input"], dict) else None
            msg = f"unknown strategy {given!r}; choose one of: {', '.join(STRATEGIES)}"
        elif not loc and (named := re.match(r"([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*): ", msg)):
            # Whole-config checks (the store tables) name their key in the message.
            raw_loc = loc = tuple(named.group(1).split("."))
            msg = msg[named.end() :]
        var = _variable_for(raw_loc)
        key = ".".join(str(p) for p in loc)
        if var is not None:
            # The variable is what to fix; the key is what the docs call it.
            lines.append(f"  {var} ({key}): {msg}" if key else f"  {var}: {msg}")
        else:
            from_file = True
            lines.append(f"  {key}: {msg}" if key else f"  {msg}")
    head = f"{where}: invalid configuration" if from_file else "invalid environment variable"
    return "\n".join([head + ("s" if not from_file and len(lines) > 1 else ""), *lines])


def _readable_loc(loc: tuple[int | str, ...], data: dict[str, Any]) -> tuple[int | str, ...]:
    """The error location as a user names it: sources by name, no strategy tags.

    pydantic reports ``sources.0.chunking.token.chunk_size``; the file says
    ``[[sources]] name = "docs"`` and ``[sources.chunking]``, so we say
    ``sources.docs.chunking.chunk_size``.
    """
    out: list[int | str] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        if prev == "sources" and isinstance(part, int):
            sources = data.get("sources")
            if isinstance(sources, list) and part < len(sources):
                name = sources[part].get("name") if isinstance(sources[part], dict) else None
                out.append(name if isinstance(name, str) and name else part)
                continue
        if part == "chunking" and i >= 2 and loc[i - 2] == "strategies":
            continue  # [eval.strategies.<name>] is one flat table
        is_tag = part in STRATEGIES and (
            prev == "chunking" or (i >= 2 and loc[i - 2] == "strategies")
        )
        if not is_tag:
            out.append(part)
    return tuple(out)
