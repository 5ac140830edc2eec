"""Prefect orchestration, a thin shell over the engine: the only package that imports Prefect."""
