"""What the flows read: schedules, the watcher, concurrency, secret blocks.

`HeadwaterConfig` is the config file's whole model: the core that `headwater.ingest`
reads (`IngestConfig`) plus the ``[orchestration]`` table and per-source schedules. It
lives here because the flows are the lowest layer that reads all of it; the front door
re-exports it as `headwater.HeadwaterConfig`. Nothing here imports Prefect, so the CLI
loads a config without the `prefect` extra.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from headwater.connectors.registry import (
    check_store_tables,
    coerced_store_values,
    store_backends,
    store_class,
)
from headwater.ingest.config import (
    LEGACY_LITE_FILE,
    IngestConfig,
    SourceConfig,
    _Section,
    load_settings,
    stays_on_legacy_lite,
)
from headwater.ingest.errors import ConfigError

log = logging.getLogger(__name__)


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


class WatchConfig(_Section):
    """`headwater watch`: how file events become ingestion runs."""

    debounce_ms: int = Field(
        1500,
        ge=50,
        description="Changes arriving within this many milliseconds of each other form one "
        "batch, so a folder copied in at once gives one run.",
    )
    settle_s: float = Field(
        0.5,
        ge=0,
        description="A file is ingested once its size and modification time have not "
        "changed for this long (counted from its last write), so a file still being "
        "written is not read half-way. Raise it for slow network shares.",
    )
    settle_timeout_s: float = Field(
        300,
        gt=0,
        description="Give up waiting for a file that keeps changing after this long; its "
        "next change starts a new batch.",
    )


class OrchestrationConfig(_Section):
    """How the Prefect flows run: schedule, concurrency, and the file watcher."""

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
    lock_wait_s: float = Field(
        600,
        ge=0,
        description="How long a flow run waits for another sync of the same state folder "
        "before it fails with a clear message.",
    )
    dask_address: str | None = Field(
        None,
        deprecated=True,
        description="Deprecated: use `cluster.address`, which the CLI, the API and the flows "
        "all read. Still accepted as that setting, with a warning.",
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


class ScheduledSourceConfig(SourceConfig):
    """A source that may have a scheduled deployment of its own."""

    schedule: ScheduleConfig | None = Field(
        None,
        description="Give this source its own scheduled deployment (`headwater serve`), "
        "syncing only this source.",
    )


class HeadwaterConfig(IngestConfig):
    """The whole configuration file."""

    sources: list[ScheduledSourceConfig] = Field(  # type: ignore[assignment]
        default_factory=list, description="Document sources."
    )
    orchestration: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig,
        description="Prefect deployments, schedules and the watcher.",
    )

    @classmethod
    def free_tables(cls, section: str) -> dict[str, Callable[[], type[BaseModel]]]:
        if section != "store":
            return {}
        return {name: partial(_store_model, name) for name in store_backends()}

    @model_validator(mode="after")
    def _dask_address_moved(self) -> HeadwaterConfig:
        old = self.orchestration.__dict__.get("dask_address")
        if not old:
            return self
        if self.cluster.address not in (None, old) or self.cluster.local:
            raise ValueError(
                "orchestration.dask_address is replaced by cluster.address; remove it "
                "(the [cluster] table already says where to run)"
            )
        warnings.warn(
            "orchestration.dask_address is deprecated: move it to [cluster] address = "
            f"{old!r} (now used by sync, watch, the API and the flows alike)",
            FutureWarning,
            stacklevel=2,
        )
        self.cluster = type(self.cluster).model_validate(
            {**self.cluster.model_dump(), "address": old}
        )
        return self

    @model_validator(mode="after")
    def _store_tables(self) -> HeadwaterConfig:
        # Every [store.<backend>] table present is checked, not only the chosen one, so a
        # switch of backend by config finds its table valid.
        try:
            check_store_tables(self.store)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


def _store_model(backend: str) -> type[BaseModel]:
    return store_class(backend).config_model


def load_config(path: str | Path | None = None) -> HeadwaterConfig:
    """The config file (explicit, $HEADWATER_CONFIG or ./headwater.toml) merged with the
    environment and validated; errors name the bad key."""
    config = load_settings(HeadwaterConfig, path, strict_tables=coerced_store_values)
    state = config.state_dir
    faiss_path = config.store.backend_options("faiss").get("path") or "faiss"
    if stays_on_legacy_lite(
        config,
        lite_file=(state / LEGACY_LITE_FILE).exists(),
        faiss_store=(config.resolve(state / faiss_path) / config.store.collection).exists(),
    ):
        log.warning(
            "store.backend is not set and %s holds a Milvus Lite store, the default up to "
            'Headwater 0.2: using it. Set [store] backend = "milvus" to keep it (and '
            'silence this), or `headwater migrate --to` a config with backend = "faiss"',
            state / LEGACY_LITE_FILE,
        )
        store = config.store.model_copy(update={"backend": "milvus"})
        config = config.model_copy(update={"store": store})
    return config
