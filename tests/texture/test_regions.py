import torch

from recon3d.morphable.default import load_default_model
from recon3d.texture import uv_region_masks


def test_default_model_uv_regions_are_disjoint_symmetric_and_placed():
    m = uv_region_masks(load_default_model(), 128)
    names = ["skin", "eyes", "brows", "lips", "nose"]
    total = torch.zeros_like(m["layout"], dtype=torch.int64)
    for n in names:
        assert m[n].sum() > 0, n
        assert not (m[n] & ~m["layout"]).any(), n
        total += m[n].long()
    assert total.max() <= 1
    # the layout is mirror symmetric about u = 0.5: so are the regions (up to rasterisation)
    for n in ("eyes", "lips", "nose"):
        a, b = m[n], torch.flip(m[n], dims=[1])
        iou = (a & b).sum() / (a | b).sum()
        assert iou > 0.8, (n, float(iou))
    # rows grow downwards in texture storage (v up): eyes above nose above lips

    def row(n):
        return m[n].nonzero()[:, 0].float().mean()

    assert row("brows") < row("eyes") < row("nose") < row("lips")
