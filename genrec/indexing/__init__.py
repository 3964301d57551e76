"""Item indexers: every method registers itself here on import."""

from genrec.indexing.base import (
    INDEXERS,
    Indexer,
    IndexerConfig,
    ItemIndex,
    ItemIndexError,
    build_indexer,
    register_indexer,
)

# Importing the method modules registers them.
from genrec.indexing import random as _random  # noqa: E402,F401  isort: skip
from genrec.indexing import sequential as _sequential  # noqa: E402,F401  isort: skip
from genrec.indexing import title as _title  # noqa: E402,F401  isort: skip
from genrec.indexing import collaborative as _collaborative  # noqa: E402,F401  isort: skip
from genrec.indexing import hybrid as _hybrid  # noqa: E402,F401  isort: skip
from genrec.indexing import semantic as _semantic  # noqa: E402,F401  isort: skip
from genrec.indexing import set as _set  # noqa: E402,F401  isort: skip

__all__ = ["INDEXERS", "ItemIndexError", "Indexer", "IndexerConfig", "ItemIndex", "build_indexer", "register_indexer"]
