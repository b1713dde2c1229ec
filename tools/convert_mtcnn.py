"""Convert MTCNN's weights from the ``facenet-pytorch`` wheel (MIT) into recon3d's asset.

Usage (the wheel is fetched by pip only, never imported or installed)::

    pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/fp
    python tools/convert_mtcnn.py /tmp/fp/facenet_pytorch-2.6.0-py3-none-any.whl \\
        --out assets/recon3d_mtcnn_v1.safetensors --manifest assets/manifest.json

The three plain state dicts ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` are read with
``torch.load(..., weights_only=True)`` (no code executed), loaded into :class:`recon3d.nn.mtcnn.MTCNNNets`
(strict key match) and written in fp32 with :func:`recon3d.nn.registry.save_network`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

import torch

from recon3d.nn.mtcnn import MTCNN_NETS, MTCNNNets
from recon3d.nn.registry import save_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help="facenet_pytorch-*.whl")
    ap.add_argument("--out", type=Path, default=Path("assets/recon3d_mtcnn_v1.safetensors"))
    ap.add_argument("--manifest", type=Path, help="update this manifest.json entry")
    a = ap.parse_args()
    net = MTCNNNets()
    with zipfile.ZipFile(a.wheel) as z:
        for name in ("pnet", "rnet", "onet"):
            sd = torch.load(io.BytesIO(z.read(f"facenet_pytorch/data/{name}.pt")), weights_only=True)
            getattr(net, name).load_state_dict(sd, strict=True)
    meta = {"source": f"{a.wheel.name}: facenet_pytorch/data/{{pnet,rnet,onet}}.pt", "licence": "MIT (facenet-pytorch)",
            "input": "RGB NCHW, (x - 127.5) / 128"}
    save_network(net, a.out, MTCNN_NETS, meta=meta, half=False)
    data = a.out.read_bytes()
    entry = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": f"{MTCNN_NETS.format} (safetensors, fp32)",
        "format_version": 1,
        "bytes": len(data),
        "architecture": "MTCNN P-Net (12x12 windows), R-Net (24x24), O-Net (48x48, 5 landmarks); Zhang et al. 2016",
        "source": f"facenet-pytorch wheel {a.wheel.name} (PyPI), files facenet_pytorch/data/pnet.pt, rnet.pt, onet.pt",
        "licence": "MIT (facenet-pytorch, Copyright (c) 2019 Timothy Esler)",
        "build": f"pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/fp; python tools/convert_mtcnn.py "
                 f"/tmp/fp/{a.wheel.name} --out {a.out} --manifest assets/manifest.json",
    }
    if a.manifest:
        m = json.loads(a.manifest.read_text()) if a.manifest.is_file() else {}
        m[a.out.name] = entry
        a.manifest.write_text(json.dumps(m, indent=2) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
