"""Synthesize a large-pose training set (300W-LP recipe) from photos with 68-point annotations.

    python -m pipelines.synthesize_poses ../shared/300w/afw ../shared/300w/helen_trainset \\
        ../shared/300w/helen_testset --out ~/.cache/recon3d/synth --views 24

Every photo needs a 300-W ``.pts`` file next to it (1-based coordinates). For each photo the
default morphable model (or ``--model``) is fitted to the annotation and ``--views`` re-posed
crops are rendered (:func:`recon3d.data.poses.synthesize_views`; yaw out to ±90°, pitch and
roll jitter, crop jitter), plus the photo at its own pose. One ``.npz`` per photo is written
atomically under ``OUT/samples/`` (:mod:`recon3d.data.landmark_set`); a rerun skips photos already
done (resumable), ``--shard K/N`` splits the work between processes. The split is deterministic: a
photo whose name hashes into ``--val-percent`` goes to ``OUT/val.txt``, the rest to ``OUT/train.txt``
(:mod:`recon3d.data.splits`). ``--contact-sheet`` writes a grid of samples with their landmarks.
The same ``--seed`` gives the same set.

Photos without annotations (``../shared/faces-128``) are first labelled by
``python -m pipelines.pseudo_label``; ``--labels`` then reads those labels:

    python -m pipelines.synthesize_poses ../shared/faces-128 --labels ~/.cache/recon3d/pl128 \
        --out ~/.cache/recon3d/synth128 --views 5

Never use AFLW2000-3D here: it is the test set.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from ._cli import add_common, load_model_arg, parse_shard, setup_logging

log = logging.getLogger("pipelines.synthesize_poses")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.synthesize_poses", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", help="folders of photos with 300-W .pts files")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--views", type=int, default=24, help="re-posed views per photo (default 24), plus the photo's own pose")
    ap.add_argument("--size", type=int, default=128, help="crop side in pixels (default 128)")
    ap.add_argument("--max-yaw", type=float, default=90.0, help="largest |yaw| in degrees (default 90)")
    ap.add_argument("--val-percent", type=float, default=10.0, help="percent of photos held out (default 10)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (after sorting)")
    ap.add_argument("--shard", default="0/1", help="K/N: process every N-th photo starting at K (default 0/1)")
    ap.add_argument("--model", default=None, help="morphable model .npz (default: the shipped model)")
    ap.add_argument("--labels", default=None,
                    help="pseudo-label folder (python -m pipelines.pseudo_label): take the landmarks of each photo "
                         "from LABELS/labels/<stem>.npy instead of a .pts file next to it, and pad the photo as the "
                         "labeller did; photos without a label are left out")
    ap.add_argument("--contact-sheet", default=None, help="write a PNG grid of samples here (after synthesis)")
    add_common(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    k, n = parse_shard(ap, args.shard)
    if args.views < 0 or args.size < 32:
        ap.error("--views must be >= 0 and --size >= 32")
    if any("aflw2000" in f.lower() for f in args.folders):
        ap.error("AFLW2000-3D is the test set: do not train on it")

    import torch
    from tqdm import tqdm

    from recon3d.data.landmark_set import annotated_images, contact_sheet, synthesize_set

    out = Path(args.out).expanduser()
    samples = out / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    if not args.folders:
        if args.contact_sheet:
            contact_sheet(samples, Path(args.contact_sheet), seed=args.seed)
            return 0
        ap.error("give at least one folder of annotated photos (or only --contact-sheet)")
    pad = 0
    if args.labels:
        from recon3d.data.landmark_set import pseudo_labelled_images
        from recon3d.data.pseudo_labels import read_pad

        lab = Path(args.labels).expanduser()
        try:
            pad = read_pad(lab)
        except (OSError, ValueError) as e:
            ap.error(f"--labels {args.labels}: {e}")
        items, missing = pseudo_labelled_images(args.folders, lab)
    else:
        items, missing = annotated_images(args.folders)
    for m in missing:
        log.error("input %s", m)
    if args.limit:
        items = items[: args.limit]
    if not items:
        print("no annotated photos found", file=sys.stderr)
        return 2

    model = load_model_arg(args.model, args.device)
    if model is None:
        from recon3d.morphable.default import load_default_model

        model = load_default_model()
    torch.set_num_threads(1)
    bar = functools.partial(tqdm, desc="synthesize", unit="photo", disable=args.quiet)
    failures = synthesize_set(items, out, model, views=args.views, size=args.size, max_yaw=args.max_yaw,
                              val_percent=args.val_percent, shard=(k, n), seed=args.seed, progress=bar,
                              pad=pad)
    if args.contact_sheet:
        contact_sheet(samples, Path(args.contact_sheet), seed=args.seed)
    done = len(list(samples.glob("*.npz")))
    print(f"{done} photos synthesized in {out} ({len(failures)} failed in this run)")
    for p, e in failures:
        print(f"  FAILED {p}: {e}", file=sys.stderr)
    return 1 if failures or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
