"""Small helpers shared by the ``python -m pipelines.<verb>`` entry points (argparse, logging, inputs)."""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
DEMOS = ("astronaut", "grace_hopper")


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="torch device (default: cpu; e.g. cuda)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging; -v also shows tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def demo_image(name: str):
    """A public-domain photo bundled by a dependency: scikit-image's astronaut (Eileen Collins,
    NASA) or matplotlib's grace_hopper.jpg. Returns ``(array, stem)``."""
    if name == "astronaut":
        from skimage.data import astronaut

        return astronaut(), "astronaut"
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), "grace_hopper"
    raise ValueError(f"unknown demo {name!r}; choose from {DEMOS}")


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images, sorted) and globs to a list of files; also returns the inputs that
    matched nothing (reported as failures, not silently dropped)."""
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


def run_batch(jobs, process, *, desc: str, out_root, failures: list[tuple[str, str]], quiet: bool = False,
              verbose: int = 0, skip=None) -> int:
    """Run ``process(src, stem) -> message`` over ``jobs`` (``(src, stem)`` pairs) with a progress bar.

    One bad input never stops the batch: a ``Recon3DError`` is logged in one line (traceback with
    ``-v``), any other exception with its traceback, and both are added to ``failures``. ``skip(stem)``
    marks inputs already done (``--resume``). Prints a summary and the failures; returns the exit code
    (0 all succeeded, 1 some failed).
    """
    from tqdm import tqdm

    from recon3d.errors import Recon3DError

    log = logging.getLogger(f"pipelines.{desc}")
    n_ok = n_skipped = 0
    many = len(jobs) > 1
    bar = tqdm(jobs, desc=desc, unit="img", disable=quiet or not many)
    for src, stem in bar:
        if skip is not None and skip(stem):
            n_skipped += 1
            continue
        try:
            msg = process(src, stem)
            n_ok += 1
            if msg and not quiet:
                bar.write(msg) if many else print(msg)
        except Recon3DError as e:
            failures.append((stem, str(e)))
            log.error("%s: %s", stem, e, exc_info=verbose > 0)
        except Exception as e:  # one bad image never stops a batch
            failures.append((stem, f"unexpected {e.__class__.__name__}: {e}"))
            log.error("%s: unexpected error %s: %s", stem, e.__class__.__name__, e, exc_info=True)
    if not quiet or failures:
        extra = f", {n_skipped} skipped (already done)" if skip is not None else ""
        print(f"done: {n_ok} succeeded, {len(failures)} failed{extra} -> {out_root}")
    for stem, why in failures:
        print(f"  FAILED {stem}: {why}", file=sys.stderr)
    return 1 if failures else 0


def collect_jobs(demo: str | None, inputs: list[str]) -> tuple[list[tuple[object, str]], list[str]]:
    """``(source, stem)`` jobs for ``--demo`` plus files/folders/globs, with stems made unique within the
    batch (``x``, ``x_1``, ...) so outputs never overwrite each other; also the inputs that matched
    nothing."""
    jobs: list[tuple[object, str]] = []
    if demo:
        jobs.append(demo_image(demo))
    files, missing = expand_inputs(inputs)
    jobs.extend((f, f.stem) for f in files)
    seen: dict[str, int] = {}
    named = []
    for src, stem in jobs:
        k = seen.get(stem, 0)
        seen[stem] = k + 1
        named.append((src, stem if k == 0 else f"{stem}_{k}"))
    return named, missing


def describe_input(src, stem: str) -> str:
    """What to record as a job's input in JSON: the path, or ``demo:<name>`` for an in-memory image.

    >>> describe_input(Path("a/b.png"), "b"), describe_input(object(), "astronaut")
    ('a/b.png', 'demo:astronaut')
    """
    return str(src) if isinstance(src, (str, os.PathLike)) else f"demo:{stem}"


def load_model_arg(path: str | None, device: str | None):
    """The ``--model`` file as a MorphableModel (``None``: use the default). Raises ``Recon3DError``."""
    if not path:
        return None
    from recon3d.morphable import load_model

    return load_model(path, device=device)
