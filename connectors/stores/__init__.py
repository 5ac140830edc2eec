"""Vector store backends, one module each; see connectors.registry for the names."""
