"""Helpers of the reliability tests: a toy model file, landmarks that fit it, tiny images, a fake
detector (fixed landmarks; ``group`` images hold two faces) and a subprocess harness that runs a
pipeline with that detector. Fast: one toy reconstruction takes about 0.5 s."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: Options of a fast toy reconstruction (add --model).
FAST = ["--fast", "--no-photometric", "--texture-size", "32", "-q"]


def toy_landmarks(model, size: int = 64, scale: float = 40.0, offset: float = 12.0) -> np.ndarray:
    """The toy model's 68 landmarks seen from the front, placed in a ``size`` x ``size`` image."""
    lm = model.landmarks(model.mean[None])[0].numpy()[:, :2].astype(np.float64)
    lm[:, 1] *= -1
    lm = (lm - lm.min(0)) / (lm.max(0) - lm.min(0)).max()
    return lm * scale * size / 64 + offset * size / 64


def write_image(path: Path, size: tuple[int, int] = (64, 64), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


def fake_detect(lm: np.ndarray):
    """A ``detect_faces`` replacement: one face at ``lm``; two (the second smaller) for images of
    width 80 (``group`` images)."""
    one = torch.as_tensor(lm, dtype=torch.float32)

    def detect(img, backend=None, all_faces=False, **kw):
        faces = [types.SimpleNamespace(lmk_px=one, method="fake", landmarks_3d=False, pose_deg=None)]
        if all_faces and img.shape[1] == 80:
            faces.append(types.SimpleNamespace(lmk_px=one * 0.5 + 20, method="fake", landmarks_3d=False, pose_deg=None))
        return faces

    return detect


HARNESS = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
import recon3d.reconstruct as R
from toy_cli import fake_detect
R.detect_faces = fake_detect(np.loadtxt({lm!r}))
from pipelines import reconstruct
sys.exit(reconstruct.main(sys.argv[1:]))
"""


def harness(tmp: Path, lm_file: Path) -> list[str]:
    """``[python, script]``: run ``pipelines.reconstruct`` with the fake detector in a subprocess."""
    script = tmp / "harness.py"
    script.write_text(HARNESS.format(tests=str(Path(__file__).parent), lm=str(lm_file)))
    return [sys.executable, str(script)]


def poison_setup():
    """A ``run_batch(setup=...)`` whose items succeed except ``poison``, whose worker always dies
    (SIGKILL, as the kernel's OOM killer would); for the engine tests (picklable: module level)."""
    return _poison_process


def _poison_process(job):
    import os
    import signal

    from recon3d.batch import Outcome

    if job.name == "poison":
        os.kill(os.getpid(), signal.SIGKILL)
    return Outcome(f"{job.name} ok", (), {"pid": os.getpid()})


def failing_setup():
    """A ``setup`` whose model load fails in every worker."""
    from recon3d.errors import AssetError

    raise AssetError("model.npz: checksum mismatch")
