"""Train a face GAN (DCGAN or StyleGAN2) on a folder of face photos, on a CPU or CUDA.

    python -m pipelines.train_gan --arch stylegan2 --res 64 --data ../shared/faces-128 \\
        --minutes 60 --out ~/.cache/recon3d/gan-sg2 --export assets/recon3d_stylegan2_64_v1.safetensors

The faces are read by :func:`recon3d.data.faces.load_faces` (aligned folders such as faces-128 are
used as they are; a held-out 5 % hash split is kept out of training and used by
``bench/generation.py``), cached as uint8. The recipe is :mod:`recon3d.train.recipes.gan`: the
non-saturating logistic loss, lazy R1, generator EMA, optional style mixing and path length, optional
DiffAugment (``--augment diffaug``). ``OUT/last.pt`` is written every few minutes and at the end;
rerunning the same command resumes, and ``--minutes`` is the total training time across runs.
``--init`` starts from exported weights (fine-tuning; e.g. the shipped generator with
``--init-d`` its discriminator). ``OUT/samples/latest.png`` shows a fixed set of latents as it trains;
``OUT/history.jsonl`` has the losses (and FD-dlib with ``--fd-samples``).

``--export G.safetensors`` writes the EMA generator (fp16, configuration and the training summary in
the metadata) and ``G_d.safetensors`` next to it, the discriminator, for later fine-tuning.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from ._cli import setup_logging, setup_torch

log = logging.getLogger("pipelines.train_gan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train_gan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("dcgan", "stylegan2"), default="stylegan2")
    ap.add_argument("--res", type=int, choices=(16, 32, 64, 128, 256), default=64)
    ap.add_argument("--data", required=True, nargs="+", help="folder(s) of face photos (recursively)")
    ap.add_argument("--out", required=True, help="checkpoint / history / samples folder")
    ap.add_argument("--minutes", type=float, default=30.0, help="training-time budget (total, across resumed runs)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="what --minutes counts: elapsed time (default) or this process's CPU time (equal compute "
                         "for runs that share a machine)")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps instead")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="default: 2e-3 (stylegan2) / 2e-4 (dcgan)")
    ap.add_argument("--r1", type=float, default=None, help="R1 weight (default 2e-4 * res^2 / batch for stylegan2, 0 for dcgan)")
    ap.add_argument("--pl-weight", type=float, default=0.0, help="path-length penalty weight (stylegan2; 2 in the paper)")
    ap.add_argument("--augment", choices=("none", "diffaug"), default="none")
    ap.add_argument("--channels", default=None,
                    help="stylegan2 widths as RES:CH,... (e.g. 4:512,8:512,16:512,32:512,64:256); dcgan: NGF,NDF")
    ap.add_argument("--ema", type=float, default=None, help="EMA decay per step (default 0.999 stylegan2, 0 = none for dcgan)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="held-out share of the photos (hash split)")
    ap.add_argument("--cache-dir", default=None, help="where decoded faces are cached (default ~/.cache/recon3d/faces)")
    ap.add_argument("--limit", type=int, default=None, help="use at most this many photos")
    ap.add_argument("--fd-samples", type=int, default=0, help="FD-dlib estimate on this many images at each eval")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="start from these exported generator weights (fine-tuning)")
    ap.add_argument("--init-d", default=None, help="... and these discriminator weights")
    ap.add_argument("--export", default=None, help="write the EMA generator here (and *_d.safetensors: the discriminator)")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)

    import torch

    from recon3d.errors import Recon3DError

    if (rc := setup_torch(args.threads, args.device)) is not None:
        return rc
    from recon3d.data.faces import load_faces
    from recon3d.nn.registry import save_network
    from recon3d.train.recipes.gan import ARCHS, GanTrainConfig, train_gan

    g_kw, d_kw = _widths(args.arch, args.channels, ap)
    try:
        faces = load_faces(args.data[0], args.res, split="train", val_percent=args.val_percent, limit=args.limit,
                           cache_dir=args.cache_dir, progress=not args.quiet) if len(args.data) == 1 else _concat(args, load_faces)
    except (OSError, ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(faces) < args.batch:
        print(f"error: {len(faces)} training faces in {' '.join(args.data)}, fewer than one batch ({args.batch})",
              file=sys.stderr)
        return 2
    log.info("%d training faces at %d²", len(faces), args.res)
    cfg = GanTrainConfig(arch=args.arch, res=args.res, batch=args.batch, lr=args.lr, r1_gamma=args.r1,
                         pl_weight=args.pl_weight, augment=args.augment, g_kwargs=g_kw, d_kwargs=d_kw,
                         max_minutes=None if args.steps else args.minutes, max_steps=args.steps, clock=args.clock, ema_decay=args.ema,
                         eval_every=args.eval_every, fd_samples=args.fd_samples, seed=args.seed,
                         log_every=5)
    fd_fn = _fd_fn(args, load_faces) if args.fd_samples else None
    bar = _bar(args, cfg)
    try:
        run = train_gan(faces, args.out, cfg, init=args.init, init_d=args.init_d, device=args.device, fd_fn=fd_fn,
                        log_fn=_log_fn(bar, args), progress=_progress_fn(bar, args))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    if args.export:
        g_spec, d_spec = ARCHS[args.arch]
        meta = run.export_meta(arch=args.arch, res=args.res, n_train_faces=len(faces),
                               training_data=" ".join(args.data),
                               licence="trained on the given faces: inherits their licence (faces-128 / UTKFace: "
                                       "non-commercial research only)",
                               command="python -m pipelines.train_gan " + " ".join(shlex.quote(a) for a in
                                                                                  (argv if argv is not None else sys.argv[1:])),
                               torch=torch.__version__, device=args.device)
        out = Path(args.export)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_network(run.net["G_ema"], out, g_spec, meta=meta)
        save_network(run.net["D"], out.with_name(out.stem + "_d" + out.suffix), d_spec, meta=meta)
        log.info("wrote %s and its discriminator", out)
    return 0


def _widths(arch: str, text: str | None, ap: argparse.ArgumentParser) -> tuple[dict, dict]:
    if not text:
        return {}, {}
    try:
        if arch == "dcgan":
            ngf, ndf = (int(v) for v in text.split(","))
            return {"ngf": ngf}, {"ndf": ndf}
        table = {int(k): int(v) for k, v in (item.split(":") for item in text.split(","))}
        return {"channels": table}, {"channels": table}
    except ValueError:
        ap.error(f"--channels {text!r}: expected RES:CH,... for stylegan2 or NGF,NDF for dcgan")
    raise AssertionError


def _concat(args, load_faces):
    import torch

    from recon3d.data.faces import FaceSet

    sets = [load_faces(d, args.res, split="train", val_percent=args.val_percent, limit=args.limit,
                       cache_dir=args.cache_dir, progress=not args.quiet) for d in args.data]
    return FaceSet(torch.cat([s.images for s in sets]), [k for s in sets for k in s.keys], Path(args.data[0]), args.res)


def _fd_fn(args, load_faces):
    from recon3d.train.recipes.gan import FdEstimator

    val = load_faces(args.data[0], args.res, split="val", val_percent=args.val_percent, cache_dir=args.cache_dir,
                     progress=False)
    return FdEstimator(val.images[: max(args.fd_samples, 256)], device=args.device)


def _log_fn(bar, args):
    """Evaluation records above the bar; per-step lines only with -v."""
    def say(msg: str) -> None:
        if ": train loss" in msg or msg.startswith("resumed"):
            (bar.write if bar is not None else log.info)(msg)
        else:
            log.debug(msg)
    return say


def _progress_fn(bar, args):
    if bar is None:
        return None

    def update(info: dict) -> None:
        bar.n = info["step"] if args.steps else min(round(info["seconds"]), bar.total)
        st = info.get("stats", {})
        bar.set_postfix_str(f"step {info['step']} " + " ".join(f"{k} {st[k]:.3f}" for k in ("d_loss", "g_loss") if k in st),
                            refresh=True)
    return update


def _bar(args, cfg):
    if args.quiet:
        return None
    from tqdm import tqdm

    if args.steps:
        return tqdm(total=args.steps, desc=f"train {args.arch}", unit="step")
    return tqdm(total=round(args.minutes * 60), desc=f"train {args.arch}", unit="s",
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s {postfix}")


if __name__ == "__main__":
    raise SystemExit(main())
