"""Record what the shipped generators produce, for tests/nn/test_shipped_generators.py.

    python tools/record_generator_fingerprints.py   # rewrites tests/data/generator_fingerprints.json

Run it only when the shipped generator weights change (the test then checks that loading them again,
anywhere, gives the same faces). One CPU thread, seed 0, 4 faces, truncation 0.7.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "generator_fingerprints.json"


def fingerprint(arch: str) -> dict:
    from recon3d.assets import resolve
    from recon3d.io.image import batch_to_uint8
    from recon3d.nn.generation import GENERATORS, generate, load_generator

    G, _ = load_generator(arch)
    x = generate(G, 4, seed=0, truncation=0.7)
    thumb = torch.nn.functional.avg_pool2d(x, x.shape[-1] // 8)  # (4, 3, 8, 8)
    return {"weights_sha256": hashlib.sha256(resolve(GENERATORS[arch].asset).read_bytes()).hexdigest(),
            "uint8_sha256": hashlib.sha256(batch_to_uint8(x).tobytes()).hexdigest(),
            "thumbnail": [round(v, 5) for v in thumb.flatten().tolist()]}


def main() -> int:
    torch.set_num_threads(1)
    rec = {arch: fingerprint(arch) for arch in ("stylegan2", "dcgan")}
    OUT.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
