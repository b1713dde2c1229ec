"""Train the learned UV texture generator (:mod:`recon3d.nn.uv_generator`, thesis 4.3.2).

    python -m pipelines.make_uv_pairs ../shared/faces-128 ../shared/300w/afw ../shared/300w/helen_trainset \\
        --out ~/.cache/recon3d/uv-pairs/train --n 3000
    python -m pipelines.make_uv_pairs ../shared/faces-128 --split val --out ~/.cache/recon3d/uv-pairs/val --n 60
    python -m pipelines.train_uv_generator --pairs ~/.cache/recon3d/uv-pairs/train \\
        --val-pairs ~/.cache/recon3d/uv-pairs/val --minutes 60 --out ~/.cache/recon3d/uvgen \\
        --export assets/recon3d_uv_generator_128_v1.safetensors

The generator learns to complete the partial UV map unwrapped from a photo from the samples of
``pipelines.make_uv_pairs`` (recipe :mod:`recon3d.train.recipes.uv_generator`: the real texels a turn of the
head hid, the thesis's reconstruction, partial and face adversarial, symmetry, identity and TV terms).
``OUT/last.pt`` is written every few minutes; rerunning resumes and ``--minutes`` is the total across runs.
``--init`` fine-tunes exported weights of the same configuration. ``--export`` writes fp16 safetensors with the
configuration and training summary.
"""

from __future__ import annotations

import argparse
import sys

from ._cli import add_training_args, export_trained, setup_logging, setup_torch, train_verb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train_uv_generator", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", required=True, help="training samples (pipelines.make_uv_pairs)")
    ap.add_argument("--val-pairs", default=None, help="held-out samples: L1 on the hidden texels is logged")
    add_training_args(ap, "generator", (("hid", 10.0), ("rec", 1.0), ("adv", 0.01), ("sym", 0.1), ("id", 0.5), ("tv", 0.1)))
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)

    from recon3d.errors import Recon3DError

    if (rc := setup_torch(args.threads, args.device)) is not None:
        return rc
    from recon3d.data.uv_pairs import load_uv_pairs
    from recon3d.nn.uv_generator import UV_GENERATOR
    from recon3d.train.recipes.uv_generator import UVTrainConfig, train_uv_generator

    try:
        pairs = load_uv_pairs(args.pairs)
        val = load_uv_pairs(args.val_pairs) if args.val_pairs else None
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = UVTrainConfig(batch=args.batch, lr=args.lr, max_minutes=None if args.steps else args.minutes,
                        max_steps=args.steps, clock=args.clock, eval_every=args.eval_every, seed=args.seed,
                        **{f"lambda_{k}": getattr(args, f"lambda_{k}") for k in ("hid", "rec", "adv", "sym", "id", "tv")})
    res = train_verb(args, "train UV generator", ("hid", "rec", "id"),
                     lambda log_fn, progress: train_uv_generator(pairs, args.out, cfg, init=args.init, val=val,
                                                                 device=args.device, log_fn=log_fn,
                                                                 progress=progress))
    if res is None:
        return 2
    export_trained(args, argv, res, UV_GENERATOR, "train_uv_generator", n_train_samples=len(pairs),
                             training_data=args.pairs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
