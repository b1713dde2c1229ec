"""MTCNN's three networks (Zhang et al. 2016, "Joint face detection and alignment using multitask
cascaded convolutional networks"): P-Net, R-Net and O-Net, our own PyTorch port.

The layer layout is the paper's (and the original Caffe models'); the parameter names follow the
state dicts that ship in the ``facenet-pytorch`` wheel (MIT; ``pnet.pt``, ``rnet.pt``, ``onet.pt``),
which ``tools/convert_mtcnn.py`` converts into one safetensors file,
``assets/recon3d_mtcnn_v1.safetensors`` (keys ``pnet.*``, ``rnet.*``, ``onet.*``).

Input convention of those weights: RGB, ``(B, 3, H, W)``, values ``(x - 127.5) / 128`` for ``x`` in
``[0, 255]`` (:func:`normalise_mtcnn`). The fully connected layers of R-Net and O-Net read the last
feature map flattened in ``(W, H, C)`` order (the Caffe models were trained on transposed images;
the convolutions were converted, the flatten order was not), hence the ``permute`` before them.

Outputs, per window: face probability (softmax over ``[not face, face]``, we return channel 1), box
regression ``(dx0, dy0, dx1, dy1)`` in units of the window's side, and (O-Net) five landmarks
``(x_1..x_5, y_1..y_5)`` relative to the window, in the order left eye, right eye (as seen in the
image: smaller x first), nose, mouth left, mouth right.

The cascade (pyramid, thresholds, NMS, regression) is in :mod:`recon3d.detect.mtcnn_backend`.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import NetworkSpec

__all__ = ["PNet", "RNet", "ONet", "MTCNNNets", "MTCNN_NETS", "normalise_mtcnn"]


def normalise_mtcnn(x: torch.Tensor) -> torch.Tensor:
    """``[0, 255]`` pixel values -> the nets' input range, ``(x - 127.5) / 128``.

    >>> normalise_mtcnn(torch.tensor([0.0, 127.5, 255.0])).tolist()
    [-0.99609375, 0.0, 0.99609375]
    """
    return (x - 127.5) * 0.0078125


def _flatten_whc(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, W * H * C)`` in the Caffe weights' order."""
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12 x 12 windows with stride 2.

    ``forward(x (B, 3, H, W))`` -> ``(prob (B, H', W'), reg (B, 4, H', W'))``, ``H' = ceil((H - 2) / 2) - 4``.
    """

    def __init__(self):
        super().__init__()
        self.config: dict = {}
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refine net on 24 x 24 windows: ``forward(x (B, 3, 24, 24))`` -> ``(prob (B,), reg (B, 4))``."""

    def __init__(self):
        super().__init__()
        self.config: dict = {}
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(_flatten_whc(self.prelu3(self.conv3(x)))))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48 x 48 windows: ``forward(x (B, 3, 48, 48))`` -> ``(prob (B,), reg (B, 4), pts (B, 10))``."""

    def __init__(self):
        super().__init__()
        self.config: dict = {}
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_flatten_whc(self.prelu4(self.conv4(x)))))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


class MTCNNNets(nn.Module):
    """The three nets in one module (state-dict keys ``pnet.*``, ``rnet.*``, ``onet.*``), as stored."""

    def __init__(self):
        super().__init__()
        self.config: dict = {}
        self.pnet = PNet()
        self.rnet = RNet()
        self.onet = ONet()


#: registry entry of the shipped MTCNN weights (converted from facenet-pytorch's, MIT)
MTCNN_NETS = NetworkSpec(name="mtcnn", cls=MTCNNNets, format="recon3d-mtcnn-v1", what="MTCNN face detector",
                         asset="recon3d_mtcnn_v1.safetensors")
