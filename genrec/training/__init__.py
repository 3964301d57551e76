"""Training: recipe config (genrec fields beside transformers' TrainingArguments), the shared recipe steps
(``recipe.py``), trainer classes (``trainers.py``), and one module per training mode (``prefix``, ``sequence``,
``set``), each registered in ``TRAINING_MODES`` by :func:`~genrec.training.recipe.register_mode`.

Importing this package is cheap (the config only); the trainers load when a recipe runs.
"""

import importlib

from genrec.training.config import (
    MODES,
    SCRATCH_BACKBONES,
    SCRATCH_CAUSAL,
    SCRATCH_T5,
    TRAINING_DEFAULTS,
    Recipe,
    RecipeConfig,
    load_recipe,
    recipe_from_dict,
)


def run_recipe(recipe: Recipe, command: str | None = None, data=None):
    """Train ``recipe`` end to end with its mode; returns the recommender (saved to ``output_dir/bundle``) and its
    test metrics. ``data`` (an already loaded InteractionData) takes the place of ``recipe.config.data``."""
    from genrec.training.recipe import TRAINING_MODES

    if recipe.config.mode not in TRAINING_MODES:
        importlib.import_module(f"genrec.training.{recipe.config.mode}")  # registers the mode
    return TRAINING_MODES[recipe.config.mode](recipe, command, data)


def load_data(data):
    """A prepared dataset directory or a dataset name → InteractionData."""
    from genrec.training.recipe import load_data as _load

    return _load(data)


__all__ = [
    "MODES",
    "SCRATCH_BACKBONES",
    "SCRATCH_CAUSAL",
    "SCRATCH_T5",
    "TRAINING_DEFAULTS",
    "Recipe",
    "RecipeConfig",
    "load_data",
    "load_recipe",
    "recipe_from_dict",
    "run_recipe",
]
