"""Batch recommendation over JSONL files: streaming, resumable, shardable across processes.

Input, one user per line::

    {"user_id": "u1", "history": ["50", "172", "133"]}

Output, one line per user::

    {"user_id": "u1", "line": 1, "items": [{"item_id": "174", "score": -1.9, "title": "...", "identifier": "..."}]}

``line`` is the user's 1-based line number in the input; merging shards uses it to restore the input order.

How it runs:

- **Constant memory.** The input is read in chunks (``chunk_size``, default 10 × ``batch_size``); each chunk is sorted
  by history length so batches pad little, then written back **in input order**, whole lines, flushed per chunk.
  Only the set of user ids already written is kept (for resume).
- **Resume.** With ``resume=True`` users already in the output are skipped. A partially written last line (a crash
  in the middle of a write) is detected and cut off first; a damaged line elsewhere raises ``DataError``.
- **Errors.** A malformed line (bad JSON, no ``user_id``, ``history`` not a list) or a history the recommender
  rejects (empty after dropping unknown items, or an unknown item with ``unknown="error"``) is reported with its line
  number: ``on_error="fail"`` writes everything before it and raises ``DataError``; ``on_error="skip"`` logs it,
  counts it and goes on.
- **Sharding.** Process ``i`` of ``n`` handles the lines with ``(line - 1) % n == i`` and writes
  ``OUTPUT.shard-i-of-n``; :func:`merge_shards` writes the merged ``OUTPUT`` atomically. Under ``accelerate launch``
  :func:`recommend_command` takes ``i``/``n`` and the device from ``accelerate.PartialState`` and merges at the end.

Example:
    >>> from genrec import GenerativeRecommender  # doctest: +SKIP
    >>> from genrec.inference import recommend_jsonl  # doctest: +SKIP
    >>> rec = GenerativeRecommender.from_pretrained("runs/tiger_t5/bundle")  # doctest: +SKIP
    >>> recommend_jsonl(rec, "users.jsonl", "recs.jsonl", k=10)  # doctest: +SKIP
    InferenceStats(read=943, written=943, resumed=0, errors=0, unknown_dropped=0, seconds=12.1)
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from genrec.data.schema import DataError
from genrec.recommenders.base import UNKNOWN_MODES

logger = logging.getLogger(__name__)

ON_ERROR_MODES = ("fail", "skip")


@dataclass
class InferenceStats:
    """What one :func:`recommend_jsonl` call did (for this process's shard)."""

    read: int = 0  # input lines of this shard (non-blank)
    written: int = 0  # users written by this call
    resumed: int = 0  # users skipped because they were already in the output
    errors: int = 0  # lines skipped with on_error="skip"
    unknown_dropped: int = 0  # history items not in the index, dropped with unknown="drop"
    seconds: float = 0.0

    @property
    def users_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Record:
    line: int
    user_id: object
    history: list[str]


def shard_path(output_path: str | os.PathLike, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` writes: ``OUTPUT.shard-i-of-n``."""
    return Path(f"{output_path}.shard-{index}-of-{count}")


def recommend_jsonl(
    recommender,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    k: int = 10,
    num_beams: int | None = None,
    batch_size: int = 32,
    exclude_seen: bool = False,
    on_error: str = "fail",
    unknown: str = "drop",
    resume: bool = True,
    shard: tuple[int, int] | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> InferenceStats:
    """Recommend ``k`` items for every user of a JSONL file and write them as JSONL (see the module docstring).

    Args:
        recommender (`GenerativeRecommender`): the loaded bundle.
        input_path (`str`): JSONL with ``user_id`` and ``history`` per line.
        output_path (`str`): JSONL written in input order (``OUTPUT.shard-i-of-n`` when sharded).
        k (`int`, defaults to 10): items per user.
        num_beams (`int`, *optional*): beams (≥ ``k``); defaults to the bundle's.
        batch_size (`int`, defaults to 32): histories per ``generate`` call.
        exclude_seen (`bool`, defaults to `False`): drop history items from the ranking (lists may get shorter).
        on_error (`str`, defaults to ``"fail"``): ``"fail"`` or ``"skip"`` on a malformed or rejected line.
        unknown (`str`, defaults to ``"drop"``): ``"drop"`` unknown history items (counted) or ``"error"``.
        resume (`bool`, defaults to `True`): skip users already in the output (``False`` starts it anew).
        shard (`tuple[int, int]`, *optional*): ``(i, n)``: handle the lines with ``(line - 1) % n == i``.
        chunk_size (`int`, *optional*): lines sorted and written together; defaults to ``10 * batch_size``.
        progress (`bool`, defaults to `True`): show a progress bar.

    Returns:
        `InferenceStats` with the counts and the wall time (``users_per_second``).

    Raises:
        DataError: a malformed or rejected line with ``on_error="fail"`` (everything before it is written), or a
            damaged output file on resume.
    """
    if on_error not in ON_ERROR_MODES:
        raise ValueError(f"on_error must be one of {ON_ERROR_MODES}, got {on_error!r}")
    if unknown not in UNKNOWN_MODES:
        raise ValueError(f"unknown must be one of {UNKNOWN_MODES}, got {unknown!r}")
    if k < 1 or batch_size < 1:
        raise ValueError(f"k and batch_size must be positive, got k={k}, batch_size={batch_size}")
    shard_index, shard_count = shard or (0, 1)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"input file {input_path} not found")
    out_path = Path(output_path) if shard_count == 1 else shard_path(output_path, shard_index, shard_count)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = _recover_output(out_path) if resume and out_path.exists() else set()
    if done:
        logger.info("resuming %s: %d users already written", out_path, len(done))
    chunk_size = chunk_size or 10 * batch_size

    stats = InferenceStats()
    start = time.perf_counter()
    chunk: list[_Record] = []
    total = _count_lines(input_path) if progress else None
    bar = tqdm(total=total, desc=f"recommend {out_path.name}", unit="line", disable=not progress)
    with (
        open(input_path, encoding="utf-8") as source,
        open(out_path, "a" if resume else "w", encoding="utf-8") as sink,
    ):

        def flush():
            stats.written += _write_chunk(recommender, chunk, sink, k, num_beams, batch_size, exclude_seen)
            chunk.clear()

        def reject(line_no: int, reason: str):
            message = f"{input_path}:{line_no}: {reason}"
            if on_error == "fail":
                flush()  # keep everything before the bad line
                raise DataError(message)
            stats.errors += 1
            logger.warning("skipping %s", message)

        for line_no, line in enumerate(source, start=1):
            bar.update()
            if (line_no - 1) % shard_count != shard_index or not line.strip():
                continue
            stats.read += 1
            try:
                user_id, history = _parse_line(line)
            except ValueError as err:
                reject(line_no, str(err))
                continue
            if str(user_id) in done:
                stats.resumed += 1
                continue
            try:
                cleaned, dropped = recommender.clean_history(history, unknown)
            except KeyError as err:
                reject(line_no, err.args[0] if err.args else str(err))
                continue
            stats.unknown_dropped += dropped
            if not cleaned:
                reject(line_no, f"empty history (after dropping {dropped} unknown item(s))")
                continue
            chunk.append(_Record(line_no, user_id, cleaned))
            if len(chunk) >= chunk_size:
                flush()
        flush()
        sink.flush()
        os.fsync(sink.fileno())
    bar.close()
    stats.seconds = time.perf_counter() - start
    if stats.unknown_dropped:
        logger.warning("dropped %d history item(s) that are not in the index", stats.unknown_dropped)
    logger.info(
        "%s: wrote %d users in %.1fs (%.1f users/s); %d already done, %d skipped lines",
        out_path,
        stats.written,
        stats.seconds,
        stats.users_per_second,
        stats.resumed,
        stats.errors,
    )
    return stats


def _parse_line(line: str) -> tuple[object, list]:
    """``(user_id, history)`` of one input line; ``ValueError`` says what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if record.get("user_id") is None:
        raise ValueError("missing 'user_id'")
    history = record.get("history")
    if not isinstance(history, list):
        raise ValueError(f"'history' must be a list of item ids, got {type(history).__name__}")
    return record["user_id"], history


def _write_chunk(recommender, chunk: list[_Record], sink, k, num_beams, batch_size, exclude_seen) -> int:
    """Recommend for ``chunk`` in batches of similar history length; write the lines in input order, flushed."""
    if not chunk:
        return 0
    order = sorted(range(len(chunk)), key=lambda j: len(chunk[j].history))  # stable: ties keep input order
    histories = [chunk[j].history for j in order]
    ranked = recommender.recommend_scored(
        histories, k=k, num_beams=num_beams, exclude_seen=exclude_seen, batch_size=batch_size
    )
    results = [None] * len(chunk)
    for j, recs in zip(order, ranked):
        results[j] = recs
    lines = []
    for record, recs in zip(chunk, results):
        items = [{"item_id": r.item_id, "score": r.score, "title": r.title, "identifier": r.identifier} for r in recs]
        lines.append(json.dumps({"user_id": record.user_id, "line": record.line, "items": items}, ensure_ascii=False))
    sink.write("\n".join(lines) + "\n")  # whole lines only; a crash mid-write leaves one partial last line at most
    sink.flush()
    return len(lines)


def _recover_output(path: Path) -> set[str]:
    """User ids already in ``path``; cuts off a partially written last line (a crash during a write)."""
    done: set[str] = set()
    valid_end = 0
    with open(path, "rb+") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the last line was cut short
            try:
                done.add(str(json.loads(raw)["user_id"]))
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{number}: damaged output line; fix or delete the file to start over")
            valid_end += len(raw)
        size = f.seek(0, os.SEEK_END)
        if valid_end < size:
            logger.warning("%s: dropping a partially written last line (%d bytes)", path, size - valid_end)
            f.truncate(valid_end)
    return done


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))


@contextlib.contextmanager
def _atomic_open(path: Path):
    """A text file that appears at ``path`` only when fully written (streaming counterpart of atomic_write_text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def merge_shards(output_path: str | os.PathLike, num_shards: int, remove: bool = False) -> int:
    """Merge ``OUTPUT.shard-i-of-n`` files into ``OUTPUT`` in input order, atomically; returns the number of users.

    Streams (each shard is already in input order, so this is a k-way merge on ``line``). ``remove`` deletes the
    shard files after a successful merge.
    """
    paths = [shard_path(output_path, i, num_shards) for i in range(num_shards)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cannot merge: missing shard file(s) {missing}")
    for path in paths:
        _recover_output(path)  # a crashed shard may end with a partial line

    def records(path: Path):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                try:
                    yield json.loads(line)["line"], line
                except (ValueError, KeyError, TypeError):
                    raise DataError(f"{path}:{number}: line without a 'line' field; was it written by genrec?")

    count = 0
    with _atomic_open(Path(output_path)) as out:
        for _, line in heapq.merge(*(records(p) for p in paths), key=lambda pair: pair[0]):
            out.write(line)
            count += 1
    if remove:
        for path in paths:
            path.unlink()
    logger.info("merged %d shards into %s (%d users)", num_shards, output_path, count)
    return count


def recommend_command(
    model: str,
    input: str,
    output: str,
    k: int = 10,
    num_beams: int | None = None,
    batch_size: int = 32,
    exclude_seen: bool = False,
    on_error: str = "fail",
    unknown: str = "drop",
    resume: bool = True,
    index: str | None = None,
    shard: tuple[int, int] | None = None,
    dtype: str | None = None,
    progress: bool = True,
) -> InferenceStats:
    """Load the bundle at ``model`` and run :func:`recommend_jsonl` (what ``genrec recommend`` and the batch script
    call).

    Under ``accelerate launch`` with several processes (and no explicit ``shard``), each process takes its shard and
    its device from ``accelerate.PartialState``; when all are done the main process merges the shards into
    ``output``. ``index`` checks the bundle against a saved item index (fails loudly if it is not the one the model
    was trained on).
    """
    import torch
    from accelerate import PartialState

    from genrec.recommenders import GenerativeRecommender

    # accelerate only treats CPU processes as distributed when asked to run on CPU (``accelerate launch --cpu`` sets
    # ACCELERATE_USE_CPU); without it, processes started by torchrun on a machine with no GPU would each do all lines
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") or (
        int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    )
    state = PartialState(cpu=cpu)
    distributed = shard is None and state.num_processes > 1
    if distributed:
        shard = (state.process_index, state.num_processes)
    recommender = GenerativeRecommender.from_pretrained(model, index=index, device=str(state.device), dtype=dtype)
    stats = recommend_jsonl(
        recommender,
        input,
        output,
        k=k,
        num_beams=num_beams,
        batch_size=batch_size,
        exclude_seen=exclude_seen,
        on_error=on_error,
        unknown=unknown,
        resume=resume,
        shard=shard,
        progress=progress and (state.is_main_process or not distributed),
    )
    if distributed:
        state.wait_for_everyone()
        if state.is_main_process:
            merge_shards(output, state.num_processes)
        state.wait_for_everyone()
    return stats
