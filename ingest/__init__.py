"""Headwater's pipeline: config, sources of truth for ids, load, chunk, embed, plan, sync.

Nothing in this package imports Prefect or a vector-store client; backends live in
``connectors`` and orchestration in ``flows``.
"""

__version__ = "0.1.0"
