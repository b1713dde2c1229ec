"""Atomic files and folders that follow the umask, and the output-location checks.

* :func:`atomic_file` -- write a file under a temporary name next to it, then ``os.replace``;
* :func:`atomic_dir` -- fill a temporary sibling folder, then swap it in with :func:`replace_dir`:
  on Linux ``renameat2(RENAME_EXCHANGE)`` (macOS ``renamex_np(RENAME_SWAP)``) exchanges the old and
  the new folder in one step, so a reader always sees a complete folder (old or new) and two writers
  to one folder both succeed (the last one wins); elsewhere the old folder is renamed away first
  (a short window without the folder);
* :func:`clean_stale_temps` -- remove the temporary files/folders of killed runs (``--resume``);
* :func:`check_output_dir` -- the ``--out`` folder can be created and written (before any work).

Temporary names are ``.<name>.tmp-<pid>-<random>``; everything is created with mode 0666/0777
masked by the umask (never ``mkstemp``'s 0600 / ``mkdtemp``'s 0700).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import Recon3DError

__all__ = ["OutputError", "atomic_file", "atomic_dir", "replace_dir", "clean_stale_temps", "check_output_dir",
           "temp_name", "is_temp_name"]


class OutputError(Recon3DError, OSError):
    """An output file or folder cannot be written (read-only, full disk, a file in the way, ...)."""


_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})$")


def temp_name(name: str) -> str:
    """A fresh temporary sibling name for ``name``: ``.<name>.tmp-<pid>-<8 hex>``."""
    return f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temporary name made by :func:`temp_name`.

    >>> is_temp_name(temp_name("face")), is_temp_name("face"), is_temp_name(".face.tmp-x")
    (True, False, False)
    """
    return _TEMP_RE.match(name) is not None


def oserror_message(e: OSError) -> str:
    """``strerror`` of an OS error, else its text."""
    return e.strerror or str(e)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` (mode 0666 & ~umask) and rename it over ``path`` on
    success; on failure the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        kw = {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}
        with os.fdopen(fd, mode, **kw) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@functools.cache
def _swap_function():
    """``swap(a, b)`` exchanging two paths atomically, or None where the OS cannot (looked up once)."""
    try:
        libc = ctypes.CDLL("libc.dylib" if sys.platform == "darwin" else None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        def call(a: bytes, b: bytes) -> int:
            return libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        def call(a: bytes, b: bytes) -> int:
            return libc.renamex_np(a, b, 2)  # RENAME_SWAP
    else:
        return None

    def swap(a: str, b: str) -> None:
        if call(os.fsencode(a), os.fsencode(b)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), b)

    return swap


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the folder ``new`` at ``target``, replacing a folder there, atomically where the OS can
    exchange two paths (Linux, macOS): ``target`` never goes missing and concurrent replacements of
    one ``target`` all succeed. The old content is deleted.

    Raises:
        OutputError: ``target`` exists and is not a folder, or the OS refused (the message says why).
    """
    new, target = Path(new), Path(target)
    for _ in range(100):
        try:
            os.rename(new, target)  # target missing (or an empty folder): plain atomic rename
            return
        except OSError as e:
            if e.errno == errno.ENOTDIR or (target.exists() and not target.is_dir()):
                raise OutputError(f"{target}: exists and is not a folder; move it away") from None
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise OutputError(f"{target}: cannot write ({oserror_message(e)})") from None
        swap = _swap_function()
        if swap is not None:
            try:
                swap(str(new), str(target))
            except OSError as e:
                if e.errno == errno.ENOENT:  # the target vanished meanwhile: rename again
                    continue
                if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                    raise OutputError(f"{target}: cannot write ({oserror_message(e)})") from None
            else:
                shutil.rmtree(new, ignore_errors=True)  # now holds the old content
                return
        # no atomic exchange here: move the old folder aside, then rename (a short gap)
        old = target.with_name(temp_name(target.name))
        try:
            os.rename(target, old)
        except FileNotFoundError:
            continue
        try:
            os.rename(new, target)
        except OSError:
            if target.exists():  # another writer's folder went in meanwhile: drop the old one, retry
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(old, target)  # put the old folder back, retry
            continue
        shutil.rmtree(old, ignore_errors=True)
        return
    raise OutputError(f"{target}: cannot replace the folder (other writers keep changing it)")


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder next to ``target`` (mode 0777 & ~umask); on success it replaces
    ``target`` (:func:`replace_dir`), on failure it is removed. OS errors become :class:`OutputError`."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and not target.is_dir():
            raise OutputError(f"{target}: exists and is not a folder; move it away")
        tmp = target.with_name(temp_name(target.name))
        os.mkdir(tmp, 0o777)
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(f"{target}: cannot write ({oserror_message(e)})") from None
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, Recon3DError):
            raise OutputError(f"{target}: cannot write ({oserror_message(e)})") from None
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders (:func:`temp_name`) in ``folder`` whose process is no
    longer running (a killed run); those of running writers are kept. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP_RE.match(p.name)
        if m is None or _pid_alive(int(m.group("pid"))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError:
                continue
        removed.append(p)
    return removed


def check_output_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) if needed and check that files can be written in it (a
    probe file of 64 KiB is written, synced and removed: a read-only or full disk fails here).

    Raises:
        OutputError: one line saying why (``folder`` is a file, read-only, disk full, ...).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output folder {folder} ({oserror_message(e)})") from None
    probe = folder / temp_name("write-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, b"\0" * 65536)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write in output folder {folder} ({oserror_message(e)})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return folder
