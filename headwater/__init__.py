"""Headwater keeps a vector knowledge base in step with a set of documents.

```python
from headwater import KnowledgeBase

with KnowledgeBase.open("headwater.toml") as kb:
    kb.sync()
    hits = kb.search("How many vacation days?", k=3)
```

The pipeline lives in `headwater.ingest`, the stores, sources and framework adapters in
`headwater.connectors`, and the Prefect flows in `headwater.flows`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.ingest.compat import hide_broken_torchvision

hide_broken_torchvision()

__version__ = "0.2.0"

__all__ = ["HeadwaterConfig", "KnowledgeBase", "__version__", "load_config"]

if TYPE_CHECKING:
    from headwater.api import KnowledgeBase
    from headwater.config import HeadwaterConfig, load_config


def __getattr__(name: str) -> Any:
    # `import headwater` stays cheap (the CLI's --version, a subpackage import); the API
    # and config modules load on first use.
    if name == "KnowledgeBase":
        from headwater.api import KnowledgeBase

        return KnowledgeBase
    if name in ("HeadwaterConfig", "load_config"):
        from headwater import config

        return getattr(config, name)
    raise AttributeError(f"module 'headwater' has no attribute {name!r}")
