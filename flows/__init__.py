"""Prefect orchestration: a thin shell over ``ingest``. The only package that imports Prefect."""
