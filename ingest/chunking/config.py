"""Each chunking strategy's settings: one model per strategy, chosen by `strategy`.

A source's ``[sources.chunking]`` table (and each ``[eval.strategies.<name>]``) is one of
these; the models sit beside the chunkers that read them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)


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

STRATEGY_MODELS: dict[str, type[BaseModel]] = {
    "recursive": RecursiveChunking,
    "token": TokenChunking,
    "headers": HeadersChunking,
    "elements": ElementsChunking,
    "semantic": SemanticChunking,
}
"""Each strategy's settings model, by name (an error for a key of another strategy names it)."""
