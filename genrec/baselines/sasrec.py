"""SASRec (Kang & McAuley, ICDM 2018) in plain torch, mirroring RecBole 1.2.1's ``SASRec`` with ``loss_type: CE``.

It is the sequential baseline every generative recipe is compared with, so it follows RecBole's defaults
(``recbole/properties/model/SASRec.yaml`` + ``overall.yaml``) rather than being tuned here:
item embedding + learned absolute position embedding → LayerNorm → dropout → 2 post-LN transformer blocks
(2 heads, hidden 64, inner 256, GELU, dropout 0.5 on hidden states and attention weights, LayerNorm eps 1e-12,
normal(0, 0.02) init), causal self-attention, sequences right-padded so the first item sits at position 0,
the last hidden state scored against the (tied) item embedding table over the full catalog with cross-entropy,
Adam lr 1e-3, early stopping after 10 epochs without validation improvement, best epoch restored.

Two ways to turn training sequences into examples (:attr:`SASRecConfig.training_mode`):

- ``"prefix"`` (RecBole): every prefix of every training sequence (last ``max_len`` items) → its next item,
  loss at the last position only. This is RecBole's data augmentation and the protocol in BENCHMARK.md.
- ``"seq2seq"`` (Kang & McAuley's original trainer; the default): each training sequence is cut into windows of
  ``max_len`` items (aligned to the end) and the next item is predicted at every position at once (causal mask).
  Same targets, ~``max_len`` times less transformer compute; the difference is that a target sees only the items
  before it inside its window (1 to ``max_len`` of them) instead of the last ``max_len`` items.
  It is the default because on ML-100K it trains to convergence in minutes on 2 CPU cores (one ``prefix`` epoch
  took as long as 6–11 ``seq2seq`` epochs on the same busy machine); ``prefix`` is kept for RecBole-exact runs.
  ``window_stride`` overlaps the windows so that every target has (nearly) ``max_len`` items before it.

Measured on ML-100K against RecBole 1.2.1's own SASRec (test N@10, 3 seeds, model_cards/RESULTS.md): ``prefix``
1.01×, ``seq2seq`` with ``window_stride=2`` 0.98×, ``=10`` 0.96×, without overlap (the default) 0.89×. Compare
recommenders against ``prefix`` or a small stride, not against the fast default.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from genrec.data.split import LeaveOneOutSplit
from genrec.utils import atomic_directory

logger = logging.getLogger(__name__)

TYPE_TAG = "genrec.baselines.SASRecRecommender"
CONFIG_NAME = "sasrec_config.json"
WEIGHTS_NAME = "model.safetensors"
ITEMS_NAME = "items.json"
TRAINING_MODES = ("prefix", "seq2seq")
_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


@dataclass
class SASRecConfig:
    """Hyper-parameters of :class:`SASRecRecommender`; defaults are RecBole 1.2.1's SASRec defaults.

    Args:
        max_len (`int`, *optional*, defaults to 50): most recent items a history is truncated to
            (RecBole ``MAX_ITEM_LIST_LENGTH``); also the number of learned positions.
        hidden_size (`int`, *optional*, defaults to 64): item/position embedding and hidden size.
        num_layers (`int`, *optional*, defaults to 2): transformer blocks.
        num_heads (`int`, *optional*, defaults to 2): attention heads.
        inner_size (`int`, *optional*, defaults to 256): feed-forward inner size.
        hidden_dropout (`float`, *optional*, defaults to 0.5): dropout on embeddings and block outputs.
        attn_dropout (`float`, *optional*, defaults to 0.5): dropout on attention weights.
        hidden_act (`str`, *optional*, defaults to `"gelu"`): feed-forward activation, `gelu` or `relu`.
        layer_norm_eps (`float`, *optional*, defaults to 1e-12): LayerNorm epsilon.
        initializer_range (`float`, *optional*, defaults to 0.02): std of the normal weight init.
        training_mode (`str`, *optional*, defaults to `"seq2seq"`): `seq2seq` (original paper) or `prefix`
            (RecBole's every-prefix augmentation); see the module docstring.
        window_stride (`int`, *optional*): seq2seq only: a window ends every ``window_stride`` items (default
            ``max_len``: windows do not overlap); each target is trained once, in the window where it has the most
            history before it, so every target sees at least ``max_len - window_stride`` earlier items when it has
            them.
        learning_rate (`float`, *optional*, defaults to 1e-3): Adam learning rate.
        weight_decay (`float`, *optional*, defaults to 0.0): Adam L2 penalty.
        batch_size (`int`, *optional*, defaults to 128): windows (seq2seq, up to ``max_len`` targets each) or
            examples (prefix; RecBole uses 2048) per step.
        max_epochs (`int`, *optional*, defaults to 300): epoch limit (RecBole ``epochs``).
        patience (`int`, *optional*, defaults to 10): epochs without validation improvement before stopping
            (RecBole ``stopping_step``).
        valid_metric (`str`, *optional*, defaults to `"ndcg@10"`): harness metric used for early stopping.
        eval_batch_size (`int`, *optional*, defaults to 512): histories scored at once in ``recommend``.
        seed (`int`, *optional*, defaults to 0): seed for initialisation, dropout and shuffling.
        device (`str`, *optional*, defaults to `"cpu"`): torch device; `auto` picks CUDA when available.
        show_progress (`bool`, *optional*, defaults to `True`): tqdm bar per epoch.
    """

    max_len: int = field(default=50, metadata={"help": "Most recent history items kept (learned positions)."})
    hidden_size: int = field(default=64, metadata={"help": "Embedding and hidden size."})
    num_layers: int = field(default=2, metadata={"help": "Transformer blocks."})
    num_heads: int = field(default=2, metadata={"help": "Attention heads."})
    inner_size: int = field(default=256, metadata={"help": "Feed-forward inner size."})
    hidden_dropout: float = field(default=0.5, metadata={"help": "Dropout on embeddings and block outputs."})
    attn_dropout: float = field(default=0.5, metadata={"help": "Dropout on attention weights."})
    hidden_act: str = field(default="gelu", metadata={"help": "Feed-forward activation: gelu or relu."})
    layer_norm_eps: float = field(default=1e-12, metadata={"help": "LayerNorm epsilon."})
    initializer_range: float = field(default=0.02, metadata={"help": "Std of the normal weight initialisation."})
    training_mode: str = field(default="seq2seq", metadata={"help": "seq2seq (original paper) or prefix (RecBole)."})
    window_stride: int | None = field(
        default=None, metadata={"help": "seq2seq: items between window ends (overlapping windows); default max_len."}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam L2 penalty."})
    batch_size: int = field(default=128, metadata={"help": "Windows (seq2seq) or examples (prefix) per step."})
    max_epochs: int = field(default=300, metadata={"help": "Epoch limit."})
    patience: int = field(default=10, metadata={"help": "Epochs without validation improvement before stopping."})
    valid_metric: str = field(default="ndcg@10", metadata={"help": "Validation metric for early stopping."})
    eval_batch_size: int = field(default=512, metadata={"help": "Histories scored at once in recommend()."})
    seed: int = field(default=0, metadata={"help": "Seed for init, dropout and shuffling."})
    device: str = field(default="cpu", metadata={"help": "torch device, or auto (CUDA when available)."})
    show_progress: bool = field(default=True, metadata={"help": "Show a progress bar per epoch."})

    def __post_init__(self):
        for name in (
            "max_len",
            "hidden_size",
            "num_layers",
            "num_heads",
            "inner_size",
            "batch_size",
            "max_epochs",
            "eval_batch_size",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"SASRecConfig.{name} must be positive, got {getattr(self, name)}")
        if self.patience < 0:
            raise ValueError(f"SASRecConfig.patience must be >= 0, got {self.patience}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        for name in ("hidden_dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"SASRecConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(_ACTIVATIONS)}, got {self.hidden_act!r}")
        if self.training_mode not in TRAINING_MODES:
            raise ValueError(f"training_mode must be one of {TRAINING_MODES}, got {self.training_mode!r}")
        if self.window_stride is not None and not 0 < self.window_stride <= self.max_len:
            raise ValueError(f"window_stride must be in 1..max_len ({self.max_len}), got {self.window_stride}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        _metric_k(self.valid_metric)

    @classmethod
    def from_dict(cls, values: dict) -> SASRecConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SASRec option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def _metric_k(metric: str) -> int:
    """``"ndcg@10"`` → 10, validating the name against the harness's metric keys."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "recall") or not k.isdigit() or int(k) <= 0:
        raise ValueError(f"valid_metric must look like 'ndcg@10' or 'recall@20', got {metric!r}")
    return int(k)


# ---------------------------------------------------------------------------------------------------- model
class _SelfAttention(nn.Module):
    """RecBole ``MultiHeadAttention``: causal attention, dropout on weights, then dense → dropout → residual LN."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.attn_dropout = config.attn_dropout
        self.out_dropout = nn.Dropout(config.hidden_dropout)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, hidden // self.num_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, L, head_dim)
        # Right padding + causal mask: a real position never sees a padding key, so no key-padding mask is needed.
        dropout = self.attn_dropout if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        context = context.transpose(1, 2).reshape(batch, length, hidden)  # (B, L, H)
        return self.norm(self.out_dropout(self.dense(context)) + x)


class _FeedForward(nn.Module):
    """RecBole ``FeedForward``: dense → activation → dense → dropout → residual LayerNorm."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.inner_size)
        self.down = nn.Linear(config.inner_size, config.hidden_size)
        self.act = _ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dropout(self.down(self.act(self.up(x)))) + x)


class _Block(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.attention = _SelfAttention(config)
        self.feed_forward = _FeedForward(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attention(x))


class SASRec(nn.Module):
    """The network: ``forward(item_seq)`` gives a hidden state per position; ``logits`` scores the full catalog.

    Item index 0 is padding; catalog items are 1..``num_items``. Sequences are right-padded (first item at
    position 0), as in RecBole, and causal attention makes position ``t`` depend only on items ``0..t``.
    """

    def __init__(self, num_items: int, config: SASRecConfig):
        super().__init__()
        self.num_items = num_items
        self.item_embedding = nn.Embedding(num_items + 1, config.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_layers))
        self.initializer_range = config.initializer_range
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """RecBole init: normal(0, initializer_range) for Linear/Embedding (padding row included), LN = identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """``item_seq`` (B, L) right-padded item indices → hidden states (B, L, H)."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device)  # (L,)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)[None]  # (B, L, H)
        x = self.dropout(self.norm(x))
        for block in self.blocks:
            x = block(x)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Dot product with every catalog item's embedding (tied weights, padding row excluded): (..., N)."""
        return hidden @ self.item_embedding.weight[1:].T


# ---------------------------------------------------------------------------------------------------- data
class _TrainingExamples:
    """Training windows as (start, length) offsets into one flat array of item indices, gathered per batch.

    Storing offsets instead of padded rows keeps memory linear in the number of interactions. In seq2seq mode each
    window also has ``skips``: leading positions whose targets an overlapping later window already trains.
    """

    def __init__(self, sequences: list[np.ndarray], max_len: int, mode: str, stride: int | None = None):
        self.max_len = max_len
        self.mode = mode
        stride = stride or max_len
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        self.flat = np.concatenate(sequences + [np.zeros(1, dtype=np.int64)]).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        starts, sizes, skips = [], [], []
        for offset, m in zip(offsets, lengths):
            if m < 2:
                continue
            if mode == "prefix":
                ends = np.arange(1, m)  # the history is seq[:end], the target seq[end]
                skip = np.zeros_like(ends)
            else:
                # Windows over the m - 1 (input, next) pairs, aligned to the end so the last window is full, one
                # ending every `stride` pairs down to the first that starts at the sequence's start. A window trains
                # only the pairs the window after it does not: its last `stride` (the first window: all of them).
                ends = np.arange(m - 1, 0, -stride)
                ends = np.concatenate([ends[ends > max_len], ends[ends <= max_len][:1]])
                skip = np.where(ends > max_len, max_len - stride, 0)
            size = np.minimum(ends, max_len)
            starts.append(offset + ends - size)
            sizes.append(size)
            skips.append(skip)
        empty = np.zeros(0, dtype=np.int64)
        self.starts = np.concatenate(starts) if starts else empty
        self.sizes = np.concatenate(sizes) if sizes else empty
        self.skips = np.concatenate(skips) if skips else empty

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, L) right-padded, and targets: (B,) for prefix, (B, L) with -100 where not trained for seq2seq."""
        starts, sizes = self.starts[index], self.sizes[index]
        length = int(sizes.max())
        steps = np.arange(length)[None, :]  # (1, L)
        valid = steps < sizes[:, None]  # (B, L)
        positions = np.where(valid, starts[:, None] + steps, 0)
        inputs = np.where(valid, self.flat[positions], 0)
        if self.mode == "prefix":
            targets = self.flat[starts + sizes] - 1  # item index → class index
        else:
            trained = valid & (steps >= self.skips[index][:, None])
            targets = np.where(trained, self.flat[positions + 1] - 1, -100)
        return torch.from_numpy(inputs), torch.from_numpy(targets)


# ---------------------------------------------------------------------------------------------------- recommender
class SASRecRecommender:
    """SASRec behind the harness protocol: ``fit(split, config)``, ``recommend(histories, k)``, ``save``/``load``.

    Example:

    ```python
    >>> from genrec.baselines import SASRecConfig, SASRecRecommender
    >>> from genrec.evaluation import evaluate
    >>> model = SASRecRecommender().fit(split, SASRecConfig(max_epochs=50))
    >>> evaluate(model, split, "test")["ndcg@10"]
    >>> model.save("runs/sasrec"); SASRecRecommender.load("runs/sasrec").recommend([["i1", "i2"]], k=10)
    ```
    """

    def __init__(self):
        self.config: SASRecConfig | None = None
        self.model: SASRec | None = None
        self.items: list[str] = []
        self.item_to_index: dict[str, int] = {}
        self.history: list[dict] = []  # per epoch: epoch, loss, validation metric, seconds
        self.best_epoch: int | None = None

    # ------------------------------------------------------------------ training
    def fit(self, split: LeaveOneOutSplit, config: SASRecConfig | None = None) -> SASRecRecommender:
        """Train on ``split.train``; early-stop on ``split``'s validation items and keep the best epoch's weights."""
        config = config or SASRecConfig()
        if not isinstance(config, SASRecConfig):
            raise ValueError(f"config must be a SASRecConfig, got {type(config).__name__}")
        self.config = config
        self._set_vocabulary(split.catalog)
        sequences = [np.array([self.item_to_index[i] for i in seq], dtype=np.int64) for seq in split.train]
        examples = _TrainingExamples(sequences, config.max_len, config.training_mode, config.window_stride)
        if len(examples) == 0:
            raise ValueError("no training sequence has 2 or more items; SASRec has nothing to learn from")
        metric_k = _metric_k(config.valid_metric)
        device = self._device()
        logger.info(
            "SASRec: %d items, %d users, %d %s training examples, device %s",
            len(self.items),
            len(split.train),
            len(examples),
            config.training_mode,
            device,
        )

        # fork_rng: seeding for reproducibility without changing the caller's global RNG state.
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(config.seed)
            self.model = SASRec(len(self.items), config).to(device)
            optimizer = torch.optim.Adam(
                self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
            )
            rng = np.random.default_rng(config.seed)
            best_value, best_state, self.best_epoch, self.history = -math.inf, None, None, []
            for epoch in range(config.max_epochs):
                started = time.perf_counter()
                loss = self._train_epoch(examples, optimizer, rng, epoch, device)
                value = self._validate(split, config.valid_metric, metric_k)
                seconds = time.perf_counter() - started
                self.history.append({"epoch": epoch, "loss": loss, config.valid_metric: value, "seconds": seconds})
                improved = value > best_value
                if improved:
                    best_value, self.best_epoch = value, epoch
                    best_state = copy.deepcopy(self.model.state_dict())
                logger.info(
                    "epoch %d: loss %.4f, valid %s %.4f%s",
                    epoch,
                    loss,
                    config.valid_metric,
                    value,
                    " (best)" if improved else "",
                )
                if epoch - self.best_epoch >= config.patience:
                    logger.info("early stopping: no improvement for %d epochs", config.patience)
                    break
            self.model.load_state_dict(best_state)
        self.model.eval()
        logger.info("SASRec: restored epoch %d (valid %s %.4f)", self.best_epoch, config.valid_metric, best_value)
        return self

    def _train_epoch(self, examples: _TrainingExamples, optimizer, rng, epoch: int, device) -> float:
        self.model.train()
        order = rng.permutation(len(examples))
        batches = range(0, len(order), self.config.batch_size)
        total, count = 0.0, 0
        bar = tqdm(batches, desc=f"sasrec epoch {epoch}", unit="batch", disable=not self.config.show_progress)
        for start in bar:
            inputs, targets = examples.batch(order[start : start + self.config.batch_size])
            inputs, targets = inputs.to(device), targets.to(device)
            hidden = self.model(inputs)  # (B, L, H)
            if examples.mode == "prefix":
                lengths = (inputs > 0).sum(1)  # (B,)
                last = hidden[torch.arange(len(inputs), device=device), lengths - 1]  # (B, H)
                loss = F.cross_entropy(self.model.logits(last), targets)
            else:
                mask = targets >= 0  # (B, L)
                loss = F.cross_entropy(self.model.logits(hidden[mask]), targets[mask])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(inputs)
            count += len(inputs)
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(1, count)

    def _validate(self, split: LeaveOneOutSplit, metric: str, k: int) -> float:
        from genrec.evaluation import evaluate  # evaluation imports nothing from baselines; local to keep it light

        result = evaluate(self, split, which="valid", ks=(k,), batch_size=self.config.eval_batch_size, progress=False)
        return float(result[metric])

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def recommend(self, histories: list[list[str]], k: int, exclude_seen: bool = False, **options) -> list[list[str]]:
        """Top-``k`` item ids per history, ranking the full catalog.

        Args:
            histories (`list[list[str]]`): item ids per user, oldest first; only the last ``max_len`` are used.
                Items unknown to the model are dropped with a warning.
            k (`int`): number of items per user.
            exclude_seen (`bool`, *optional*, defaults to `False`): never recommend items of the user's history.
        """
        if self.model is None:
            raise ValueError("SASRecRecommender is not fitted; call fit(split, config) or load(dir) first")
        if k <= 0:
            raise ValueError(f"k must be a positive integer, got {k}")
        if options:
            logger.warning("SASRecRecommender ignores options %s", sorted(options))
        k = min(k, len(self.items))
        encoded, unknown = [], 0
        for position, history in enumerate(histories):
            indices = [self.item_to_index[i] for i in history if i in self.item_to_index]
            unknown += len(history) - len(indices)
            if not indices:
                raise ValueError(f"history {position} has no item known to the model; SASRec needs at least one")
            encoded.append(indices)
        if unknown:
            logger.warning("dropped %d history item(s) that are not in the model's item vocabulary", unknown)

        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        results = []
        for start in range(0, len(encoded), self.config.eval_batch_size):
            chunk = encoded[start : start + self.config.eval_batch_size]
            recent = [seq[-self.config.max_len :] for seq in chunk]
            lengths = torch.tensor([len(seq) for seq in recent], device=device)
            inputs = torch.zeros(len(recent), int(lengths.max()), dtype=torch.long)
            for row, seq in enumerate(recent):
                inputs[row, : len(seq)] = torch.tensor(seq)
            hidden = self.model(inputs.to(device))  # (B, L, H)
            scores = self.model.logits(hidden[torch.arange(len(recent), device=device), lengths - 1])  # (B, N)
            if exclude_seen:
                rows = torch.cat([torch.full((len(seq),), row, dtype=torch.long) for row, seq in enumerate(chunk)])
                cols = torch.cat([torch.tensor(seq, dtype=torch.long) - 1 for seq in chunk])
                scores[rows.to(device), cols.to(device)] = -math.inf
            top = torch.topk(scores, k, dim=1).indices.cpu().tolist()
            results.extend([self.items[i] for i in row] for row in top)
        self.model.train(was_training)
        return results

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write weights (safetensors), config + training history (JSON) and the item vocabulary, atomically."""
        from safetensors.torch import save_file

        if self.model is None:
            raise ValueError("nothing to save: the recommender is not fitted")
        path = Path(path)
        with atomic_directory(path) as tmp:
            state = {name: t.detach().cpu().contiguous() for name, t in self.model.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"type": TYPE_TAG})
            meta = {
                "type": TYPE_TAG,
                "config": asdict(self.config),
                "best_epoch": self.best_epoch,
                "history": self.history,
                "num_items": len(self.items),
            }
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
            (tmp / ITEMS_NAME).write_text(json.dumps(self.items, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> SASRecRecommender:
        """Load a directory written by :meth:`save`; checks the type tag and that vocabulary and weights agree."""
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{path} has no {CONFIG_NAME}; it is not a saved SASRecRecommender")
        meta = json.loads((path / CONFIG_NAME).read_text())
        if meta.get("type") != TYPE_TAG:
            raise ValueError(f"{path} holds {meta.get('type')!r}, not {TYPE_TAG!r}")
        self = cls()
        config = dict(meta["config"])
        if device is not None:
            config["device"] = device
        self.config = SASRecConfig.from_dict(config)
        self._set_vocabulary(json.loads((path / ITEMS_NAME).read_text()))
        state = load_file(str(path / WEIGHTS_NAME))
        rows = state["item_embedding.weight"].shape[0]
        if rows != len(self.items) + 1:
            raise ValueError(f"{path}: {len(self.items)} items in {ITEMS_NAME} but {rows - 1} item embeddings")
        self.model = SASRec(len(self.items), self.config)
        self.model.load_state_dict(state)
        self.model.to(self._device()).eval()
        self.best_epoch, self.history = meta.get("best_epoch"), meta.get("history", [])
        return self

    save_pretrained = save
    from_pretrained = load

    # ------------------------------------------------------------------ helpers
    def _set_vocabulary(self, catalog: list[str]) -> None:
        if not catalog:
            raise ValueError("the catalog is empty; nothing to recommend")
        self.items = list(catalog)
        self.item_to_index = {item: index + 1 for index, item in enumerate(self.items)}  # 0 is padding
        if len(self.item_to_index) != len(self.items):
            raise ValueError("the catalog has duplicate item ids")

    def _device(self) -> torch.device:
        if self.config.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.config.device)
