"""Item indexers: every method registers itself here on import."""

from genrec.indexing.base import (
    INDEXERS,
    Indexer,
    IndexerConfig,
    ItemIndexError,
    ItemIndex,
    build_indexer,
    register_indexer,
)

# Importing the method modules registers them.
from genrec.indexing import random as _random  # noqa: E402,F401  isort: skip

__all__ = ["INDEXERS", "ItemIndexError", "Indexer", "IndexerConfig", "ItemIndex", "build_indexer", "register_indexer"]
