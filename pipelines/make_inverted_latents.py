"""Invert real faces into the StyleGAN2 prior once, for training the latent pose editor (seed 000's W*).

    python -m pipelines.make_inverted_latents ../shared/faces-128 --out ~/.cache/recon3d/latents --n 512

The first ``--n`` photos of the folder's ``--split`` (``load_faces``'s hash split; keep ``train``: the benchmarks
use the held-out photos) are inverted in batches of ``--batch`` (W+, ``--steps`` Adam steps each,
:func:`recon3d.nn.inversion.invert`) and stored with their photo and identity distance
(:mod:`recon3d.data.latents`). Rerun the same command to continue a killed run; ``--shard K/N`` lets N processes
share the folder. ``--weights`` inverts into another StyleGAN2 than the shipped one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cli import parse_shard, setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.make_inverted_latents", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="a folder of aligned faces (or photos with one face each)")
    ap.add_argument("--out", required=True, help="the latent folder")
    ap.add_argument("--n", type=int, default=512, help="faces to invert (default 512)")
    ap.add_argument("--split", choices=("train", "val", "all"), default="train", help="which split (default train)")
    ap.add_argument("--batch", type=int, default=32, help="faces per inversion batch and chunk (default 32)")
    ap.add_argument("--steps", type=int, default=150, help="inversion steps (default 150)")
    ap.add_argument("--weights", default=None, help="a StyleGAN2 generator (default: the shipped one)")
    ap.add_argument("--shard", default="0/1", help="K/N: this process does every N-th batch from the K-th")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    shard = parse_shard(ap, args.shard)
    bad = None
    if not Path(args.src).expanduser().is_dir():
        bad = f"{args.src}: not a folder"
    elif args.n < 1 or args.batch < 1 or args.steps < 1:
        bad = "--n, --batch and --steps must be >= 1"
    elif Path(args.out).expanduser().is_file():
        bad = f"--out {args.out}: is a file; give a folder"
    if bad:
        ap.print_usage(sys.stderr)
        print(f"error: {bad}", file=sys.stderr)
        return 2

    import torch

    from recon3d.data.latents import build_inverted_latents
    from recon3d.errors import Recon3DError
    from recon3d.nn.generation import load_generator

    torch.set_num_threads(max(1, args.threads))
    try:
        G, _ = load_generator("stylegan2", args.weights)
        n = build_inverted_latents(args.src, args.out, G=G, n=args.n, batch=args.batch, steps=args.steps,
                                   split=args.split, shard=shard, progress=not args.quiet)
    except Recon3DError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{n} faces inverted into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
