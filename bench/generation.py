"""Face generation quality: FD-dlib and KID-dlib of generated faces against held-out real faces.

    python bench/generation.py --real ../shared/faces-128 [--weights A.safetensors B.safetensors] \\
        [--n 2000] [--sheet docs/images/generation.png]

Both metrics are computed on the 128-d embeddings of recon3d's identity network (the pure-PyTorch
port of dlib's face recognition ResNet, ``recon3d.nn.identity``), not on Inception features, so the
numbers are **FD-dlib** (Fréchet distance between Gaussians fitted to the two embedding sets) and
**KID-dlib** (unbiased squared MMD with the cubic polynomial kernel, mean ± std over subsets), not
FID / KID; they are not comparable with published FIDs. Lower is better.

Protocol:

* **reference**: the held-out split of ``--real`` (``recon3d.data.faces.load_faces(split="val")``,
  the 5 % hash split that ``pipelines.train_gan`` never trains on), at the generators' resolution;
* **real floor**: ``--n`` faces of the training split (disjoint from the reference) scored the same
  way: what a perfect generator that reproduced the training set would get at this sample size;
* **generators**: ``--n`` faces each (seed 0), at truncation 1.0 and ``--truncation`` (0.7);
* every image (real or generated) goes through the same path: the aligned ``res`` x ``res`` face
  -> dlib's 150x150 chip placed by the face template (``recon3d.ops.align.TEMPLATE_68``) -> identity
  embedding; real faces are resized to ``res`` first, so resolution is not what separates them.

Also printed: the CPU minutes and images each generator was trained on (from its metadata: seed
003's comparison is at equal training compute) and generation time per image at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recon3d.assets import resolve  # noqa: E402
from recon3d.data.faces import load_faces  # noqa: E402
from recon3d.io.image import batch_to_uint8, contact_sheet, save_image  # noqa: E402
from recon3d.nn.generation import GENERATORS, generate, load_generator  # noqa: E402
from recon3d.nn.identity import embed_aligned  # noqa: E402
from recon3d.ops.metrics import frechet_distance, kernel_distance  # noqa: E402


def _to_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float() / 127.5 - 1


def _arch_of(path: Path) -> str:
    from recon3d.assets import read_weights

    for arch, spec in GENERATORS.items():
        try:
            read_weights(path, spec.format, spec.what)
            return arch
        except Exception:
            continue
    raise SystemExit(f"error: {path}: not a recon3d generator file")


def _scores(emb: np.ndarray, ref: np.ndarray, subset: int) -> tuple[float, float, float]:
    kid, kid_sd = kernel_distance(emb, ref, subsets=100, subset_size=subset, seed=0)
    return frechet_distance(emb, ref), kid, kid_sd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True, help="folder of aligned real faces (its val split is the reference)")
    ap.add_argument("--weights", nargs="*", default=None, help="generator files (default: the shipped ones)")
    ap.add_argument("--n", type=int, default=2000, help="generated faces per generator (and real-floor size)")
    ap.add_argument("--truncation", type=float, default=0.7)
    ap.add_argument("--val-percent", type=float, default=5.0)
    ap.add_argument("--sheet", default=None, help="write a contact sheet (64 faces per generator, psi 1, seed 0) here")
    ap.add_argument("--sheet-real", action="store_true",
                    help="put 64 held-out real faces on top of the sheet (for your own eyes: not for the repo, "
                         "the photos are not ours to publish)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = [Path(p) for p in args.weights] if args.weights else [resolve(s.asset) for s in GENERATORS.values()]
    gens = []
    for p in paths:
        arch = _arch_of(p)
        G, meta = load_generator(arch, p)
        gens.append((arch, p, G, meta))
    res = {int(g[2].res) for g in gens}
    if len(res) != 1:
        raise SystemExit(f"error: generators of different resolutions {sorted(res)}")
    res = res.pop()
    ref_set = load_faces(args.real, res, split="val", val_percent=args.val_percent, progress=False)
    train_set = load_faces(args.real, res, split="train", val_percent=args.val_percent, progress=False)
    t0 = time.perf_counter()
    ref = embed_aligned(_to_float(ref_set.images))
    t_embed = (time.perf_counter() - t0) / len(ref_set.images)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train_set.images), generator=g)[: args.n]
    floor = embed_aligned(_to_float(train_set.images[idx]))
    subset = min(1000, len(ref), args.n)
    print(f"reference: {len(ref)} held-out real faces of {args.real} at {res}²; embedding {t_embed * 1000:.1f} ms/face")
    print(f"metrics: FD-dlib and KID-dlib (x1e3) on identity-network embeddings; KID subsets of {subset}\n")
    print("| source | train CPU min | train images | psi | FD-dlib | KID-dlib x1e3 | ms/img (b1) | ms/img (b32) |")
    print("|---|---|---|---|---|---|---|---|")
    fd, kid, sd = _scores(floor, ref, subset)
    print(f"| real floor ({args.n} training-split photos) | - | - | - | {fd:.4f} | {kid * 1e3:.3f} ± {sd * 1e3:.3f} | - | - |")
    sheets = []
    for arch, p, G, meta in gens:
        t1 = time.perf_counter()
        for s in range(8):
            generate(G, 1, s)
        b1 = (time.perf_counter() - t1) / 8 * 1000
        for psi in (1.0, args.truncation):
            t1 = time.perf_counter()
            imgs = generate(G, args.n, 0, truncation=psi, batch=32)
            b32 = (time.perf_counter() - t1) / args.n * 1000
            fd, kid, sd = _scores(embed_aligned(imgs), ref, subset)
            print(f"| {arch} `{p.name}` | {meta.get('cpu_minutes', '?')} | {meta.get('images_seen', '?')} | {psi} | "
                  f"{fd:.4f} | {kid * 1e3:.3f} ± {sd * 1e3:.3f} | {b1:.1f} | {b32:.1f} |")
            if psi == 1.0:
                sheets.append(batch_to_uint8(imgs[:64]))
    if args.sheet:
        real = ref_set.images[torch.randperm(len(ref_set.images), generator=torch.Generator().manual_seed(0))[:64]]
        rows = [contact_sheet(s, 16) for s in ([real.permute(0, 2, 3, 1).numpy()] if args.sheet_real else []) + sheets]
        gap = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
        sheet = np.concatenate([r for row in rows for r in (row, gap)][:-1])
        save_image(args.sheet, sheet)
        top = "real held-out, then " if args.sheet_real else ""
        print(f"\ncontact sheet ({top}{', '.join(a for a, *_ in gens)} at psi 1.0, seed 0): {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
