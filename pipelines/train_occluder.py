"""Train the occluder segmenter (:mod:`recon3d.nn.occluder`) on face photos with 68-point landmarks.

    python -m pipelines.train_occluder ../shared/300w/helen_trainset --out ~/.cache/recon3d/occ \\
        --max-minutes 40 --export assets/recon3d_occluder_v1.safetensors

Every photo (an image with a 300-W ``.pts`` file next to it) is cropped around its landmarks
``--jitters`` times (random scale and shift); the crops are cached in ``OUT/crops.npz``. Each
training batch pastes random occluders over the crops (:func:`recon3d.data.occluders.paste_occluders`)
and the network learns the pasted masks (binary cross-entropy + soft Dice; the recipe is
:mod:`recon3d.train.recipes.occluder`). Photos whose name hashes into the held-out 5 % are kept for
validation; their IoU is logged and appended to ``OUT/history.jsonl``. Checkpoints go to
``OUT/last.pt`` (``torch.load(weights_only=True)`` compatible) every few minutes; rerunning resumes.
``--max-minutes`` bounds the run (the learning rate follows a cosine over it).

Do not train on photos you evaluate de-occlusion on (bench/occlusion.py uses AFLW2000-3D, HELEN
test and AFW by default).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from ._cli import setup_logging

log = logging.getLogger("pipelines.train_occluder")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train_occluder", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", nargs="+", help="folders of photos with 300-W .pts landmark files")
    ap.add_argument("--out", required=True, help="checkpoint / cache folder")
    ap.add_argument("--max-minutes", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--jitters", type=int, default=4, help="crops per photo")
    ap.add_argument("--shapes", type=int, default=3000, help="size of the random shape bank")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="write fp16 safetensors weights here at the end")
    ap.add_argument("--init", default=None, help="start from these exported weights (fine-tuning)")
    ap.add_argument("--frames", action="store_true", help="add spectacle-frame outlines to the shape bank")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(max(args.verbose, 1), args.quiet)

    import torch
    from tqdm import tqdm

    from recon3d.data.occluders import face_crops, photos_with_landmarks
    from recon3d.errors import Recon3DError
    from recon3d.nn.occluder import save_occluder_net
    from recon3d.train.recipes.occluder import OccluderTrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available in this torch build/machine", file=sys.stderr)
        return 2
    photos = photos_with_landmarks(args.photos)
    if not photos:
        print(f"no photos with .pts landmarks under {args.photos}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    bar = functools.partial(tqdm, desc="cropping", unit="photo", disable=args.quiet)
    crops, val = face_crops(photos, args.jitters, args.seed, out / "crops.npz", progress=bar)
    log.info("%d photos", len(photos))
    cfg = OccluderTrainConfig(max_minutes=args.max_minutes, batch=args.batch, lr=args.lr, shapes=args.shapes,
                              frames=args.frames, seed=args.seed)
    try:
        run = train(crops, val, out, cfg, init=args.init, device=args.device)
    except (ValueError, Recon3DError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.export:
        meta = run.export_meta(n_photos=len(photos), training_data=[str(d) for d in args.photos])
        save_occluder_net(run.net.cpu(), args.export, meta=meta)
        log.info("exported %s", args.export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
