import importlib.util

# The server is built on the client's proto stubs: without the weaviate extra it cannot run.
collect_ignore_glob = [] if importlib.util.find_spec("weaviate") else ["test_*.py"]
