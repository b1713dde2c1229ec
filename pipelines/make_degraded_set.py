"""Build a fixed-seed evaluation set of degraded faces (blind face restoration, seeds 002 and 004).

    python -m pipelines.make_degraded_set ../shared/faces-128 --out ~/.cache/recon3d/bfr-val --n 500 \\
        --seed 0 --preset 002

The faces of ``--split`` (default the held-out ``val`` split) of the folder are read with
:func:`recon3d.data.faces.load_faces` at ``--res``; each is degraded with
``x = [(y ⊗ k)↓s + n_δ]_JPEG_q`` (:mod:`recon3d.data.degrade`; ``--preset 002``: seed 002 eq. 17,
``004``: seed 004 eq. 10 with GFP-GAN's ranges) and resized back to ``--res``. The papers' blur
ranges are in pixels of 512² faces, severe at 128²: ``--scale-blur`` scales them to ``--res``. Written:
``OUT/hq/NAME.png``, ``OUT/lq/NAME.png``, ``OUT/degradations.jsonl`` (one record per face) and
``OUT/degrade_config.json``. A rerun skips the pairs already written; the same ``--seed`` gives
byte-identical images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cli import setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.make_degraded_set", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="folder of face photos (aligned ones are only resized)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--n", type=int, default=None, help="the first N faces of the split (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--preset", choices=("002", "004"), default="002", help="degradation ranges (default 002)")
    ap.add_argument("--res", type=int, default=128, help="face side in pixels (default 128)")
    ap.add_argument("--scale-blur", action="store_true",
                    help="scale the blur ranges (sigma, motion length, kernel size: pixels of the papers' 512² "
                         "faces) to --res (DegradePreset.for_res); default: the papers' ranges as stated")
    ap.add_argument("--split", choices=("val", "train", "all"), default="val", help="which split (default val)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="percent of photos held out (default 5)")
    ap.add_argument("--cache-dir", default=None, help="load_faces cache folder (default ~/.cache/recon3d/faces)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    bad = None
    if not Path(args.src).expanduser().is_dir():
        bad = f"{args.src}: not a folder"
    elif args.n is not None and args.n < 1:
        bad = "--n must be >= 1"
    elif not 0 <= args.seed < 2**63:
        bad = "--seed must be within [0, 2**63)"
    elif args.res < 8:
        bad = "--res must be >= 8"
    elif not 0 <= args.val_percent <= 100:
        bad = "--val-percent must be within [0, 100]"
    if bad:
        ap.print_usage(sys.stderr)
        print(f"error: {bad}", file=sys.stderr)
        return 2

    from recon3d.data.degrade import build_eval_set, get_preset
    from recon3d.errors import Recon3DError

    try:
        preset = get_preset(args.preset).for_res(args.res) if args.scale_blur else args.preset
        report = build_eval_set(args.src, args.out, args.n, args.seed, preset, args.res, split=args.split,
                                val_percent=args.val_percent, cache_dir=args.cache_dir, progress=not args.quiet)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"done: {report.n_written} pairs written, {report.n_skipped} already there -> {report.out_dir} "
              f"(records: {report.records})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
