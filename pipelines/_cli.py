"""Small helpers shared by the ``python -m pipelines.<verb>`` entry points: argparse, logging, the demo
images and the tqdm bar / summary around :func:`recon3d.batch.run_batch`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path  # noqa: F401  (used by the doctest of describe_input)

DEMOS = ("astronaut", "grace_hopper")


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="torch device (default: cpu; e.g. cuda)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--deterministic", action="store_true",
                   help="bit-reproducible results for a given --seed: one CPU thread and deterministic "
                        "torch algorithms (slower; see README 'Reproducibility')")
    p.add_argument("--max-pixels", type=int, default=50_000_000, metavar="N",
                   help="refuse images larger than N pixels (default 50 000 000), checked before decoding")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging; -v also shows tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def prepare(args, out_root) -> int | None:
    """The checks every batch verb does before any work, and the run-time settings: ``--device``
    exists here, ``--max-pixels`` is positive, ``out_root`` can be written; then the temporary
    folders of killed runs in ``out_root`` are removed, and ``--seed`` and ``--deterministic`` set.
    Prints a one-line error and returns 2 (usage error), else ``None``."""
    import torch

    from recon3d._checks import check_device
    from recon3d.errors import Recon3DError
    from recon3d.io.atomic import check_output_dir, clean_stale_temps

    if args.max_pixels <= 0:
        print("error: --max-pixels must be > 0", file=sys.stderr)
        return 2
    if not 0 <= args.seed < 2**63:
        print("error: --seed must be within [0, 2**63)", file=sys.stderr)
        return 2
    try:
        check_device(args.device)
    except Recon3DError as e:
        print(f"error: --device: {e}", file=sys.stderr)
        return 2
    try:
        check_output_dir(out_root)
    except Recon3DError as e:
        print(f"error: --out: {e}", file=sys.stderr)
        return 2
    clean_stale_temps(out_root)  # only those of processes that no longer run
    torch.manual_seed(args.seed)
    if args.deterministic:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True, warn_only=True)
    return None


def check_job_folder(folder) -> None:
    """Raise ``OutputError`` before any work when a file is where the job's output folder goes."""
    from recon3d.io.atomic import OutputError

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder; move it away")


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


def collect_jobs(demo: str | None, inputs: list[str], all_faces: bool = False):
    """:func:`recon3d.batch.collect_jobs` with ``--demo`` first: ``(jobs, missing)``."""
    from recon3d.batch import collect_jobs as _collect

    return _collect(inputs, prepend=[demo_image(demo)] if demo else [], all_faces=all_faces)


def run_jobs(jobs, process, *, desc: str, out_root, missing=(), quiet: bool = False, verbose: int = 0,
             done=None) -> int:
    """Run ``process(job)`` over ``jobs`` with :func:`recon3d.batch.run_batch` and a tqdm bar.

    A ``Recon3DError`` is logged in one line (traceback with ``-v``), any other exception with its
    traceback. ``done(job)`` marks jobs already finished (``--resume``). Prints a summary and the
    failures; returns the exit code (0 all succeeded, 1 some failed).
    """
    from tqdm import tqdm

    from recon3d.batch import run_batch

    log = logging.getLogger(f"pipelines.{desc}")
    many = len(jobs) > 1
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=quiet or not many)

    def progress(item, n_done: int, total: int) -> None:
        bar.update(1)
        if item.status == "ok" and item.message and not quiet:
            bar.write(item.message) if many else print(item.message)
        elif item.status == "failed":
            if item.expected:
                log.error("%s: %s%s", item.name, item.error, f"\n{item.traceback}" if verbose > 0 else "")
            else:
                log.error("%s: %s\n%s", item.name, item.error, item.traceback)

    with bar:
        report = run_batch(jobs, process, done=done, missing=missing, progress=progress)
    if not quiet or report.failures:
        extra = f", {report.n_skipped} skipped (already done)" if done is not None else ""
        print(f"done: {report.n_ok} succeeded, {len(report.failures)} failed{extra} -> {out_root}")
    for item in report.failures:
        print(f"  FAILED {item.name}: {item.error}", file=sys.stderr)
    return 1 if report.failures else 0


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
