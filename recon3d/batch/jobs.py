"""Batch inputs -> jobs: files, folders (their images, sorted), globs and manifests, each with a stable
output name that no other job of the batch shares.

A manifest (:func:`iter_manifest`) is a text file of paths, one a line, or a CSV file with a ``path``
column; it is read as a stream (a 10-million-line manifest is never held in memory), so its jobs'
names cannot depend on the other rows: a row's name is its ``name`` column when the CSV has one, else
``<stem>-<16 hex>`` from a hash of the row's path as written (stable, independent of row order).
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..errors import Recon3DError

__all__ = ["IMAGE_SUFFIXES", "Job", "ManifestError", "expand_inputs", "unique_names", "source_id", "collect_jobs",
           "iter_manifest", "count_manifest", "manifest_name"]

#: File suffixes a folder input is searched for.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})


@dataclass(frozen=True)
class Job:
    """One item of a batch.

    Attributes:
        source: what to process: a path, or an in-memory input (e.g. a demo image array).
        name: the output name (folder / file stem), unique within the batch.
        columns: the other columns of its manifest row, ``(column, value)`` pairs (paths among them,
            e.g. ``landmarks``, already resolved against the manifest's folder).
    """

    source: Any
    name: str
    columns: tuple[tuple[str, str], ...] = ()

    def column(self, key: str, default: str | None = None) -> str | None:
        """The value of a manifest column (``default`` when absent or empty)."""
        for k, v in self.columns:
            if k == key and v != "":
                return v
        return default


class ManifestError(Recon3DError, ValueError):
    """A manifest cannot be read (no such file, a CSV without a ``path`` column, a bad ``name``)."""


def expand_inputs(inputs: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images, sorted) and globs to a list of files (each file once); also
    returns the inputs that matched nothing, with the reason (to be reported, not silently dropped)."""
    files: list[Path] = []
    missing: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            files.extend(found)
            if not found:
                missing.append(f"{item} (folder without images)")
        elif p.is_file():
            files.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(x) for x in glob.glob(os.path.expanduser(item), recursive=True) if Path(x).is_file())
            files.extend(found)
            if not found:
                missing.append(f"{item} (glob matched nothing)")
        else:
            missing.append(f"{item} (no such file)")
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, missing


_FACE_SUFFIX = re.compile(r"^(?P<base>.+)_face\d+$", re.IGNORECASE)


class _Names:
    """A set of output names compared case-insensitively (case-insensitive file systems); with
    ``faces``, a name N also occupies every ``N_face<k>`` (the folders of ``--all-faces``)."""

    def __init__(self, faces: bool) -> None:
        self.faces = faces
        self.keys: set[str] = set()
        self.bases: set[str] = set()  # N for every member N_face<k>

    def add(self, name: str) -> None:
        self.keys.add(name.casefold())
        m = _FACE_SUFFIX.match(name)
        if m:
            self.bases.add(m.group("base").casefold())

    def clashes(self, name: str) -> bool:
        key = name.casefold()
        if key in self.keys:
            return True
        if not self.faces:
            return False
        m = _FACE_SUFFIX.match(name)
        return key in self.bases or (m is not None and m.group("base").casefold() in self.keys)


def unique_names(stems: Sequence[str], *, all_faces: bool = False) -> list[str]:
    """Output names for ``stems``, in order: the first of clashing stems keeps it, later ones get the
    first free ``<stem>_<k>`` (k = 1, 2, ...) that clashes neither with another input's own stem nor
    with a name already given, so no two inputs share an output and a name depends only on the
    input list. Names are compared ignoring case (``Face`` and ``face`` are one folder on macOS and
    Windows); with ``all_faces`` a name N also occupies ``N_face0``, ``N_face1``, ... (the folders
    ``--all-faces`` writes), so ``group.jpg`` and ``group_face0.jpg`` never share a folder.

    >>> unique_names(["face", "face", "face_1", "b"])
    ['face', 'face_2', 'face_1', 'b']
    >>> unique_names(["Face", "face"]), unique_names(["g", "g_face0"], all_faces=True)
    (['Face', 'face_1'], ['g', 'g_face0_1'])
    """
    taken = _Names(all_faces)
    for stem in stems:
        taken.add(stem)
    given = _Names(all_faces)
    names = []
    for stem in stems:
        name = stem
        if given.clashes(name):
            k = 1
            while taken.clashes(f"{stem}_{k}") or given.clashes(f"{stem}_{k}"):
                k += 1
            name = f"{stem}_{k}"
        given.add(name)
        names.append(name)
    return names


def source_id(source: Any) -> str | None:
    """What identifies a job's input in its output JSON (``batch.source``, checked by ``--resume``):
    the absolute path of a file, ``None`` for an in-memory input.

    >>> source_id(object()) is None
    True
    """
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source).resolve())
    return None


def collect_jobs(inputs: Iterable[str], *, prepend: Sequence[tuple[Any, str]] = (),
                 all_faces: bool = False) -> tuple[list[Job], list[str]]:
    """Jobs for ``prepend`` (``(source, stem)`` pairs, e.g. a demo image) then the files of ``inputs``
    (:func:`expand_inputs`), named with :func:`unique_names` (``all_faces``: the names also reserve
    their ``_face<k>`` folders); also the inputs that matched nothing."""
    files, missing = expand_inputs(inputs)
    pairs = [*prepend, *((f, f.stem) for f in files)]
    names = unique_names([stem for _, stem in pairs], all_faces=all_faces)
    return [Job(src, name) for (src, _), name in zip(pairs, names, strict=True)], missing


#: Manifest columns that hold paths; resolved against the manifest's folder like ``path``.
PATH_COLUMNS = frozenset({"landmarks", "mask"})

_NAME_OK = re.compile(r"^[^/\\\x00]+$")


def manifest_name(path_text: str) -> str:
    """The output name of a manifest row without a ``name`` column: the file stem and 16 hex digits
    (64 bits) of the SHA-1 of the normalised path as written in the row; for 10 million rows the
    chance of any two clashing is about 3e-6. Depends on the row alone, not on the other rows.

    >>> manifest_name("casia/0000045/001.jpg"), manifest_name("casia/./0000045/001.jpg")
    ('001-78b9842e8d0d0192', '001-78b9842e8d0d0192')
    """
    norm = os.path.normpath(path_text)
    return f"{Path(norm).stem}-{hashlib.sha1(norm.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"


def _manifest_rows(manifest: Path) -> Iterator[dict[str, str]]:
    """The rows of a manifest as dicts (``path`` always present), streamed."""
    try:
        f = open(manifest, encoding="utf-8", newline="")
    except OSError as e:
        raise ManifestError(f"{manifest}: cannot read manifest: {e.strerror or e}") from e
    with f:
        if manifest.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "path" not in fields:
                raise ManifestError(f"{manifest}: a CSV manifest needs a 'path' column, found {fields}")
            for row in reader:
                yield {k: (v or "").strip() for k, v in row.items() if k is not None}
        else:
            for line in f:
                text = line.strip()
                if text and not text.startswith("#"):
                    yield {"path": text}


def iter_manifest(manifest: str | os.PathLike) -> Iterator[Job]:
    """Jobs of a manifest, streamed: a text file of paths (one a line; blank lines and ``#`` comments
    skipped) or a ``.csv`` with a ``path`` column (a ``name`` column gives the output names; other
    columns are kept in :attr:`Job.columns`, ``landmarks``/``mask`` resolved like ``path``). Relative
    paths are relative to the manifest's folder. Rows are not checked here (a missing file fails its
    own job, in the worker that reads it). Raises :class:`ManifestError` at the first bad row."""
    manifest = Path(manifest)
    base = manifest.parent
    for k, row in enumerate(_manifest_rows(manifest), start=1):
        text = row.get("path", "")
        if not text:
            continue
        name = row.get("name") or manifest_name(text)
        if not _NAME_OK.match(name) or name in (".", "..") or name.startswith("."):
            raise ManifestError(f"{manifest}: row {k}: {name!r} cannot be an output name")
        cols = tuple((c, str(base / os.path.expanduser(v)) if c in PATH_COLUMNS and v else v)
                     for c, v in row.items() if c not in ("path", "name"))
        yield Job(base / os.path.expanduser(text), name, cols)


def count_manifest(manifest: str | os.PathLike) -> int:
    """The number of jobs of a manifest (one streamed pass; for the progress bar)."""
    return sum(1 for row in _manifest_rows(Path(manifest)) if row.get("path"))
