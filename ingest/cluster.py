"""The ``[cluster]`` table: where loading, chunking and embedding run when one machine is
not enough. Only the settings live here (the core imports no Dask); the runner is
`headwater.connectors.cluster`, wired by `headwater.compose`."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ClusterConfig(BaseModel):
    """A Dask cluster for `headwater sync`, `watch`, the API and the Prefect flows alike.

    With `address` (or `local`), files are loaded and chunked, and chunks embedded, on the
    cluster's workers; this process keeps the plan, the store writes, the manifest and
    the embedding cache.
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None,
        description="Dask scheduler to use, e.g. 'tcp://10.0.0.5:8786' (`dask scheduler` on "
        "one machine, `dask worker <address>` on the others). Workers need "
        "`pip install 'headwater[cluster]'` and the sources at the same paths or URLs.",
    )
    local: int = Field(
        0,
        ge=0,
        le=256,
        description="Start a cluster of this many worker processes on this machine for the "
        "run (0: none). Exclusive with `address`.",
    )
    threads_per_worker: int = Field(
        1, ge=1, le=256, description="Threads of each worker that `local` starts."
    )
    gpu_resource: str = Field(
        "GPU",
        description="Dask worker resource that marks a GPU worker (`dask worker ... --resources "
        "GPU=1`). When any worker advertises it, embedding runs only on such workers; "
        "loading and chunking run everywhere.",
    )
    embed_on_workers: bool = Field(
        True,
        description="Embed on the workers, each loading the model once and keeping it. False: "
        "only load and chunk there, and embed in this process.",
    )
    embed_batch: int = Field(
        128,
        ge=1,
        le=65_536,
        description="Chunks per embedding task: a batch to write is split into tasks of this "
        "size, spread over the (GPU) workers.",
    )
    files_in_flight: int = Field(
        32,
        ge=1,
        le=4096,
        description="Files sent to the cluster and not yet written: this process holds at "
        "most this many prepared files, however large the corpus and the cluster.",
    )
    max_tries: int = Field(
        3,
        ge=1,
        le=100,
        description="Workers a file (or an embedding task) may kill (out of memory, a parser "
        "crash) before it is reported as failed. Applies to `local` clusters; a remote "
        "scheduler uses its own `distributed.scheduler.allowed-failures` (tries - 1).",
    )
    connect_timeout_s: float = Field(
        10,
        gt=0,
        le=600,
        description="How long to try to reach the scheduler at `address` before the run "
        "fails with a message naming it.",
    )

    @field_validator("address")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(tcp|tls|ucx|inproc|ws|wss)://\S+", value):
            raise ValueError(f"{value!r} is not a scheduler address like 'tcp://host:8786'")
        return value

    @model_validator(mode="after")
    def _one_cluster(self) -> ClusterConfig:
        if self.address and self.local:
            raise ValueError("set 'address' (a running scheduler) or 'local' (N workers), not both")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.address or self.local)
