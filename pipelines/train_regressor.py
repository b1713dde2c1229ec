"""Train recon3d's landmark regressor on a set made by ``python -m pipelines.synthesize_poses``.

    python -m pipelines.train_regressor ~/.cache/recon3d/synth --out ~/.cache/recon3d/train \\
        --epochs 10 --export assets/recon3d_landmarks_v1.safetensors

Runs on the CPU (``--threads``) or on CUDA (``--device cuda``); the recipe is
:mod:`recon3d.train.recipes.landmarks`. Checkpoints go to ``OUT/last.pt`` every few minutes and
after each epoch; rerunning the same command resumes (``--no-resume`` starts over).
``--max-minutes`` stops cleanly (checkpoint kept) so a run can be continued later. Losses and the
validation NME on the held-out photos are logged and appended to ``OUT/history.jsonl``.
``--init WEIGHTS`` fine-tunes exported weights. ``--export`` writes fp16 safetensors weights with the
training summary in their metadata (the file the ``recon3d`` landmark backend loads).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ._cli import setup_logging

log = logging.getLogger("pipelines.train_regressor")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train_regressor", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="folder written by pipelines.synthesize_poses")
    ap.add_argument("--out", required=True, help="checkpoint / log folder")
    ap.add_argument("--extra", action="append", default=[], metavar="ROOT[:WEIGHT]",
                    help="another synthesized set (e.g. from pseudo-labelled photos, docs/REGRESSOR.md) whose training "
                         "views join the batches with this loss weight (default 0.5); repeatable; validation stays on DATA")
    ap.add_argument("--head", choices=("fc", "pip"), default="fc",
                    help="fc: regression from the flattened 4x4 map (v1); pip: heatmap + offset + neighbour votes on "
                         "the 7x7 map with a 6-D pose head (default fc; ignored with --init)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this long")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="the --max-minutes clock: wall time, or this process's CPU time (equal compute for runs "
                         "sharing a machine; default wall)")
    ap.add_argument("--no-resume", action="store_true", help="ignore OUT/last.pt and start over")
    ap.add_argument("--export", default=None, help="write fp16 safetensors weights here at the end")
    ap.add_argument("--init", default=None, help="start from these safetensors weights (fine-tuning)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(max(args.verbose, 1), args.quiet)
    data = Path(args.data).expanduser()
    if not (data / "samples").is_dir():
        print(f"{data}: no samples/ folder; run python -m pipelines.synthesize_poses first", file=sys.stderr)
        return 2

    extra = []
    for e in args.extra:
        head, sep, tail = e.rpartition(":")
        try:
            root, w = (head, float(tail)) if sep else (e, 0.5)
        except ValueError:  # a ':' in the path itself
            root, w = e, 0.5
        root = Path(root).expanduser()
        if not (root / "samples").is_dir():
            print(f"--extra {e}: no samples/ folder in {root}", file=sys.stderr)
            return 2
        extra.append((root, float(w)))

    import torch

    from recon3d.errors import Recon3DError
    from recon3d.nn.landmarks import LandmarkNet, load_regressor_net, save_regressor
    from recon3d.train.recipes.landmarks import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available in this torch build/machine", file=sys.stderr)
        return 2
    cfg = TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, max_minutes=args.max_minutes,
                      clock=args.clock)
    try:
        net0 = load_regressor_net(args.init)[0] if args.init else LandmarkNet(head=args.head)
        net, hist = train(data, Path(args.out).expanduser(), cfg, device=args.device, resume=not args.no_resume,
                          net=net0, extra=extra)
    except (ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.export:
        last = hist[-1] if hist else {}
        src = "views synthesized from 300-W (AFW, HELEN train and test) by pipelines.synthesize_poses"
        if extra:
            src += "; plus, at loss weights " + ", ".join(f"{w:g}" for _, w in extra) + ", views synthesized from " \
                   "photos pseudo-labelled by pipelines.pseudo_label (" + ", ".join(str(r) for r, _ in extra) + ")"
        meta = {"training_data": src,
                "licence": "derived from 300-W" + (" and the extra sets' photos (faces-128: UTKFace)" if extra else "")
                           + ": research / non-commercial use only",
                "head": net.head, "epochs": last.get("epoch"), "steps": last.get("step"), "n_train_views": last.get("n_train"),
                "val": {k: v for k, v in last.items() if k.startswith("val_")}}
        save_regressor(net.cpu(), args.export, meta=meta)
        print(f"wrote {args.export}: {json.dumps(meta['val'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
