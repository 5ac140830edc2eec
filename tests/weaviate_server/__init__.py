"""An in-process Weaviate server speaking the real REST and gRPC protocols, for tests.

Import `WeaviateServer` from `tests.weaviate_server.server`; it needs the weaviate extra (the
client ships the proto stubs it serves).
"""
