"""Pseudo-label unlabelled face crops with 68 landmarks, keeping only the confident ones.

    python -m pipelines.pseudo_label ../shared/faces-128 --out ~/.cache/recon3d/pl128
    python -m pipelines.synthesize_poses ../shared/faces-128 --labels ~/.cache/recon3d/pl128 \\
        --out ~/.cache/recon3d/synth128 --views 5

Each photo (a face crop such as faces-128's aligned 128² faces) is padded by reflection, run
through recon3d's landmark regressor and its mirror image, and fitted with the morphable model
(:mod:`recon3d.data.pseudo_labels`). It is accepted when it is near frontal (``--max-yaw``), the
two runs agree (``--max-flip-nme``) and the fit explains the landmarks (``--max-fit-nme``).
Accepted labels go to ``OUT/labels/<stem>.npy``; every photo's scores to ``OUT/pseudo_labels.csv``.
A rerun skips labelled photos (resumable); ``--shard K/N`` splits the work between processes.

Never use AFLW2000-3D here: it is the test set.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from ._cli import add_common, load_model_arg, parse_shard, setup_logging

log = logging.getLogger("pipelines.pseudo_label")


def main(argv: list[str] | None = None) -> int:
    from recon3d.data.pseudo_labels import PseudoLabelConfig

    d = PseudoLabelConfig()
    ap = argparse.ArgumentParser(prog="python -m pipelines.pseudo_label", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="folders of face crops (.jpg/.jpeg/.png)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--pad", type=int, default=d.pad, help=f"reflection padding per side, pixels (default {d.pad})")
    ap.add_argument("--max-yaw", type=float, default=d.max_abs_yaw, help=f"largest |yaw| kept, degrees (default {d.max_abs_yaw:g})")
    ap.add_argument("--max-flip-nme", type=float, default=d.max_flip_nme,
                    help=f"largest NME between the photo's and its mirror's landmarks (default {d.max_flip_nme:g})")
    ap.add_argument("--max-fit-nme", type=float, default=d.max_fit_nme,
                    help=f"largest NME between the landmarks and the fitted model's (default {d.max_fit_nme:g})")
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos (after sorting)")
    ap.add_argument("--shard", default="0/1", help="K/N: every N-th photo starting at K (default 0/1)")
    ap.add_argument("--weights", default=None, help="landmark regressor weights (default: the shipped ones)")
    ap.add_argument("--model", default=None, help="morphable model .npz (default: the shipped model)")
    add_common(ap)
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    k, n = parse_shard(ap, args.shard)
    if args.pad < 0:
        ap.error("--pad must be >= 0")
    if any("aflw2000" in f.lower() for f in args.folders):
        ap.error("AFLW2000-3D is the test set: do not train on it")

    import torch
    from tqdm import tqdm

    from recon3d.data.landmark_set import image_files
    from recon3d.data.pseudo_labels import pseudo_label_folder, read_pseudo_labels
    from recon3d.errors import AssetError
    from recon3d.nn.landmarks import load_regressor

    photos, missing = [], []
    for f in args.folders:
        got = image_files(Path(f).expanduser())
        if not got:
            missing.append(f"{f} ({'no photos' if Path(f).expanduser().is_dir() else 'not a folder'})")
        photos += got
    for m in missing:
        log.error("input %s", m)
    if args.limit:
        photos = sorted(photos)[: args.limit]
    if not photos:
        print("no photos found", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    try:
        reg = load_regressor(args.weights, device=args.device, passes=2, flip_test=False)
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = load_model_arg(args.model, args.device)
    if model is None:
        from recon3d.morphable.default import load_default_model

        model = load_default_model()
    cfg = PseudoLabelConfig(pad=args.pad, max_abs_yaw=args.max_yaw, max_flip_nme=args.max_flip_nme,
                            max_fit_nme=args.max_fit_nme)
    bar = functools.partial(tqdm, desc="pseudo-label", unit="photo", disable=args.quiet)
    c = pseudo_label_folder(photos, Path(args.out).expanduser(), reg, model, cfg, shard=(k, n), progress=bar)
    rows = read_pseudo_labels(Path(args.out).expanduser())
    acc = sum(int(r["accepted"]) for r in rows.values())
    print(f"{c['done']} photos labelled in this run ({c['accepted']} accepted, {c['failed']} failed, "
          f"{c['skipped']} done before); {acc} of {len(rows)} accepted in {args.out}")
    return 1 if c["failed"] or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
