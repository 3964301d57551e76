"""Small shared helpers for writing outputs safely.

Every file or directory genrec writes appears atomically (temporary sibling + rename, so a reader or a later
command never sees half of it), gets the permissions a normal ``open()``/``mkdir()`` would give (``tempfile``
creates 0600 files and 0700 directories, which would make a shared dataset or model unreadable to others), and
never replaces something genrec did not write there unless the caller says ``overwrite=True``.

A directory output records what wrote it in a small manifest (``.genrec-output.json``: its kind and the names of its
top-level entries), so a later save can tell its own previous output (replaced) from a user's directory or from files
a user added to it (refused, nothing changed).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

MANIFEST_NAME = ".genrec-output.json"


class OutputExistsError(FileExistsError):
    """The output path holds something genrec did not write there; nothing was changed."""


# ------------------------------------------------------------------------------------------------ permissions
def cache_dir() -> Path:
    """genrec's cache (downloads, encoded item texts, joined GGUF files): ``$GENREC_CACHE`` or ``~/.cache/genrec``."""
    path = Path(os.environ.get("GENREC_CACHE", Path.home() / ".cache" / "genrec"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (``os.umask`` sets it to read it, which is
    racy across threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normalise_permissions(path: str | os.PathLike, mode_of: str | os.PathLike | None = None) -> None:
    """Give ``path`` (and, for a directory, everything under it) the mode ``open()``/``mkdir()`` would have given it
    under the current umask: files 0666 & ~umask (execute bits kept), directories 0777 & ~umask.

    ``mode_of``: an existing file whose mode a replacement should keep instead (a file being atomically rewritten).
    """
    path = Path(path)
    if mode_of is not None and os.path.exists(mode_of):
        os.chmod(path, os.stat(mode_of).st_mode & 0o7777)
        return
    umask = current_umask()

    def fix(p: Path, is_dir: bool) -> None:
        if is_dir:
            os.chmod(p, 0o777 & ~umask)
        else:
            os.chmod(p, (0o666 | (p.stat().st_mode & 0o111)) & ~umask)

    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in files:
                if not os.path.islink(os.path.join(root, name)):
                    fix(Path(root, name), False)
            for name in dirs:
                if not os.path.islink(os.path.join(root, name)):
                    fix(Path(root, name), True)
        fix(path, True)
    else:
        fix(path, False)


def make_temp_dir(parent: str | os.PathLike, prefix: str = ".tmp-") -> Path:
    """``tempfile.mkdtemp`` in ``parent`` with a normal directory mode (it makes 0700 directories)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


# ------------------------------------------------------------------------------------------------ files
@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """A file that appears at ``path`` only when fully written and synced (a crash leaves the old one, if any).

    Replacing a file keeps its permissions; a new file gets the umask's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        normalise_permissions(tmp, mode_of=path if path.is_file() else None)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file + rename, so readers never see half a file."""
    with atomic_open(path) as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def check_output_file(
    path: str | os.PathLike, what: str, is_own: Callable[[Path], bool], overwrite: bool = False
) -> None:
    """Raise :class:`OutputExistsError` if ``path`` exists and is not a previous ``what`` (``is_own(path)``)."""
    path = Path(path)
    if overwrite or not os.path.lexists(path):
        return
    if path.is_dir():
        raise OutputExistsError(f"{path} is a directory; {what} is written to a file: choose another output path")
    if path.stat().st_size == 0 or is_own(path):
        return
    raise OutputExistsError(
        f"{path} exists and is not a {what} written by genrec; nothing was changed. Choose another output path, "
        f"or pass --overwrite (overwrite=True) to replace it"
    )


# ------------------------------------------------------------------------------------------------ directories
def read_manifest(path: str | os.PathLike) -> dict | None:
    """The manifest of a directory genrec wrote (``None`` if it has none or it is unreadable)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("kind"), str) else None


def write_manifest(path: str | os.PathLike, kind: str, files: list[str] | None) -> None:
    """Mark ``path`` as a ``kind`` output of genrec; ``files`` are its top-level entries (``None``: a directory
    other tools add to, e.g. a training run's checkpoints, so any entry counts as its own)."""
    atomic_write_json(Path(path) / MANIFEST_NAME, {"kind": kind, "files": files})


def check_output_dir(
    path: str | os.PathLike,
    kind: str,
    overwrite: bool = False,
    recognise: Callable[[Path], bool] | None = None,
) -> None:
    """Raise :class:`OutputExistsError` unless ``path`` is absent, empty, or genrec's own previous ``kind`` output.

    Own output: a manifest of the same ``kind`` whose list covers every entry (a file a user added is not ours),
    or, for outputs written before manifests existed, a directory ``recognise(path)`` accepts.
    """
    path = Path(path)
    if overwrite or not os.path.lexists(path):
        return
    hint = "nothing was changed. Choose another output path, or pass --overwrite (overwrite=True) to replace it"
    if not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a directory; {hint}")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return
    manifest = read_manifest(path)
    if manifest is None:
        if recognise is not None and recognise(path):
            return
        raise OutputExistsError(
            f"{path} is not empty ({_listing(path, entries)}) and was not written by genrec as a {kind}; {hint}"
        )
    if manifest["kind"] != kind:
        raise OutputExistsError(f"{path} holds a genrec {manifest['kind']}, not a {kind}; {hint}")
    if manifest.get("files") is None:
        return
    foreign = [e for e in entries if e != MANIFEST_NAME and e not in set(manifest["files"])]
    if foreign:
        raise OutputExistsError(
            f"{path} is a genrec {kind} but also holds entries genrec did not write ({_listing(path, foreign)}); "
            f"{hint} (with them)"
        )


def _listing(path: Path, names: list[str], limit: int = 5) -> str:
    shown = [n + ("/" if (path / n).is_dir() else "") for n in names[:limit]]
    return ", ".join(shown) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike,
    kind: str = "output",
    overwrite: bool = False,
    recognise: Callable[[Path], bool] | None = None,
):
    """Yield a temporary sibling directory; on success it replaces ``path``, on failure it is removed.

    A run that fails half way therefore never leaves a directory that a later command would load. ``path`` must be
    absent, empty, or this ``kind``'s own previous output (see :func:`check_output_dir`) unless ``overwrite``; it is
    checked before and again after writing. The result gets a manifest and normal permissions.
    """
    path = Path(path)
    if path.is_symlink() and path.is_dir():
        path = path.resolve()  # write where the link points (e.g. a larger disk), keep the link
    check_output_dir(path, kind, overwrite, recognise)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(path.parent, prefix=f".{path.name}.")
    try:
        yield tmp
        write_manifest(tmp, kind, sorted(p.name for p in tmp.iterdir()))
        normalise_permissions(tmp)
        check_output_dir(path, kind, overwrite, recognise)  # nothing foreign appeared while we were writing
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace(tmp, path)


def _replace(new: Path, path: Path) -> None:
    """Move ``new`` to ``path``. An old ``path`` is swapped out in one step where the OS can (Linux), else moved
    aside first; either way it is deleted only once ``new`` is in place."""
    if not os.path.lexists(path):
        os.replace(new, path)
        return
    if _exchange(new, path):
        _remove(new)  # now the old output
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (``renameat2(RENAME_EXCHANGE)``); ``False`` where the OS or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink()
