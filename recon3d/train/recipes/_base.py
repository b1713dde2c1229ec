"""What the image-to-image GAN recipes share (the de-occlusion inpainter, the rotation refiner, the UV generator): a generator
``net["G"]`` and optional discriminators (``net["D"]``, ...) with their Adam optimisers, one endless epoch, the
configuration dataclass as the recipe's config, and the torch random state checkpointed with the run."""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

__all__ = ["GDRecipe", "TorchRngState"]


class TorchRngState:
    """A recipe whose checkpointed state is torch's global random state (the GAN, restoration, inpainting and
    rotation recipes draw their per-step randomness from it)."""

    def state_dict(self) -> dict:
        return {"rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            torch.set_rng_state(state["rng"])


class GDRecipe(TorchRngState):
    """Base of a recipe whose ``cfg`` has ``lr`` and ``d_lr`` (see :mod:`recon3d.train.loop`)."""

    cfg: object

    def config(self) -> dict:
        d = asdict(self.cfg)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int | None:
        return None

    def optimizers(self, net: nn.ModuleDict) -> dict[str, torch.optim.Optimizer]:
        """Adam (betas 0.5, 0.999) for ``G`` at ``lr`` and for every other network (the discriminators: ``D``,
        ``D_face``, ...) at ``d_lr``."""
        opts = {"G": torch.optim.Adam(net["G"].parameters(), lr=self.cfg.lr, betas=(0.5, 0.999))}
        for k in net:
            if k != "G":
                opts[k] = torch.optim.Adam(net[k].parameters(), lr=self.cfg.d_lr, betas=(0.5, 0.999))
        return opts
