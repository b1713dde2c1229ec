"""Batch inputs -> jobs: files, folders (their images, sorted) and globs, each with a stable output name
that no other job of the batch shares."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["IMAGE_SUFFIXES", "Job", "expand_inputs", "unique_names", "collect_jobs"]

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


def unique_names(stems: Sequence[str]) -> list[str]:
    """Output names for ``stems``, in order: the first of equal stems keeps it, later ones get the
    first free ``<stem>_<k>`` (k = 1, 2, ...) that is neither another input's own stem nor already
    given, so no two inputs share an output and a name depends only on the input list.

    >>> unique_names(["face", "face", "face_1", "b"])
    ['face', 'face_2', 'face_1', 'b']
    """
    taken = set(stems)
    given: set[str] = set()
    names = []
    for stem in stems:
        name = stem
        if name in given:
            k = 1
            while f"{stem}_{k}" in taken or f"{stem}_{k}" in given:
                k += 1
            name = f"{stem}_{k}"
        given.add(name)
        names.append(name)
    return names


def collect_jobs(inputs: Iterable[str], *, prepend: Sequence[tuple[Any, str]] = ()) -> tuple[list[Job], list[str]]:
    """Jobs for ``prepend`` (``(source, stem)`` pairs, e.g. a demo image) then the files of ``inputs``
    (:func:`expand_inputs`), named with :func:`unique_names`; also the inputs that matched nothing."""
    files, missing = expand_inputs(inputs)
    pairs = [*prepend, *((f, f.stem) for f in files)]
    names = unique_names([stem for _, stem in pairs])
    return [Job(src, name) for (src, _), name in zip(pairs, names, strict=True)], missing
