"""The core: models, ports, loading, chunking, embedding, the manifest, planning and the engine.

Imports neither `headwater.connectors` nor `headwater.flows` nor Prefect (checked by
import-linter in CI); backends arrive through the ports in `headwater.ingest.store` and
`headwater.ingest.source`.
"""
