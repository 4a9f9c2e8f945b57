"""Write outputs atomically: a reader finds the earlier file or the new one, never half of one.

Every output goes to a temporary sibling of its target first (the same folder, so the same
filesystem, where a rename is atomic), is flushed to disk, and then moved over the target
with :func:`os.replace`. On any failure the temporary is removed and an earlier file at the
target is left byte for byte as it was. :func:`check_writable` checks a target before the
work that fills it starts, so a bad path fails in a second, not after an hour's run.

Temporaries are hidden files named ``.<target name>.tmp-<random><suffix>``; only a process
killed outright (SIGKILL, a power cut) can leave one behind.

>>> import os, tempfile
>>> import pandas as pd
>>> with tempfile.TemporaryDirectory() as tmp:
...     _ = atomic_write_text(f"{tmp}/params.json", "{}\\n")
...     _ = write_frame(pd.DataFrame({"a": [1, 2]}), f"{tmp}/a.csv", index=False)
...     sorted(os.listdir(tmp))
['a.csv', 'params.json']
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ClmError

if TYPE_CHECKING:  # frames are written with their own methods
    import pandas as pd

#: The suffixes :func:`write_frame` (and the engines' writers) know.
FRAME_SUFFIXES = (".csv", ".parquet")
_TMP = ".tmp-"  # in every temporary's name: ".scores.csv.tmp-k2j4x9.csv"
#: The name of a temporary this module writes (what a killed writer may leave behind).
TEMPORARY_NAME = re.compile(r"\..+\.tmp-[A-Za-z0-9_]{8}(\.[A-Za-z0-9]+)?")


def check_writable(
    path: str | Path,
    option: str,
    *,
    suffixes: tuple[str, ...] | None = FRAME_SUFFIXES,
    folder: bool = False,
) -> Path:
    """Check that an output can be written at ``path``, before the work that fills it.

    The target's suffix must be one of ``suffixes``; a file output must not be an existing
    folder; its folder must exist or be creatable, and be writable (tried by creating and
    removing a file there: permission bits do not tell about root, read-only mounts or ACLs).
    Nothing is created.

    Parameters
    ----------
    path
        The output's target.
    option
        How the user named it (``"--out"``), for the message.
    suffixes
        The suffixes the writer supports; ``None`` for any (a text or JSON file).
    folder
        The writer makes a folder of that name (Spark's part files): an existing folder is
        replaced, not an error.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    ClmError
        Naming ``option``, ``path`` and the reason.

    Examples
    --------
    >>> check_writable("/no/such/place/x.xlsx", "--out")
    Traceback (most recent call last):
    ...
    clmmodels.errors.ClmError: --out /no/such/place/x.xlsx: use a .csv or .parquet file name
    """
    target = Path(path)

    def fail(reason: str) -> ClmError:
        return ClmError(f"{option} {path}: {reason}")

    if suffixes is not None and target.suffix not in suffixes:
        raise fail(f"use a {' or '.join(suffixes)} file name")
    if target.is_dir() and not folder:
        raise fail("is a folder; give a file name")
    # The nearest folder that exists: the output's own, or the one its folder is created in.
    parent = target.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise fail(f"{parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{target.name}{_TMP}")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise fail(f"cannot write in {parent} ({err.strerror or err})") from None
    return target


def check_distinct(targets: Mapping[str, str | Path | None]) -> None:
    """Refuse two outputs of one command at the same path (the second would overwrite the
    first); ``targets`` maps each option to its path, ``None`` for one not given.

    Examples
    --------
    >>> check_distinct({"--out": "a.csv", "--metrics-out": "./a.csv"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    clmmodels.errors.ClmError: --out a.csv and --metrics-out ./a.csv are the same file: ...
    """
    seen: dict[str, tuple[str, str | Path]] = {}
    for option, path in targets.items():
        if path is None:
            continue
        key = os.path.normcase(os.path.realpath(path))  # ./a.csv, a.csv and a link to it
        if key in seen:
            first, first_path = seen[key]
            raise ClmError(
                f"{first} {first_path} and {option} {path} are the same file: "
                "give each output its own"
            )
        seen[key] = (option, path)


@contextmanager
def atomic_path(path: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write to, moved onto ``path`` when the block ends
    without an error, and removed (``path`` untouched) when it raises.

    For writers that take a path: pandas, DuckDB's ``COPY ... TO`` (with ``USE_TMP_FILE
    false``: the temporary is already DuckDB's), Spark (``folder=True``). The temporary keeps
    ``path``'s suffix, for writers that choose the format by it.

    Parameters
    ----------
    path
        The target. Its folder is created if missing; a symbolic link is followed, so the
        file it points to is replaced, as a plain write would.
    folder
        The writer makes a folder (Spark's part files), which replaces an earlier file or
        folder at ``path`` when the block ends.

    Returns
    -------
    Iterator[Path]
        The temporary: an empty file, or an empty folder with ``folder=True``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with atomic_path(f"{tmp}/out.csv") as part:
    ...         _ = part.write_text("a\\n1\\n")
    ...     open(f"{tmp}/out.csv").read()
    'a\\n1\\n'
    """
    target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{target.name}{_TMP}", target.suffix
    if folder:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix, suffix=suffix))
    else:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        _fsync_tree(tmp)  # the data on disk before the name points at it
        _set_mode(tmp, target, folder)
        if folder:
            _replace_folder(tmp, target)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)  # and the rename itself
    finally:
        _remove(tmp)  # already gone after a replace; the half-written temporary otherwise


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path
        The target file; its folder is created if missing.
    text
        The whole content.
    encoding
        Of the file.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     atomic_write_text(f"{tmp}/a.json", "{}").read_text()
    '{}'
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_frame(frame: pd.DataFrame, path: str | Path, *, index: bool = True) -> Path:
    """Write ``frame`` to ``path`` atomically, CSV or Parquet by the suffix.

    Parameters
    ----------
    frame
        The table.
    path
        A ``.csv`` or ``.parquet`` file; its folder is created if missing.
    index
        Keep the index: CSV's first column(s); in Parquet, columns (``reset_index``), the
        shape the engines write.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_frame(pd.DataFrame({"a": [1]}, index=["x"]), f"{tmp}/a.parquet")
    ...     pd.read_parquet(out).columns.tolist()
    ['index', 'a']
    """
    _check_suffix(path)
    with atomic_path(path) as tmp:
        _frame_to(frame, tmp, Path(path).suffix, index)
    return Path(path)


class OutputSet(AbstractContextManager):
    """Several outputs written all or none: each to its temporary as it comes, and every
    target replaced only when the ``with`` block ends without an error.

    A command that computes first and writes last leaves either all its new outputs or none
    (a failure in the last write does not leave the first ones replaced). Write errors
    (a full disk) are :class:`ClmError` naming the option.

    Examples
    --------
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     try:
    ...         with OutputSet() as outs:
    ...             outs.text("--params-out", f"{tmp}/p.json", "{}")
    ...             raise RuntimeError("the second output failed")
    ...     except RuntimeError:
    ...         pass
    ...     os.listdir(tmp)
    []
    """

    def __init__(self) -> None:
        self._stack = ExitStack()

    def __enter__(self) -> OutputSet:
        self._stack.__enter__()
        return self

    def __exit__(self, *exc) -> bool | None:
        return self._stack.__exit__(*exc)  # newest first: commits, or removes every temporary

    def path(self, path: str | Path, *, folder: bool = False) -> Path:
        """A temporary for ``path`` (see :func:`atomic_path`), for a writer that takes a path."""
        return self._stack.enter_context(atomic_path(path, folder=folder))

    def frame(self, option: str, path: str | Path, frame: pd.DataFrame, index: bool = True) -> None:
        """Stage ``frame`` for ``path`` (as :func:`write_frame`)."""
        _check_suffix(path, option)
        tmp = self.path(path)
        try:
            _frame_to(frame, tmp, Path(path).suffix, index)
        except OSError as err:
            raise _write_error(option, path, err) from err

    def text(self, option: str, path: str | Path, text: str, encoding: str = "utf-8") -> None:
        """Stage ``text`` for ``path`` (as :func:`atomic_write_text`)."""
        tmp = self.path(path)
        try:
            tmp.write_text(text, encoding=encoding)
        except OSError as err:
            raise _write_error(option, path, err) from err


def _check_suffix(path: str | Path, option: str = "output") -> None:
    if Path(path).suffix not in FRAME_SUFFIXES:
        raise ClmError(f"{option} {path}: use a {' or '.join(FRAME_SUFFIXES)} file name")


def _frame_to(frame: pd.DataFrame, path: Path, suffix: str, index: bool) -> None:
    if suffix == ".parquet":
        # Parquet keeps no unnamed index usefully: make it columns, as every engine writes.
        (frame.reset_index() if index else frame).to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=index)


def _write_error(option: str, path: str | Path, err: OSError) -> ClmError:
    return ClmError(
        f"{option} {path}: could not write it ({err.strerror or err}); an earlier file "
        "there is unchanged"
    )


def _fsync_tree(path: Path) -> None:
    """Flush a file, or every file of a folder, to disk."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    if path.is_dir():
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk; POSIX only, where folders open."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not sync folders; the data itself is synced
    finally:
        os.close(fd)


def _set_mode(tmp: Path, target: Path, folder: bool) -> None:
    """Give the temporary the earlier target's mode, else the umask's default: mkstemp makes
    files only their owner reads, which a plain write would not."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)  # reading the umask means setting it; put it straight back
        os.umask(umask)
        mode = (0o777 if folder else 0o666) & ~umask
    os.chmod(tmp, mode)


def _replace_folder(tmp: Path, target: Path) -> None:
    """Move the folder ``tmp`` onto ``target``. A rename cannot replace a folder that has
    files, so an earlier target is moved aside first, put back if the move fails, and removed
    after it succeeds."""
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
