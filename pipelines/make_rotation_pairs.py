"""Build the training samples of the learned rotation refiner (issue 16 item 1).

    python -m pipelines.make_rotation_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/rotation-pairs --n 2000 --shard 0/2 &
    python -m pipelines.make_rotation_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/rotation-pairs --n 2000 --shard 1/2

The photos of the folders (their ``--split`` by the hash of ``<folder>/<stem>``, as ``load_faces`` splits;
the folders taken in turns, so a partial build mixes them) are reconstructed once each and rotated three
ways (:mod:`recon3d.data.rotation_pairs`): to the mirrored pose (truth: the mirrored photo), to a random pose
20-60 degrees away (no truth) and back again from there (truth: the photo itself). The samples, in the
refiner's 128² frame, go to ``--out`` in compressed chunks (read with ``load_rotation_pairs``). Rerun the same
command to continue a killed run or with a larger ``--n`` to extend it; ``--shard K/N`` lets N processes share
one folder. Photos whose reconstruction fails are skipped and counted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._cli import parse_shard, setup_logging


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.make_rotation_pairs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="+", help="folders of face photos (aligned crops or photos with one face)")
    ap.add_argument("--out", required=True, help="the sample folder")
    ap.add_argument("--n", type=int, default=None, help="the first N photos (default: all)")
    ap.add_argument("--split", choices=("train", "val", "all"), default="train", help="which split (default train)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="percent of photos held out (default 5)")
    ap.add_argument("--chunk", type=int, default=10, help="photos per chunk file (default 10)")
    ap.add_argument("--shard", default="0/1", help="K/N: this process does every N-th photo from the K-th")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random target poses (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    ap.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    shard = parse_shard(ap, args.shard)
    bad = next((f"{s}: not a folder" for s in args.src if not Path(s).expanduser().is_dir()), None)
    if bad is None and args.n is not None and args.n < 1:
        bad = "--n must be >= 1"
    elif bad is None and args.chunk < 1:
        bad = "--chunk must be >= 1"
    elif bad is None and not 0 <= args.val_percent <= 100:
        bad = "--val-percent must be within [0, 100]"
    elif bad is None and Path(args.out).expanduser().is_file():
        bad = f"--out {args.out}: is a file; give a folder"
    if bad:
        ap.print_usage(sys.stderr)
        print(f"error: {bad}", file=sys.stderr)
        return 2

    import torch

    from recon3d.data.faces import list_photos
    from recon3d.data.rotation_pairs import build_rotation_pairs, interleave, rotation_pairs_size
    from recon3d.data.splits import is_held_out, photo_key
    from recon3d.errors import Recon3DError

    torch.set_num_threads(max(1, args.threads))
    groups = []
    for s in args.src:
        files = list_photos(Path(s).expanduser())
        if args.split != "all":
            files = [p for p in files if is_held_out(photo_key(p, "/"), args.val_percent) == (args.split == "val")]
        groups.append(files)
    photos = interleave(groups)
    if not photos:
        print(f"error: no photos in the {args.split} split of {', '.join(args.src)}", file=sys.stderr)
        return 1
    try:
        made = build_rotation_pairs(photos, args.out, n=args.n, chunk=args.chunk, shard=shard, seed=args.seed,
                                    progress=not args.quiet)
        n_ok, n_skipped = rotation_pairs_size(args.out)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not n_ok:
        print(f"error: {args.out}: no sample yet ({n_skipped} skipped)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"done: {made} photos processed now; the folder holds {n_ok} samples, {n_skipped} skipped -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
