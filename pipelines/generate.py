"""Generate faces with recon3d's shipped generators (or your own ``train_gan`` export), on a CPU.

    python -m pipelines.generate --arch stylegan2 --n 64 --seed 0 --truncation 0.7 --out faces/

writes ``faces/seed0_0000.png`` ... (one PNG per face), ``faces/grid.png`` (a contact sheet of all
of them), ``faces/interpolation.gif`` (a looping walk between ``--keys`` latents; ``--no-gif`` skips
it) and ``faces/generate.json`` (what made them: generator file and sha256, seed, truncation, time per
image). The output is a function of the weights, ``--seed``, ``--n`` and ``--truncation``: rerunning
the command writes the same files. Files are written atomically; existing files of the same names
are replaced, other files in ``--out`` are left alone.

The shipped generators are 64x64 and were trained on faces-128 (UTKFace, non-commercial research
only): see ``assets/README.md``; ``--weights`` loads another export of the same architecture.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

from ._cli import setup_logging

log = logging.getLogger("pipelines.generate")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=("stylegan2", "dcgan"), default="stylegan2")
    ap.add_argument("--weights", default=None, help="generator file (default: the shipped one)")
    ap.add_argument("--n", type=int, default=16, help="number of faces (default 16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--truncation", type=float, default=1.0, help="psi in (0, 1]; < 1: more typical faces")
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--keys", type=int, default=4, help="latents visited by the interpolation GIF")
    ap.add_argument("--frames", type=int, default=12, help="GIF frames between two latents")
    ap.add_argument("--no-gif", action="store_true")
    ap.add_argument("--scale", type=int, default=2, help="enlarge the grid and GIF by this factor (nearest)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    if args.n < 1:
        ap.error("--n must be >= 1")
    if not 0 < args.truncation <= 2:
        ap.error("--truncation must be in (0, 2]")
    if args.keys < 2 or args.frames < 1 or args.scale < 1:
        ap.error("--keys must be >= 2, --frames and --scale >= 1")
    if not 0 <= args.seed < 2**63:
        ap.error("--seed must be within [0, 2**63)")

    import numpy as np
    import torch

    from recon3d._checks import check_device
    from recon3d.assets import resolve
    from recon3d.errors import Recon3DError
    from recon3d.io.atomic import atomic_file, check_output_dir
    from recon3d.io.image import batch_to_uint8, contact_sheet, save_gif, save_image
    from recon3d.nn.generation import GENERATORS, generate, grid_shape, interpolate, load_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    try:
        check_device(args.device)
        out.mkdir(parents=True, exist_ok=True)
        check_output_dir(out)
        G, meta = load_generator(args.arch, args.weights, device=args.device)
        wpath = Path(args.weights) if args.weights else resolve(GENERATORS[args.arch].asset)
    except (Recon3DError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    imgs = batch_to_uint8(generate(G, args.n, args.seed, truncation=args.truncation))
    per_image = (time.perf_counter() - t0) / args.n
    for i, im in enumerate(imgs):
        save_image(out / f"seed{args.seed}_{i:04d}.png", im)
    _, ncol = grid_shape(args.n)
    sheet = contact_sheet(imgs, ncol)
    save_image(out / "grid.png", np.kron(sheet, np.ones((args.scale, args.scale, 1), np.uint8)))
    if not args.no_gif:
        frames = batch_to_uint8(interpolate(G, args.keys, args.frames, args.seed, truncation=args.truncation))
        save_gif(out / "interpolation.gif", frames, scale=args.scale)
    record = {"arch": args.arch, "weights": str(wpath), "weights_sha256": hashlib.sha256(wpath.read_bytes()).hexdigest(),
              "res": int(G.res), "n": args.n, "seed": args.seed, "truncation": args.truncation,
              "seconds_per_image": round(per_image, 4), "device": args.device,
              "training": {k: meta.get(k) for k in ("steps", "cpu_minutes", "images_seen", "training_data", "licence")
                           if k in meta}}
    with atomic_file(out / "generate.json", "w") as fh:
        json.dump(record, fh, indent=1)
    log.info("%d faces (%.0f ms each) in %s", args.n, per_image * 1000, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
