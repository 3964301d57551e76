"""The ``"next-item-recommendation"`` transformers pipeline, registered when :mod:`genrec` is imported.

A genrec bundle is not a plain model directory (an adapter bundle keeps its weights in ``adapter/`` and needs its item
index and trie), so the task is registered with :class:`BundleLoader` as its model class: ``pipeline()`` resolves the
bundle's ``config.json`` as for any model, then calls ``BundleLoader.from_pretrained(bundle_dir)``, which returns a
:class:`~genrec.recommenders.GenerativeRecommender`. The pipeline runs the recommender's own steps (prompt encoding,
trie-constrained beam search, ranking), so its output equals ``GenerativeRecommender.recommend_scored``.

A bundle is always a local directory, so for this task (and only this task) genrec wraps ``transformers.pipeline``
with a check that runs before transformers looks the name up on the hub: a missing path is reported as missing at
once, instead of "Repo id must be in the form ..." or a minute of network retries when offline.

Example:
    >>> import genrec  # registers the task  # doctest: +SKIP
    >>> from transformers import pipeline  # doctest: +SKIP
    >>> recommend = pipeline("next-item-recommendation", model="runs/tiger_t5/bundle")  # doctest: +SKIP
    >>> recommend(["50", "172", "133"], top_k=3)  # doctest: +SKIP
    [{'item_id': '174', 'title': 'Raiders of the Lost Ark (1981)', 'score': -1.92, 'identifier': '<a_3><b_17><c_2>'},
     ...]
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Pipeline, PreTrainedModel
from transformers.pipelines import PIPELINE_REGISTRY

from genrec.bundle import CONFIG_NAME, looks_like_local_path
from genrec.indexing.base import ItemIndex
from genrec.recommenders import UNKNOWN_MODES, GenerativeRecommender, Recommendation
from genrec.recommenders.base import check_k

logger = logging.getLogger(__name__)

TASK = "next-item-recommendation"


class BundleLoader:
    """The model class ``pipeline()`` loads a bundle directory with: ``from_pretrained`` returns the recommender.

    ``pipeline()`` passes hub arguments (``revision``, ``token``, ...) that a local bundle does not need; ``dtype`` is
    honoured (``"auto"`` keeps the saved precision, float32 for genrec bundles).
    """

    @classmethod
    def from_pretrained(cls, path: str, dtype=None, **unused: Any) -> GenerativeRecommender:
        if unused.get("device_map") is not None:
            logger.warning("device_map is not supported for genrec bundles; pass device= to the pipeline instead")
        return GenerativeRecommender.from_pretrained(path, dtype=None if dtype == "auto" else dtype)


@dataclass
class _Request:
    """One parsed input: the cleaned history, plus the user id to echo when the input was a dict that had one."""

    history: list[str]
    user_id: Any = None
    has_user_id: bool = False
    as_dict: bool = False
    seen: set[str] = field(default_factory=set)  # every known item of the history (exclude_seen)


@dataclass
class _Ranked:
    """A request with its ranked item positions and scores (what ``_forward`` hands to ``postprocess``)."""

    request: _Request
    positions: list[int]
    scores: list[float]


class NextItemRecommendationPipeline(Pipeline):
    r"""Recommends the next items of users from their interaction histories with a genrec bundle.

    Inputs (one, or a list of them):

    - a history: a list of item ids, oldest first (``["50", "172", "133"]``);
    - a dict ``{"history": [...], "user_id": ...}`` (``user_id`` optional, echoed in the output).

    Output per input: a history gives a ranked list of ``{"item_id", "title", "score", "identifier"}`` dicts (best
    first; ``score`` is the beam's total log-probability); a dict gives ``{"user_id": ..., "items": [...]}``
    (``user_id`` only if the input had one). A list of inputs gives a list of outputs.

    Args:
        model (`GenerativeRecommender`, `str` or `Path`):
            the recommender, or its bundle directory (``pipeline()`` loads it through :class:`BundleLoader`).
        index (`ItemIndex` or `str`, *optional*):
            the item index to decode with; it must be the one the model was trained on (checked by fingerprint).
        device (`int`, `str` or `torch.device`, *optional*):
            where to run (transformers' rule: GPU 0 if there is one, else CPU).
        dtype (`str` or `torch.dtype`, *optional*):
            weights precision when ``model`` is a path.
        batch_size (`int`, *optional*, defaults to 1):
            histories per ``generate`` call when given a list (at construction or per call).
        top_k (`int`, *optional*, defaults to 10):
            items per history.
        num_beams (`int`, *optional*):
            beams (raised to ``top_k`` if smaller); defaults to the bundle's (20 for the recipes).
        exclude_seen (`bool`, *optional*, defaults to `False`):
            drop items already in the history (the list may then be shorter than ``top_k``).
        unknown (`str`, *optional*, defaults to ``"drop"``):
            ``"drop"`` history items that are not in the index (the count is logged and kept in
            ``unknown_dropped``) or ``"error"`` (raise ``KeyError``).

    Histories longer than the bundle's ``max_history`` keep their most recent items. An empty history (or one left
    empty after dropping unknown items) raises ``ValueError``: bundles do not record item popularity, so there is no
    fallback to guess from.

    Example:

    ```python
    >>> import genrec  # doctest: +SKIP
    >>> from transformers import pipeline  # doctest: +SKIP
    >>> recommend = pipeline("next-item-recommendation", model="runs/tiger_t5/bundle", batch_size=32)  # doctest: +SKIP
    >>> recommend([{"user_id": "u1", "history": ["50", "172"]}, ["1", "2", "3"]], top_k=5)  # doctest: +SKIP
    ```
    """

    _load_tokenizer = False  # the bundle's tokenizer comes with the recommender
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, model, tokenizer=None, index: ItemIndex | str | None = None, **kwargs):
        self.recommender = _as_recommender(model, index, kwargs.get("dtype"))
        self.unknown_dropped = 0
        super().__init__(model=self.recommender.model, tokenizer=self.recommender.tokenizer, **kwargs)
        self.recommender.to(self.device)  # Pipeline.__init__ moved the model; the decoding tables follow

    def _sanitize_parameters(self, top_k=None, num_beams=None, exclude_seen=None, unknown=None, **unexpected):
        if unexpected:
            raise TypeError(f"unexpected parameter(s) {sorted(unexpected)} for the {TASK} pipeline")
        preprocess, forward, postprocess = {}, {}, {}
        if top_k is not None:
            forward["top_k"] = postprocess["top_k"] = check_k(top_k, "top_k")
        if num_beams is not None:
            forward["num_beams"] = check_k(num_beams, "num_beams")
        if top_k is not None or num_beams is not None:
            self.recommender.resolve_k(top_k or 10, num_beams)  # warns once per call if either is capped
        if exclude_seen is not None:
            forward["exclude_seen"] = postprocess["exclude_seen"] = bool(exclude_seen)
        if unknown is not None:
            if unknown not in UNKNOWN_MODES:
                raise ValueError(f"unknown must be one of {UNKNOWN_MODES}, got {unknown!r}")
            preprocess["unknown"] = unknown
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        """Recommend for one input (a history or a dict) or a list / generator / dataset of inputs."""
        single = _is_single_input(inputs)
        start = self.unknown_dropped
        outputs = super().__call__([inputs] if single else inputs, **kwargs)
        if isinstance(outputs, list) and self.unknown_dropped > start:
            logger.warning("dropped %d history item(s) that are not in the index", self.unknown_dropped - start)
        return outputs[0] if single else outputs

    def preprocess(self, input_, unknown: str = "drop") -> dict:
        request = _parse_input(input_)
        request.seen = self.recommender.seen_items(request.history)
        history, dropped = self.recommender.clean_history(request.history, unknown)
        self.unknown_dropped += dropped
        if not history:
            raise ValueError(
                f"cannot recommend from an empty history (after dropping {dropped} unknown item(s)); "
                "bundles record no item popularity to fall back on"
            )
        request.history = history
        encoded = self.recommender.encode([history])  # padded to a batch by the pipeline's collate function
        return {**encoded, "request": request}

    def _forward(
        self, model_inputs: dict, top_k: int = 10, num_beams: int | None = None, exclude_seen: bool = False
    ) -> dict:
        requests = model_inputs["request"]
        requests = requests if isinstance(requests, list) else [requests]  # a list once batched by the collator
        _, num_beams = self.recommender.resolve_k(top_k, num_beams, warn=False)
        prompt_tokens = model_inputs["input_ids"].shape[-1]
        step = self.recommender.histories_per_call(num_beams, prompt_tokens)  # many beams: fewer histories per call
        positions, scores = [], []
        for start in range(0, len(requests), step):
            part = {key: value[start : start + step] for key, value in model_inputs.items() if key != "request"}
            seen = [r.seen for r in requests[start : start + step]] if exclude_seen else None
            part_positions, part_scores = self.recommender.generate_ranked(part, num_beams, seen=seen)
            positions += part_positions
            scores += part_scores
        return {"ranked": [_Ranked(r, p, s) for r, p, s in zip(requests, positions, scores)]}

    def postprocess(self, model_outputs: dict, top_k: int = 10, exclude_seen: bool = False):
        ranked = model_outputs["ranked"]
        ranked = ranked[0] if isinstance(ranked, list) else ranked  # batch_size=1 skips the pipeline's unbatching
        request = ranked.request
        recs = self.recommender.to_recommendations(request.seen, ranked.positions, ranked.scores, top_k, exclude_seen)
        items = [_as_dict(r) for r in recs]
        if not request.as_dict:
            return items
        return {"user_id": request.user_id, "items": items} if request.has_user_id else {"items": items}

    def save_pretrained(self, save_directory, overwrite: bool = False, **kwargs):
        """Save the whole bundle (model or adapter, tokenizer, item index, titles, config); an existing directory
        must be a previous bundle unless ``overwrite``."""
        self.recommender.save_pretrained(save_directory, overwrite=overwrite)

    def __repr__(self) -> str:
        config = self.recommender.config
        return (
            f"{type(self).__name__}(kind={config.kind!r}, items={len(self.recommender.index)}, device={self.device})"
        )


def _as_recommender(model, index, dtype) -> GenerativeRecommender:
    """Whatever ``pipeline()`` or a user passed as ``model`` → a recommender decoding with ``index`` (if given)."""
    if isinstance(model, (str, Path)):
        return GenerativeRecommender.from_pretrained(model, index=index, dtype=None if dtype == "auto" else dtype)
    if isinstance(model, PreTrainedModel) or hasattr(model, "peft_config"):
        # pipeline() falls back to the config's architecture when BundleLoader failed; reload to show why
        path = getattr(model, "name_or_path", "")
        if path and (Path(path) / CONFIG_NAME).is_file():
            return GenerativeRecommender.from_pretrained(path, index=index)
        raise TypeError(
            f"{TASK} needs a genrec bundle directory or a GenerativeRecommender, got a bare {type(model).__name__}"
        )
    if not isinstance(model, GenerativeRecommender):
        raise TypeError(f"{TASK} needs a genrec bundle directory or a GenerativeRecommender, got {type(model)}")
    if index is not None:  # the constructor checks the fingerprint and fails loudly on another index
        index = index if isinstance(index, ItemIndex) else ItemIndex.load(index)
        model = type(model)(model.model, model.tokenizer, index, model.config, model.titles)
    return model


def _is_single_input(inputs) -> bool:
    """A dict, or a flat list of item ids (a history), is one input; a list of those is a batch."""
    if isinstance(inputs, dict):
        return True
    if isinstance(inputs, (list, tuple)):
        return all(isinstance(x, (str, int)) for x in inputs)
    return False


def _parse_input(input_) -> _Request:
    if isinstance(input_, dict):
        if "history" not in input_:
            raise ValueError(f"a dict input needs a 'history' list, got keys {sorted(input_)}")
        history = input_["history"]
        if not isinstance(history, (list, tuple)):
            raise ValueError(f"'history' must be a list of item ids, got {type(history).__name__}")
        return _Request(list(history), input_.get("user_id"), "user_id" in input_, as_dict=True)
    if isinstance(input_, (list, tuple)):
        return _Request(list(input_))
    raise TypeError(f"an input must be a history (list of item ids) or a dict with 'history', got {type(input_)}")


def _as_dict(rec: Recommendation) -> dict:
    return {"item_id": rec.item_id, "title": rec.title, "score": rec.score, "identifier": rec.identifier}


def check_bundle_reference(model) -> None:
    """Fail fast, without the network, when ``model`` names a bundle directory that does not exist."""
    if not isinstance(model, (str, os.PathLike)):
        return
    path = Path(model).expanduser()
    if path.is_dir():
        return  # a directory that is not a bundle is reported by BundleLoader / _as_recommender
    if path.exists():
        raise FileNotFoundError(f"{model} is a file; the {TASK} pipeline needs a genrec bundle directory")
    what = "directory" if looks_like_local_path(str(model)) else "directory (or a hub repository not downloaded)"
    raise FileNotFoundError(
        f"{TASK}: bundle {what} {model} does not exist. genrec bundles are local directories (what `genrec train` "
        "writes to OUTPUT_DIR/bundle); download a hub repository first, e.g. `huggingface-cli download ORG/NAME "
        "--local-dir DIR`, and pass DIR"
    )


def _install_bundle_check() -> None:
    """Wrap ``transformers.pipeline`` so that, for this task only, :func:`check_bundle_reference` runs before
    transformers resolves the name on the hub. Other tasks are passed through untouched."""
    import transformers
    import transformers.pipelines as pipelines

    original = pipelines.pipeline
    if getattr(original, "_genrec_bundle_check", False):
        return

    @functools.wraps(original)
    def pipeline(task=None, model=None, *args, **kwargs):
        if task == TASK:
            check_bundle_reference(model)
        return original(task, model, *args, **kwargs)

    pipeline._genrec_bundle_check = True
    pipelines.pipeline = pipeline
    if "pipeline" in vars(transformers):  # the lazy module cached the original already
        transformers.pipeline = pipeline


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=NextItemRecommendationPipeline, pt_model=BundleLoader)
_install_bundle_check()
