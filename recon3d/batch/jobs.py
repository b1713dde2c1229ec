"""Batch inputs -> jobs: files, folders (their images, sorted) and globs, each with a stable output name
that no other job of the batch shares."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["IMAGE_SUFFIXES", "Job", "expand_inputs", "unique_names", "source_id", "collect_jobs"]

#: File suffixes a folder input is searched for.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})


@dataclass(frozen=True)
class Job:
    """One item of a batch.

    Attributes:
        source: what to process: a path, or an in-memory input (e.g. a demo image array).
        name: the output name (folder / file stem), unique within the batch.
    """

    source: Any
    name: str


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
