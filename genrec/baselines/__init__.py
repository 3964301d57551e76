"""Baselines evaluated with the same harness as the generative recipes: popularity and SASRec."""

from __future__ import annotations

from genrec.baselines.popularity import PopularityRecommender
from genrec.baselines.sasrec import SASRec, SASRecConfig, SASRecRecommender
from genrec.data.split import LeaveOneOutSplit

BASELINES = ("pop", "sasrec")


def fit_baseline(method: str, split: LeaveOneOutSplit, **options):
    """Fit the baseline ``method`` on the training part of ``split`` (SASRec also early-stops on its validation).

    Args:
        method (`str`): `pop` (training popularity) or `sasrec`.
        split (`LeaveOneOutSplit`): the harness split.
        options: :class:`SASRecConfig` fields for `sasrec` (e.g. ``max_epochs=50, seed=1``); `pop` takes only
            ``seed`` (ignored: it is deterministic).

    Returns:
        A fitted recommender with ``recommend(histories, k, exclude_seen=False)``.

    Example:

    ```python
    >>> from genrec.baselines import fit_baseline
    >>> from genrec.evaluation import evaluate
    >>> evaluate(fit_baseline("sasrec", split, seed=1), split, "test")
    ```
    """
    method = method.lower()
    if method == "pop":
        options.pop("seed", None)  # accepted for a uniform call signature; popularity is deterministic
        if options:
            raise ValueError(f"the pop baseline takes no options besides seed, got {sorted(options)}")
        return PopularityRecommender().fit(split)
    if method == "sasrec":
        return SASRecRecommender().fit(split, SASRecConfig.from_dict(options))
    raise ValueError(f"unknown baseline {method!r}; choose one of {BASELINES}")


__all__ = ["BASELINES", "PopularityRecommender", "SASRec", "SASRecConfig", "SASRecRecommender", "fit_baseline"]
