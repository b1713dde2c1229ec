"""Train a face restorer (seed 002 blind restoration, seed 004 reference-guided SR, or the L1 U-Net baseline).

    python -m pipelines.train_restorer --variant ours --data ../shared/faces-128 --minutes 20 --clock cpu \\
        --out ~/.cache/recon3d/restore-ours --export assets/recon3d_restorer_64_v1.safetensors

Variants (rows of ``bench/restore.py``): ``ours`` (MMRB codec + StyleGAN2 prior), ``no-mmrb`` (plain
residual blocks), ``no-prior`` (the codec's decoder output), ``unet-l1`` (plain U-Net, L1 only) and
``refsr`` (reference-guided 4x SR; ``--reference-pool`` from ``pipelines.make_reference_pool``) and
``refsr-fast`` / ``refsr-fast-res`` (the same task on a quarter-size trunk, MMRB / plain residual blocks).
The recipe is :mod:`recon3d.train.recipes.restore`; pairs are degraded on the fly from the aligned
faces' training split (the 5 % hash split stays out for the benchmark). ``OUT/last.pt`` is written every
few minutes; rerunning resumes and ``--minutes`` is the total across runs. ``--init`` fine-tunes an
exported restorer of the same variant; ``--prior`` picks the StyleGAN2 generator the prior starts from
(default: the shipped one). ``--export`` writes fp16 safetensors with the configuration and training summary.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._cli import setup_logging, setup_torch, train_verb, training_meta

log = logging.getLogger("pipelines.train_restorer")


def main(argv: list[str] | None = None) -> int:
    from recon3d.train.recipes.restore import VARIANTS

    ap = argparse.ArgumentParser(prog="python -m pipelines.train_restorer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="ours")
    ap.add_argument("--res", type=int, choices=(32, 64, 128, 256), default=64)
    ap.add_argument("--data", required=True, help="folder of aligned face photos (e.g. ../shared/faces-128)")
    ap.add_argument("--out", required=True, help="checkpoint / history folder")
    ap.add_argument("--minutes", type=float, default=20.0, help="training-time budget (total, across resumed runs)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="what --minutes counts: elapsed time or this process's CPU time (equal compute on a shared machine)")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps instead")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    for name, default in (("g", 0.5), ("l", 3.0), ("l1", 8.0), ("fm", 0.02), ("fp", 10.0)):
        ap.add_argument(f"--lambda-{name}", type=float, default=default,
                        help=f"loss weight lambda_{name} (seed 002's: {default}); 0 turns the term off")
    ap.add_argument("--grad-clip", type=float, default=0.0, help="clip the restorer's gradient norm to this (0: off)")
    ap.add_argument("--init", default=None, help="fine-tune these exported restorer weights")
    ap.add_argument("--prior", default=None, help="StyleGAN2 generator for the prior (default: the shipped one)")
    ap.add_argument("--reference-pool", default=None, help="re-posed references (.npz) for the refsr variants")
    ap.add_argument("--val-percent", type=float, default=5.0)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--limit", type=int, default=None, help="use at most this many photos")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="write the trained restorer here (fp16 safetensors)")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)


    from recon3d.errors import Recon3DError

    if (rc := setup_torch(args.threads, args.device)) is not None:
        return rc
    from recon3d.data.faces import load_faces
    from recon3d.nn.registry import save_network
    from recon3d.nn.restoration import REF_SR, RESTORER
    from recon3d.train.recipes.restore import RestoreTrainConfig, train_restorer

    try:
        kw = dict(val_percent=args.val_percent, cache_dir=args.cache_dir, progress=not args.quiet)
        faces = load_faces(args.data, args.res, split="train", limit=args.limit, **kw)
        val = load_faces(args.data, args.res, split="val", **kw).images[:32]
        pool = None
        if args.reference_pool:
            from recon3d.data.references import load_reposed_pool

            pool = load_reposed_pool(args.reference_pool)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = RestoreTrainConfig(variant=args.variant, res=args.res, batch=args.batch, lr=args.lr,
                             max_minutes=None if args.steps else args.minutes, max_steps=args.steps, clock=args.clock,
                             eval_every=args.eval_every, seed=args.seed, lambda_g=args.lambda_g,
                             lambda_l=args.lambda_l, lambda_l1=args.lambda_l1, lambda_fm=args.lambda_fm,
                             lambda_fp=args.lambda_fp, grad_clip=args.grad_clip)
    res = train_verb(args, f"train {args.variant}", ("l1", "fp", "d_loss"),
                     lambda log_fn, progress: train_restorer(faces, args.out, cfg, init=args.init, prior=args.prior,
                                                             val_faces=val, reference_pool=pool, device=args.device,
                                                             log_fn=log_fn, progress=progress))
    if res is None:
        return 2
    if args.export:
        meta = training_meta("train_restorer", argv, res, variant=args.variant, res=args.res, clock=args.clock,
                             n_train_faces=len(faces), training_data=args.data, device=args.device)
        out = Path(args.export)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_network(res.net["G"], out, REF_SR if res.net["G"].uses_reference else RESTORER, meta=meta)
        log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
