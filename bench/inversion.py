"""GAN inversion of real held-out faces into the shipped StyleGAN2 (W vs W+).

    python bench/inversion.py --real ../shared/faces-128 [--n 8] [--steps 300] [--weights G.safetensors]

The faces are ``--n`` (seeded pick) of the held-out split of ``--real`` (the 5 % hash split the
generator never trained on; aligned folders only), at the generator's resolution. Printed per space:
PSNR (dB, in [0, 255] terms, whole 64x64 image) and pixel MSE of the reconstruction, and the identity
distance between photo and reconstruction (recon3d's identity network, dlib's metric: the same
person is below 0.6), mean over the faces, with the optimisation time per face.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recon3d.data.faces import load_faces  # noqa: E402
from recon3d.nn.generation import load_generator  # noqa: E402
from recon3d.nn.inversion import InversionConfig, invert  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    G, _ = load_generator("stylegan2", args.weights)
    held = load_faces(args.real, G.res, split="val", progress=False).images
    pick = torch.randperm(len(held), generator=torch.Generator().manual_seed(0))[: args.n]
    faces = held[pick].float() / 127.5 - 1
    print(f"{len(faces)} held-out faces of {args.real} at {G.res}², {args.steps} steps\n")
    print("| space | PSNR (dB) | pixel MSE | identity distance (dlib metric) | s/face |")
    print("|---|---|---|---|---|")
    for space in ("w", "w+"):
        t0 = time.perf_counter()
        res = invert(G, faces, replace(InversionConfig(), space=space, steps=args.steps))
        dt = (time.perf_counter() - t0) / len(faces)
        mse = ((res.image - faces) ** 2).mean((1, 2, 3)).numpy()  # in [-1, 1] units
        psnr = 10 * np.log10(4.0 / mse)  # peak-to-peak 2 in [-1, 1] = 255 in 8-bit terms
        print(f"| {space.upper()} | {psnr.mean():.2f} | {mse.mean():.4f} | {res.identity_distance.mean():.3f} "
              f"(max {res.identity_distance.max():.3f}) | {dt:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
