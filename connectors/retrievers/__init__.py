"""Retrievers for LLM frameworks over `ingest.api.KnowledgeBase`, one module per framework.

Each imports its framework only when imported: ``pip install 'headwater[langchain]'`` or
``'headwater[llamaindex]'``.
"""
