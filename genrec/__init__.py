"""genrec: generative recommendation with custom item tokens.

Importing genrec registers the built-in indexers and the ``"next-item-recommendation"`` transformers pipeline. Both
happen without importing torch or transformers here, so ``genrec --help`` starts fast: the public names below load on
first use, and the pipeline task is registered as soon as ``transformers.pipelines`` is imported (at once if it
already is).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_LAZY = {
    "GenerativeRecommender": "genrec.recommenders",
    "InteractionData": "genrec.data",
    "ItemIndex": "genrec.indexing",
    "build_indexer": "genrec.indexing",
    "evaluate": "genrec.evaluation",
    "leave_one_out": "genrec.data",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'genrec' has no attribute {name!r}")


class _RegisterPipelineAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Registers genrec's pipeline task right after ``transformers.pipelines`` finishes importing."""

    target = "transformers.pipelines"

    def find_spec(self, fullname, path, target=None):
        if fullname != self.target:
            return None
        sys.meta_path.remove(self)  # find the real module once, without this finder
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        sys.meta_path.remove(self)
        importlib.import_module("genrec.pipeline")


if "transformers.pipelines" in sys.modules:
    importlib.import_module("genrec.pipeline")
elif not any(isinstance(f, _RegisterPipelineAfterImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterPipelineAfterImport())
