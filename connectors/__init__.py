"""The outside world: vector store backends and document sources, loaded by name."""
