"""Small helpers shared by the ``python -m pipelines.<verb>`` entry points (argparse, logging, inputs)."""

from __future__ import annotations

import argparse
import glob
import logging
import os
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
