"""Batch recommendation over JSONL files: streaming, exactly resumable, shardable across processes.

Input, one user per line::

    {"user_id": "u1", "history": ["50", "172", "133"]}

Output, one line per user::

    {"user_id": "u1", "line": 1, "items": [{"item_id": "174", "score": -1.9, "title": "...", "identifier": "..."}]}

``line`` is the user's 1-based line number in the input: resume and the merge of shards key on it, never on
``user_id`` (ids may repeat, and ``1`` and ``"1"`` are different users).

How it runs:

- **Constant memory.** The input is read in chunks (``chunk_size``, default 10 × ``batch_size``); each chunk is sorted
  by history length so batches pad little, then written back **in input order**, whole lines, flushed per chunk.
  Resume needs only the last line number written.
- **A progress file beside the output.** ``OUTPUT.progress.json`` records the run's fingerprint: the input file's
  content (sha256), the model (config, index and a sample of every weight tensor), ``k``, beams, ``exclude_seen`` and
  ``unknown``. Only an output with a progress file of the same fingerprint is resumed; one from another run (other
  ``k``, changed histories, another input file or model) is refused with what differs, and ``resume=False``
  (``--no-resume``) starts it over. A file genrec did not write is never touched unless ``overwrite=True``
  (``--overwrite``), and the output can never be the input file.
- **Exact resume.** Lines up to the last one in the output are done; the run continues after it. A last line cut short
  by a crash is removed; a complete last line that only lost its newline gets it back; earlier lines are never
  rewritten, and a damaged one raises ``DataError`` with its line number.
- **Errors.** A malformed line (bad JSON, no ``user_id``, ``history`` not a list) or a history the recommender
  rejects (empty after dropping unknown items, or an unknown item with ``unknown="error"``) is reported with its line
  number: ``on_error="fail"`` writes everything before it and raises ``DataError``; ``on_error="skip"`` logs it,
  counts it and goes on (``on_error`` is not part of the fingerprint, so a failed run can be continued with skip).
- **Bounded work.** ``k`` above the catalog size, or beams beyond what fits the decoder's memory budget, are capped
  with a warning before anything is written (:meth:`GenerativeRecommender.resolve_k`).
- **Sharding.** Process ``i`` of ``n`` handles the lines with ``(line - 1) % n == i`` and writes
  ``OUTPUT.shard-i-of-n`` (with its own progress file); :func:`merge_shards` checks that every shard finished the same
  run and writes the merged ``OUTPUT`` atomically. Under ``accelerate launch`` :func:`recommend_command` takes
  ``i``/``n`` and the device from ``accelerate.PartialState`` and merges at the end.

Example:
    >>> from genrec import GenerativeRecommender  # doctest: +SKIP
    >>> from genrec.inference import recommend_jsonl  # doctest: +SKIP
    >>> rec = GenerativeRecommender.from_pretrained("runs/tiger_t5/bundle")  # doctest: +SKIP
    >>> recommend_jsonl(rec, "users.jsonl", "recs.jsonl", k=10)  # doctest: +SKIP
    InferenceStats(read=943, written=943, resumed=0, errors=0, unknown_dropped=0, seconds=12.1)
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from genrec.data.schema import DataError
from genrec.recommenders.base import UNKNOWN_MODES, check_k
from genrec.utils import OutputExistsError, atomic_open, atomic_write_json

logger = logging.getLogger(__name__)

ON_ERROR_MODES = ("fail", "skip")
PROGRESS_SUFFIX = ".progress.json"
PROGRESS_FORMAT = 1


@dataclass
class InferenceStats:
    """What one :func:`recommend_jsonl` call did (for this process's shard)."""

    read: int = 0  # input lines of this shard (non-blank)
    written: int = 0  # users written by this call
    resumed: int = 0  # lines of this shard already done by an earlier run of the same job
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


def progress_path(output_path: str | os.PathLike) -> Path:
    """The progress file of an output: ``OUTPUT.progress.json`` (the run's fingerprint and settings)."""
    return Path(f"{output_path}{PROGRESS_SUFFIX}")


# ---------------------------------------------------------------------------------------------- fingerprints
def model_fingerprint(recommender) -> str:
    """A cheap, stable hash of what decides a recommender's output: its bundle config, item index, decoder, and the
    first and last values of every weight tensor (hashing whole multi-GB weights would cost more than a resume saves).
    """
    config = dataclasses.asdict(recommender.config) if dataclasses.is_dataclass(recommender.config) else {}
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(f"|{getattr(recommender, 'decoder', '')}|{recommender.index.fingerprint}|".encode())
    for name, tensor in recommender.model.named_parameters():
        flat = tensor.detach().reshape(-1)
        sample = flat[:64] if flat.numel() <= 128 else flat[[*range(64), *range(-64, 0)]]
        h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        h.update(sample.float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _digest_input(path: Path) -> tuple[str, int]:
    """sha256 of the input file and its number of lines (one pass)."""
    h, lines = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            lines += block.count(b"\n")
    return h.hexdigest(), lines


def _fingerprint(settings: dict) -> str:
    keys = ("input_sha256", "model", "k", "num_beams", "exclude_seen", "unknown")
    return hashlib.sha256(json.dumps({key: settings[key] for key in keys}, sort_keys=True).encode()).hexdigest()[:16]


def _read_progress(path: Path) -> dict | None:
    try:
        progress = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return progress if isinstance(progress, dict) and isinstance(progress.get("fingerprint"), str) else None


def _write_progress(output: Path, fingerprint: str, settings: dict, shard, complete: bool, **extra) -> None:
    atomic_write_json(
        progress_path(output),
        {
            "format": PROGRESS_FORMAT,
            "fingerprint": fingerprint,
            "settings": settings,
            "shard": list(shard) if shard else None,
            "complete": complete,
            **extra,
        },
    )


def _describe_difference(old: dict, new: dict) -> str:
    """What changed between two runs' settings, for the refusal message."""
    old = old or {}
    changes = []
    if old.get("input_sha256") != new["input_sha256"]:
        if old.get("input") and old.get("input") != new["input"]:
            changes.append(f"input file {old.get('input')} → {new['input']}")
        else:
            before, after = str(old.get("input_sha256"))[:12], new["input_sha256"][:12]
            changes.append(f"input {new['input']} changed since (sha256 {before}… → {after}…)")
    if old.get("model") != new["model"]:
        changes.append(f"model {old.get('model_path') or old.get('model')} → {new.get('model_path') or new['model']}")
    for key in ("k", "num_beams", "exclude_seen", "unknown"):
        if old.get(key) != new[key]:
            changes.append(f"{key} {old.get(key)!r} → {new[key]!r}")
    return "; ".join(changes) or "a different fingerprint"


def _same_path(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


# ---------------------------------------------------------------------------------------------- the output
def _start_output(out_path: Path, fingerprint: str, settings: dict, shard, resume: bool, overwrite: bool) -> int:
    """Decide whether ``out_path`` is resumed or (re)started; returns the last input line already done (0: start).

    Refuses, changing nothing, an output that genrec did not write (unless ``overwrite``) or one from a run with
    another fingerprint (unless ``resume=False``).
    """
    if out_path.is_dir():
        raise OutputExistsError(f"--output {out_path} is a directory; give a file path")
    has_content = out_path.is_file() and out_path.stat().st_size > 0
    previous = _read_progress(progress_path(out_path)) if has_content else None
    if has_content and previous is None and not overwrite:
        raise OutputExistsError(
            f"--output {out_path} exists and was not written by genrec recommend (no {progress_path(out_path).name} "
            "beside it); nothing was changed. Choose another --output, or pass --overwrite to replace it"
        )
    if previous is not None and resume:
        if previous["fingerprint"] != fingerprint:
            changes = _describe_difference(previous.get("settings"), settings)
            raise OutputExistsError(
                f"--output {out_path} holds results of another run ({changes}); nothing was changed. Rerun with the "
                "same input, model and options to resume it, choose another --output, or pass --no-resume to start "
                "it over"
            )
        last_line, records = _recover_output(out_path)
        if records:
            logger.info("resuming %s: %d users written, continuing after input line %d", out_path, records, last_line)
        return last_line
    # a new run: empty the output first, then record the fingerprint (a crash in between leaves an empty output,
    # which the next run starts over, never old lines under a new fingerprint)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        os.fsync(f.fileno())
    _write_progress(out_path, fingerprint, settings, shard, complete=False)
    return 0


def _recover_output(path: Path) -> tuple[int, int]:
    """``(last input line, records)`` of a genrec output, after repairing its end: a last line cut short by a crash
    is removed, a complete last line that lost only its newline gets it back; complete lines are never changed."""
    last_line = records = valid_end = 0
    tail = b""
    with open(path, "rb+") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                tail = raw
                break
            line = _output_line_number(raw)
            if line is None or line <= last_line:
                raise DataError(
                    f"{path}:{number}: damaged output line (not a genrec result line in input order); fix or delete "
                    "the file, or pass --no-resume to start over"
                )
            last_line, records, valid_end = line, records + 1, valid_end + len(raw)
        if tail:
            line = _output_line_number(tail)
            f.seek(valid_end)
            if line is not None and line > last_line:
                f.seek(valid_end + len(tail))
                f.write(b"\n")
                logger.warning("%s: the last line had no newline; added it (the line is kept)", path)
                last_line, records = line, records + 1
            else:
                logger.warning("%s: dropping a partially written last line (%d bytes)", path, len(tail))
                f.truncate(valid_end)
    return last_line, records


def _output_line_number(raw: bytes) -> int | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict) or "items" not in record or "user_id" not in record:
        return None
    line = record.get("line")
    return line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None


# ---------------------------------------------------------------------------------------------- the run
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
    overwrite: bool = False,
    model_path: str | None = None,
) -> InferenceStats:
    """Recommend ``k`` items for every user of a JSONL file and write them as JSONL (see the module docstring).

    Args:
        recommender (`GenerativeRecommender`): the loaded bundle.
        input_path (`str`): JSONL with ``user_id`` and ``history`` per line.
        output_path (`str`): JSONL written in input order (``OUTPUT.shard-i-of-n`` when sharded), with its progress
            file ``OUTPUT.progress.json``.
        k (`int`, defaults to 10): items per user (capped at the catalog size, with a warning).
        num_beams (`int`, *optional*): beams (≥ ``k``); defaults to the bundle's.
        batch_size (`int`, defaults to 32): histories per ``generate`` call.
        exclude_seen (`bool`, defaults to `False`): drop history items from the ranking (lists may get shorter).
        on_error (`str`, defaults to ``"fail"``): ``"fail"`` or ``"skip"`` on a malformed or rejected line.
        unknown (`str`, defaults to ``"drop"``): ``"drop"`` unknown history items (counted) or ``"error"``.
        resume (`bool`, defaults to `True`): continue an output of the same run; ``False`` starts it over.
        shard (`tuple[int, int]`, *optional*): ``(i, n)``: handle the lines with ``(line - 1) % n == i``.
        chunk_size (`int`, *optional*): lines sorted and written together; defaults to ``10 * batch_size``.
        progress (`bool`, defaults to `True`): show a progress bar.
        overwrite (`bool`, defaults to `False`): replace an output file genrec did not write.
        model_path (`str`, *optional*): the bundle's path, recorded in the progress file for messages.

    Returns:
        `InferenceStats` with the counts and the wall time (``users_per_second``).

    Raises:
        DataError: a malformed or rejected line with ``on_error="fail"`` (everything before it is written), or a
            damaged output file on resume.
        OutputExistsError: the output is not genrec's, or belongs to a run with another fingerprint (nothing is
            changed).
        ValueError: bad arguments, or the output is the input file.
    """
    if on_error not in ON_ERROR_MODES:
        raise ValueError(f"on_error must be one of {ON_ERROR_MODES}, got {on_error!r}")
    if unknown not in UNKNOWN_MODES:
        raise ValueError(f"unknown must be one of {UNKNOWN_MODES}, got {unknown!r}")
    batch_size = check_k(batch_size, "batch_size")
    k, num_beams = recommender.resolve_k(k, num_beams)
    shard_index, shard_count = shard or (0, 1)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    input_path, out_path = _check_paths(input_path, output_path, shard)
    input_sha256, total = _digest_input(input_path)
    settings = {
        "input": str(input_path.resolve()),
        "input_sha256": input_sha256,
        "model": model_fingerprint(recommender),
        "model_path": str(model_path) if model_path else None,
        "k": k,
        "num_beams": num_beams,
        "exclude_seen": bool(exclude_seen),
        "unknown": unknown,
    }
    fingerprint = _fingerprint(settings)
    done_through = _start_output(out_path, fingerprint, settings, shard, resume, overwrite)
    chunk_size = chunk_size or 10 * batch_size

    stats = InferenceStats()
    start = time.perf_counter()
    chunk: list[_Record] = []
    bar = tqdm(total=total, desc=f"recommend {out_path.name}", unit="line", disable=not progress)
    with open(input_path, encoding="utf-8") as source, open(out_path, "a", encoding="utf-8") as sink:

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
            if line_no <= done_through:
                stats.resumed += 1
                continue
            try:
                user_id, history = _parse_line(line)
            except ValueError as err:
                reject(line_no, str(err))
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
    _write_progress(out_path, fingerprint, settings, shard, complete=True)
    stats.seconds = time.perf_counter() - start
    if stats.unknown_dropped:
        logger.warning("dropped %d history item(s) that are not in the index", stats.unknown_dropped)
    logger.info(
        "%s: wrote %d users in %.1fs (%.1f users/s); %d lines already done, %d skipped lines",
        out_path,
        stats.written,
        stats.seconds,
        stats.users_per_second,
        stats.resumed,
        stats.errors,
    )
    return stats


def _check_paths(input_path, output_path, shard) -> tuple[Path, Path]:
    """``(input, the file this process writes)``; the input must exist and be none of the files written."""
    shard_index, shard_count = shard or (0, 1)
    input_path = Path(input_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"--input file {input_path} not found")
    out_path = Path(output_path) if shard_count == 1 else shard_path(output_path, shard_index, shard_count)
    for path in (Path(output_path), progress_path(output_path), out_path, progress_path(out_path)):
        if _same_path(path, input_path):
            raise ValueError(
                f"--output: {path} is the input file; choose another --output (the input is never written)"
            )
    return input_path, out_path


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


# ---------------------------------------------------------------------------------------------- shards
def merge_shards(
    output_path: str | os.PathLike, num_shards: int, remove: bool = False, overwrite: bool = False
) -> int:
    """Merge ``OUTPUT.shard-i-of-n`` files into ``OUTPUT`` in input order, atomically; returns the number of users.

    Every shard must have finished the same run (same fingerprint in its progress file). Streams (each shard is
    already in input order, so this is a k-way merge on ``line``). An existing ``OUTPUT`` is replaced only if it
    holds results of the same run, unless ``overwrite``. ``remove`` deletes the shard files after the merge.
    """
    output_path = Path(output_path)
    num_shards = check_k(num_shards, "num_shards")
    paths = [shard_path(output_path, i, num_shards) for i in range(num_shards)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cannot merge: missing shard file(s) {missing}")
    progresses = [_read_progress(progress_path(p)) for p in paths]
    for path, progress in zip(paths, progresses):
        if progress is None:
            name = progress_path(path).name
            raise DataError(f"cannot merge: {path} has no progress file ({name}); was it written by genrec?")
        if not progress.get("complete"):
            raise DataError(f"cannot merge: {path} has not finished; rerun its shard (it resumes) and merge again")
    fingerprints = {p["fingerprint"] for p in progresses}
    if len(fingerprints) > 1:
        raise DataError(
            f"cannot merge: the shards of {output_path} come from different runs (fingerprints "
            f"{sorted(fingerprints)}); rerun them with the same input, model and options"
        )
    fingerprint, settings = progresses[0]["fingerprint"], progresses[0].get("settings") or {}
    if output_path.is_file() and output_path.stat().st_size > 0 and not overwrite:
        previous = _read_progress(progress_path(output_path))
        if previous is None or previous["fingerprint"] != fingerprint:
            raise OutputExistsError(
                f"{output_path} exists and does not hold results of this run; nothing was changed. Choose another "
                "output, or pass --overwrite to replace it"
            )
    for path in paths:
        _recover_output(path)  # repairs a missing final newline

    def records(path: Path):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                try:
                    yield json.loads(line)["line"], line
                except (ValueError, KeyError, TypeError):
                    raise DataError(f"{path}:{number}: line without a 'line' field; was it written by genrec?")

    # the progress file first: a crash before the output is replaced leaves this run's fingerprint over what is
    # there, which is this run's own older merge or nothing
    _write_progress(output_path, fingerprint, settings, None, complete=True, merged_from=num_shards)
    count = 0
    with atomic_open(output_path) as out:
        for _, line in heapq.merge(*(records(p) for p in paths), key=lambda pair: pair[0]):
            out.write(line)
            count += 1
    if remove:
        for path in paths:
            path.unlink()
            progress_path(path).unlink(missing_ok=True)
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
    overwrite: bool = False,
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

    _check_paths(input, output, shard)  # before the model loads: a wrong path fails at once

    # accelerate only treats CPU processes as distributed when asked to run on CPU (ACCELERATE_USE_CPU=1, which
    # `accelerate launch --cpu` also sets); without it, processes started by torchrun on a machine with no GPU would
    # each do all lines
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
        overwrite=overwrite,
        model_path=str(model),
    )
    if distributed:
        state.wait_for_everyone()
        if state.is_main_process:
            merge_shards(output, state.num_processes, overwrite=overwrite)
        state.wait_for_everyone()
    return stats
