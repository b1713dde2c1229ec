"""Train the learned de-occlusion fill N_G (:mod:`recon3d.nn.inpaint`, thesis 5.3.4).

    python -m pipelines.make_deocclusion_set ../shared/faces-128 --out ~/.cache/recon3d/deocc/train --n 5000
    python -m pipelines.make_deocclusion_set ../shared/faces-128 --out ~/.cache/recon3d/deocc/val --split val --n 64
    python -m pipelines.train_inpainter --data ../shared/faces-128 --renders ~/.cache/recon3d/deocc/train \\
        --val-renders ~/.cache/recon3d/deocc/val --minutes 60 --clock cpu --out ~/.cache/recon3d/inpaint \\
        --export assets/recon3d_inpainter_128_v1.safetensors

Each training face carries the occluder it was cached with (bank shapes or sunglasses); each step replaces
the hole with noise and trains the network to restore the face from it, the hole mask and the 3DMM
render fitted to the occluded face (recipe :mod:`recon3d.train.recipes.inpaint`: pixel, OHEM-SSIM, background, identity, TV and
adversarial terms with the thesis's weights). ``--renders`` must come from the same ``--data`` folder and
split (``pipelines.make_deocclusion_set``). ``OUT/last.pt`` is written every few minutes; rerunning resumes
and ``--minutes`` is the total across runs. ``--init`` fine-tunes exported weights of the same
configuration; ``--no-prior`` trains the ablation without the 3DMM render. ``--export`` writes fp16
safetensors with the configuration and training summary.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._cli import setup_logging, setup_torch, train_verb, training_meta

log = logging.getLogger("pipelines.train_inpainter")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train_inpainter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of aligned face photos (e.g. ../shared/faces-128)")
    ap.add_argument("--renders", required=True, help="render cache of --data's train split (make_deocclusion_set)")
    ap.add_argument("--val-renders", default=None, help="render cache of the val split: PSNR in the hole is logged")
    ap.add_argument("--out", required=True, help="checkpoint / history folder")
    ap.add_argument("--minutes", type=float, default=60.0, help="training-time budget (total, across resumed runs)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="what --minutes counts: elapsed time or this process's CPU time")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps instead")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    for name, default in (("pix", 10.0), ("ssim", 5.0), ("bg", 5.0), ("id", 0.2), ("tv", 0.1), ("adv", 0.01)):
        ap.add_argument(f"--lambda-{name}", type=float, default=default,
                        help=f"loss weight (the thesis's: {default}); 0 turns the term off")
    ap.add_argument("--ssim-target", choices=("clean", "poisson"), default="clean",
                    help="SSIM term's target: the un-occluded face (default) or the thesis's Poisson pseudo-ground truth")
    ap.add_argument("--no-prior", dest="prior", action="store_false", help="no 3DMM render input (the ablation)")
    ap.add_argument("--no-base", dest="base", action="store_false",
                    help="predict the hole from scratch instead of correcting the Poisson blend of the render")
    ap.add_argument("--init", default=None, help="fine-tune these exported inpainter weights")
    ap.add_argument("--val-percent", type=float, default=5.0)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="write the trained inpainter here (fp16 safetensors)")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)


    from recon3d.errors import Recon3DError

    if (rc := setup_torch(args.threads, args.device)) is not None:
        return rc
    from recon3d.data.deocclusion import load_render_cache
    from recon3d.data.faces import load_faces
    from recon3d.nn.inpaint import INPAINTER
    from recon3d.nn.registry import save_network
    from recon3d.train.recipes.inpaint import InpaintTrainConfig, train_inpainter

    try:
        cache = load_render_cache(args.renders)
        split = cache.meta.get("split", "train")
        kw = dict(val_percent=args.val_percent, cache_dir=args.cache_dir, progress=not args.quiet)
        faces = load_faces(args.data, 128, split=split, limit=int(cache.indices.max()) + 1, **kw)
        val = None
        if args.val_renders:
            vc = load_render_cache(args.val_renders)
            vf = load_faces(args.data, 128, split=vc.meta.get("split", "val"), limit=int(vc.indices.max()) + 1, **kw)
            val = (vf.images[vc.indices].numpy(), vc.occluded, vc.holes, vc.renders, vc.coverage)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = InpaintTrainConfig(batch=args.batch, lr=args.lr, max_minutes=None if args.steps else args.minutes,
                             max_steps=args.steps, clock=args.clock, eval_every=args.eval_every, seed=args.seed,
                             lambda_pix=args.lambda_pix, lambda_ssim=args.lambda_ssim, lambda_bg=args.lambda_bg,
                             lambda_id=args.lambda_id, lambda_tv=args.lambda_tv, lambda_adv=args.lambda_adv,
                             ssim_target=args.ssim_target, prior=args.prior, base=args.base)
    res = train_verb(args, "train inpainter", ("pix", "ssim", "id"),
                     lambda log_fn, progress: train_inpainter(faces, cache, args.out, cfg, init=args.init, val=val,
                                                              device=args.device, log_fn=log_fn, progress=progress))
    if res is None:
        return 2
    if args.export:
        meta = training_meta("train_inpainter", argv, res, clock=args.clock, n_train_faces=len(cache),
                             training_data=args.data, device=args.device)
        out = Path(args.export)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_network(res.net["G"], out, INPAINTER, meta=meta)
        log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
