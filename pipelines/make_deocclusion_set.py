"""Build the 3DMM render cache of the learned de-occlusion fill (issue 15 item 1).

    python -m pipelines.make_deocclusion_set ../shared/faces-128 --out ~/.cache/recon3d/deocc-renders \\
        --n 4000 --shard 0/2 &
    python -m pipelines.make_deocclusion_set ../shared/faces-128 --out ~/.cache/recon3d/deocc-renders \\
        --n 4000 --shard 1/2

The first ``--n`` faces of ``--split`` (default ``train``; the order of
:func:`recon3d.data.faces.load_faces` at 128 px) each get one occluder (seeded by ``--seed`` and the
face's index: bank shapes or sunglasses), are reconstructed once with it (fast preset), and the
occluded face, its hole, the fitted 3DMM's render ``I_m`` and coverage ``M_m`` are stored as uint8
chunks under ``--out`` (:mod:`recon3d.data.deocclusion`; read with ``load_render_cache``). Rerun the same command to continue a killed run, or with a
larger ``--n`` to extend it; ``--shard K/N`` lets N processes share one folder. Faces whose
reconstruction fails are skipped and counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cli import parse_shard, setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.make_deocclusion_set", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="folder of aligned face photos (e.g. ../shared/faces-128)")
    ap.add_argument("--out", required=True, help="the cache folder")
    ap.add_argument("--n", type=int, default=None, help="the first N faces of the split (default: all)")
    ap.add_argument("--split", choices=("train", "val", "all"), default="train", help="which split (default train)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="percent of photos held out (default 5)")
    ap.add_argument("--chunk", type=int, default=25, help="faces per chunk file (default 25)")
    ap.add_argument("--shard", default="0/1", help="K/N: this process does every N-th face from the K-th")
    ap.add_argument("--seed", type=int, default=0, help="occluder seed (default 0)")
    ap.add_argument("--p-sunglasses", type=float, default=0.35, help="share of sunglasses occluders (default 0.35)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--cache-dir", default=None, help="load_faces cache folder (default ~/.cache/recon3d/faces)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    shard = parse_shard(ap, args.shard)
    bad = None
    if not Path(args.src).expanduser().is_dir():
        bad = f"{args.src}: not a folder"
    elif args.n is not None and args.n < 1:
        bad = "--n must be >= 1"
    elif args.chunk < 1:
        bad = "--chunk must be >= 1"
    elif not 0 <= args.val_percent <= 100:
        bad = "--val-percent must be within [0, 100]"
    elif Path(args.out).expanduser().is_file():
        bad = f"--out {args.out}: is a file; give a folder"
    if bad:
        ap.print_usage(sys.stderr)
        print(f"error: {bad}", file=sys.stderr)
        return 2

    import torch

    from recon3d.data.deocclusion import build_render_cache, render_cache_size
    from recon3d.errors import Recon3DError

    torch.set_num_threads(max(1, args.threads))
    try:
        made = build_render_cache(args.src, args.out, n=args.n, split=args.split, val_percent=args.val_percent,
                                  chunk=args.chunk, shard=shard, cache_dir=args.cache_dir, seed=args.seed,
                                  p_sunglasses=args.p_sunglasses, progress=not args.quiet)
        n_ok, n_skipped = render_cache_size(args.out)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not n_ok:
        print(f"error: {args.out}: the render cache holds no face yet ({n_skipped} skipped)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"done: {made} faces computed now; the cache holds {n_ok} renders, {n_skipped} "
              f"skipped -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
