"""Train the occluder segmenter (:mod:`recon3d.edit.occnet`) on face photos with 68-point landmarks.

    python -m pipelines.train_occluder ../shared/300w/helen_trainset --out ~/.cache/recon3d/occ \\
        --max-minutes 40 --export assets/recon3d_occluder_v1.safetensors

Every photo (an image with a 300-W ``.pts`` file next to it) is cropped around its landmarks
``--jitters`` times (random scale and shift); the crops are cached in ``OUT/crops.npz``. Each
training batch pastes random occluders over the crops (:func:`recon3d.edit.occnet.paste_occluders`)
and the network learns the pasted masks (binary cross-entropy + soft Dice). Photos whose name
hashes into ``--val-percent`` are held out; their IoU is logged. Checkpoints go to ``OUT/last.pt``
(``torch.load(weights_only=True)`` compatible) every few minutes; rerunning resumes.
``--max-minutes`` bounds the run (the learning rate follows a cosine over it).

Do not train on photos you evaluate de-occlusion on (bench/occlusion.py uses AFLW2000-3D, HELEN
test and AFW by default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._cli import setup_logging

log = logging.getLogger("pipelines.train_occluder")


def _photos(dirs: list[str]) -> list[Path]:
    out = []
    for d in dirs:
        for p in sorted(Path(d).expanduser().glob("*.pts")):
            img = next((q for q in sorted(p.parent.glob(p.stem + ".*")) if q.suffix.lower() in (".jpg", ".jpeg", ".png")), None)
            if img is not None:
                out.append(img)
    return out


def _is_val(path: Path, percent: float) -> bool:
    h = int(hashlib.sha256(f"{path.parent.name}/{path.stem}".encode()).hexdigest()[:8], 16)
    return (h % 10000) < percent * 100


def _prepare(photos: list[Path], jitters: int, seed: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    from tqdm import tqdm

    from recon3d.edit.occnet import CROP_SCALE, crop, crop_box
    from recon3d.errors import Recon3DError
    from recon3d.io import load_image
    from recon3d.io.landmarks_file import load_landmarks

    if cache.is_file():
        z = np.load(cache)
        return z["crops"], z["val"]
    rng = np.random.default_rng(seed)
    crops, val = [], []
    for p in tqdm(photos, desc="cropping", unit="photo"):
        try:
            img = load_image(p).image.numpy()
            lmk = load_landmarks(p.with_suffix(".pts")).numpy()
        except (Recon3DError, ValueError) as e:
            log.warning("skipping %s: %s", p, e)
            continue
        v = _is_val(p, 5.0)
        for _ in range(jitters):
            box = crop_box(lmk, CROP_SCALE * rng.uniform(0.9, 1.15))
            box[:2] += rng.uniform(-0.06, 0.06, 2) * box[2]
            crops.append((crop(img, box).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
            val.append(v)
    crops_a, val_a = np.stack(crops), np.asarray(val)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, crops=crops_a, val=val_a)
    os.replace(tmp, cache)
    return crops_a, val_a


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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="write fp16 safetensors weights here at the end")
    ap.add_argument("--init", default=None, help="start from these exported weights (fine-tuning)")
    ap.add_argument("--frames", action="store_true", help="add spectacle-frame outlines to the shape bank")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(max(args.verbose, 1), args.quiet)

    import torch
    import torch.nn.functional as F

    from recon3d.edit.occnet import OccluderNet, paste_occluders, save_occluder_net, shape_bank, standardise

    if args.threads:
        torch.set_num_threads(args.threads)
    photos = _photos(args.photos)
    if not photos:
        print(f"no photos with .pts landmarks under {args.photos}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    crops, val = _prepare(photos, args.jitters, args.seed, out / "crops.npz")
    bank = torch.from_numpy(shape_bank(args.shapes, seed=args.seed, frames=args.frames))
    tr = torch.from_numpy(crops[~val])  # (N, 3, S, S) uint8
    va = torch.from_numpy(crops[val])
    log.info("%d photos: %d training crops, %d validation crops", len(photos), len(tr), len(va))
    if len(va) == 0:
        log.warning("no photo hashed into the validation split; validating on training crops")
        va = tr[:64]
    if len(tr) < args.batch:
        print(f"only {len(tr)} training crops (batch {args.batch})", file=sys.stderr)
        return 2

    torch.manual_seed(args.seed)
    net = OccluderNet()
    if args.init:
        from recon3d.edit.occnet import load_occluder_net

        net.load_state_dict(load_occluder_net(args.init)[0].state_dict())
        net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step, elapsed, history = 0, 0.0, []
    ckpt = out / "last.pt"
    if ckpt.is_file():
        st = torch.load(ckpt, weights_only=True)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        step, elapsed = int(st["step"]), float(st["elapsed"])
        history = json.loads(str(st["history"]))
        log.info("resumed at step %d (%.1f min)", step, elapsed / 60)
    gv = torch.Generator().manual_seed(12345)
    vx, vy = paste_occluders(va[:256].float() / 255, bank, gv)

    def evaluate() -> dict:
        net.eval()
        with torch.no_grad():
            p = torch.sigmoid(net(standardise(vx))) > 0.5
        net.train()
        t = vy > 0.5
        inter = (p & t).flatten(1).sum(1).float()
        union = (p | t).flatten(1).sum(1).float()
        has = t.flatten(1).any(1)
        fp_empty = p[~has].float().mean() if (~has).any() else torch.tensor(float("nan"))
        return {"val_iou": float((inter[has] / union[has]).mean()), "val_fp_on_clean": float(fp_empty)}

    def save():
        tmp = out / "last.pt.tmp"
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": elapsed + time.perf_counter() - t0, "history": json.dumps(history)}, tmp)
        os.replace(tmp, ckpt)

    t0 = time.perf_counter()
    t_ckpt = t0
    budget = args.max_minutes * 60
    losses = []
    net.train()
    while True:
        now = time.perf_counter()
        spent = elapsed + now - t0
        if spent >= budget:
            break
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        idx = torch.randint(0, len(tr), (args.batch,), generator=g)
        x, y = paste_occluders(tr[idx].float() / 255, bank, g)
        lr = float(args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * min(spent / budget, 1.0))))
        for grp in opt.param_groups:
            grp["lr"] = lr
        logit = net(standardise(x))
        p = torch.sigmoid(logit)
        dice = 1 - (2 * (p * y).flatten(1).sum(1) + 1) / ((p + y).flatten(1).sum(1) + 1)
        loss = F.binary_cross_entropy_with_logits(logit, y) + 0.5 * dice.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 200 == 0:
            ev = evaluate()
            rec = {"step": step, "minutes": round(spent / 60, 2), "loss": float(np.mean(losses[-200:])), **ev}
            history.append(rec)
            log.info("step %d  %.1f min  loss %.4f  val IoU %.3f  false positives on clean %.4f", step, spent / 60,
                     rec["loss"], ev["val_iou"], ev["val_fp_on_clean"])
        if now - t_ckpt > 180:
            save()
            t_ckpt = now
    save()
    ev = evaluate()
    log.info("done: %d steps, val IoU %.3f", step, ev["val_iou"])
    if args.export:
        meta = {"steps": step, "minutes": round((elapsed + time.perf_counter() - t0) / 60, 1), **ev,
                "n_photos": len(photos), "n_train_crops": int(len(tr)), "n_val_crops": int(len(va)),
                "training_data": [str(d) for d in args.photos]}
        save_occluder_net(net, args.export, meta=meta)
        log.info("exported %s", args.export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
