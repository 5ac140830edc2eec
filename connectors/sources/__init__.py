"""Document sources, one module each; see connectors.registry."""
