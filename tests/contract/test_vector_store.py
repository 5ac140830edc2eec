"""Every backend in conftest.py runs the shared `VectorStore` contract, unchanged."""

from headwater.connectors.testing import *  # noqa: F403
