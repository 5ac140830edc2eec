"""Adapters to the outside world: vector stores, sources and framework integrations.

Imports only `headwater.ingest`; stores and sources are found by name in `registry`.
"""
