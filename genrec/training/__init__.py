"""Training: recipe config (genrec fields beside transformers' TrainingArguments), the shared recipe steps, trainer
classes, and one module per training mode (``prefix``, ``sequence``, ``set``), each registered in
:data:`~genrec.training.recipe.TRAINING_MODES`."""

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
from genrec.training.recipe import TRAINING_MODES, load_data

# Importing the mode modules registers them.
from genrec.training import prefix as _prefix  # noqa: E402,F401  isort: skip
from genrec.training import sequence as _sequence  # noqa: E402,F401  isort: skip
from genrec.training import set as _set  # noqa: E402,F401  isort: skip


def run_recipe(recipe: Recipe, command: str | None = None, data=None):
    """Train ``recipe`` end to end with its mode; returns the recommender (saved to ``output_dir/bundle``) and its
    test metrics. ``data`` (an already loaded InteractionData) takes the place of ``recipe.config.data``."""
    return TRAINING_MODES[recipe.config.mode](recipe, command, data)


__all__ = [
    "MODES",
    "SCRATCH_BACKBONES",
    "SCRATCH_CAUSAL",
    "SCRATCH_T5",
    "TRAINING_DEFAULTS",
    "TRAINING_MODES",
    "Recipe",
    "RecipeConfig",
    "load_data",
    "load_recipe",
    "recipe_from_dict",
    "run_recipe",
]
