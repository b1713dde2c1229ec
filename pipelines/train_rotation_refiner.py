"""Train the learned rotation refiner (:mod:`recon3d.nn.rotate_refine`, thesis ch. 3: PAS + CIN U-Net).

    python -m pipelines.make_rotation_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/rotation-pairs/train --n 2000
    python -m pipelines.make_rotation_pairs ../shared/faces-128 --split val --out ~/.cache/recon3d/rotation-pairs/val --n 40
    python -m pipelines.train_rotation_refiner --pairs ~/.cache/recon3d/rotation-pairs/train \\
        --val-pairs ~/.cache/recon3d/rotation-pairs/val --minutes 60 --out ~/.cache/recon3d/refine \\
        --export ~/.cache/recon3d/refine/refiner.safetensors

The refiner learns to correct recon3d's 3D-guided rotation from the mirror, free and cycle samples of
``pipelines.make_rotation_pairs`` (recipe :mod:`recon3d.train.recipes.rotate_refine`: pixel, PAS, identity,
pose, TV and adversarial terms). ``OUT/last.pt`` is written every few minutes; rerunning resumes and
``--minutes`` is the total across runs. ``--init`` fine-tunes exported weights of the same configuration;
``--no-pas`` trains the thesis's ablation without the pixel attention sampler. ``--export`` writes fp16
safetensors with the configuration and training summary.
"""

from __future__ import annotations

import argparse
import sys

from ._cli import add_training_args, export_trained, setup_logging, setup_torch, train_verb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train_rotation_refiner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help="training samples (pipelines.make_rotation_pairs)")
    ap.add_argument("--val-pairs", default=None, help="held-out samples: PSNR of warp and refiner is logged")
    add_training_args(ap, "refiner", (("pix", 10.0), ("pas", 2.0), ("id", 0.5), ("id-warp", 0.0), ("pose", 1.0), ("tv", 0.1), ("adv", 0.01)))
    ap.add_argument("--id-warp-margin", type=float, default=0.0,
                    help="the identity hinge asks the output to be this much closer (dlib distance) than the warp")
    ap.add_argument("--no-pas", dest="pas", action="store_false", help="no pixel attention sampler (the ablation)")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)

    from recon3d.errors import Recon3DError

    if (rc := setup_torch(args.threads, args.device)) is not None:
        return rc
    from recon3d.data.rotation_pairs import load_rotation_pairs
    from recon3d.nn.rotate_refine import ROTATION_REFINER
    from recon3d.train.recipes.rotate_refine import RefineTrainConfig, train_refiner

    try:
        pairs = load_rotation_pairs(args.pairs)
        val = load_rotation_pairs(args.val_pairs) if args.val_pairs else None
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = RefineTrainConfig(batch=args.batch, lr=args.lr, max_minutes=None if args.steps else args.minutes,
                            max_steps=args.steps, clock=args.clock, eval_every=args.eval_every, seed=args.seed,
                            lambda_pix=args.lambda_pix, lambda_pas=args.lambda_pas, lambda_id=args.lambda_id,
                            lambda_id_warp=args.lambda_id_warp, id_warp_margin=args.id_warp_margin,
                            lambda_pose=args.lambda_pose, lambda_tv=args.lambda_tv, lambda_adv=args.lambda_adv,
                            pas=args.pas)
    res = train_verb(args, "train rotation refiner", ("pix", "pix_warp", "id"),
                     lambda log_fn, progress: train_refiner(pairs, args.out, cfg, init=args.init, val=val,
                                                            device=args.device, log_fn=log_fn, progress=progress))
    if res is None:
        return 2
    export_trained(args, argv, res, ROTATION_REFINER, "train_rotation_refiner", n_train_samples=len(pairs),
                             training_data=args.pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
