"""Build the re-posed reference pool of reference-guided face SR (seed 004).

    python -m pipelines.make_reference_pool ../shared/faces-128 --out ~/.cache/recon3d/refpool/pool.npz \\
        --n 400 --res 64 --seed 0

The first ``--n`` faces of ``--split`` (default ``train``, the order of
:func:`recon3d.data.faces.load_faces` at 128 px) are each reconstructed, rotated to a random yaw in
``--yaw-range`` (a change of at least 10 degrees, seeded by ``(--seed, index)``), re-aligned to the
face template, colour-jittered and stored as uint8 at ``--res`` in one ``.npz``
(:mod:`recon3d.data.references`; read it with ``load_reposed_pool``). Progress is kept in
``OUT.parts/``: rerun the same command to continue a killed run (or, with a larger ``--n``, to extend
the pool). Faces whose reconstruction fails are skipped and counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cli import setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.make_reference_pool", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="folder of aligned face photos (e.g. ../shared/faces-128)")
    ap.add_argument("--out", required=True, help="the pool .npz to write")
    ap.add_argument("--n", type=int, default=400, help="the first N faces of the split (default 400)")
    ap.add_argument("--res", type=int, default=64, help="reference side in pixels (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--yaw-range", type=float, nargs=2, default=(-35.0, 35.0), metavar=("LO", "HI"),
                    help="target head yaw range in degrees (default -35 35)")
    ap.add_argument("--split", choices=("train", "val", "all"), default="train", help="which split (default train)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="percent of photos held out (default 5)")
    ap.add_argument("--chunk", type=int, default=25, help="faces per progress file in OUT.parts/ (default 25)")
    ap.add_argument("--no-jitter", dest="jitter", action="store_false", help="no colour jitter")
    ap.add_argument("--cache-dir", default=None, help="load_faces cache folder (default ~/.cache/recon3d/faces)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    lo, hi = args.yaw_range
    bad = None
    if not Path(args.src).expanduser().is_dir():
        bad = f"{args.src}: not a folder"
    elif args.n < 1:
        bad = "--n must be >= 1"
    elif not 0 <= args.seed < 2**63:
        bad = "--seed must be within [0, 2**63)"
    elif args.res < 8:
        bad = "--res must be >= 8"
    elif args.chunk < 1:
        bad = "--chunk must be >= 1"
    elif not (-90 <= lo < hi <= 90 and hi - lo > 20):
        bad = "--yaw-range LO HI must satisfy -90 <= LO < HI <= 90 and HI - LO > 20"
    elif not 0 <= args.val_percent <= 100:
        bad = "--val-percent must be within [0, 100]"
    elif Path(args.out).expanduser().is_dir():
        bad = f"--out {args.out}: is a folder; give the .npz file to write"
    if bad:
        ap.print_usage(sys.stderr)
        print(f"error: {bad}", file=sys.stderr)
        return 2

    from recon3d.data.references import build_reposed_pool, parts_dir
    from recon3d.errors import Recon3DError

    try:
        pool = build_reposed_pool(args.src, args.out, n=args.n, res=args.res, seed=args.seed, yaw_range=(lo, hi),
                                  split=args.split, val_percent=args.val_percent, chunk=args.chunk,
                                  jitter=args.jitter, cache_dir=args.cache_dir, progress=not args.quiet)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"done: {len(pool)} references, {len(pool.skipped)} skipped -> {args.out} "
              f"(progress in {parts_dir(args.out)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
