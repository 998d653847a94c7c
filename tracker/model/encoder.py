"""The CNN feature encoder ("fnet"): BasicEncoder with instance norms, stride 4 (spec section 3)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _instance_norm(x: torch.Tensor) -> torch.Tensor:
    # Parameter-free, no running stats: identical in train and eval (spec pitfall 5).
    return F.instance_norm(x, eps=1e-5)


class ResidualBlock(nn.Module):
    """conv3x3(stride) -> IN -> ReLU -> conv3x3 -> IN -> ReLU, plus (1x1 conv -> IN) shortcut when strided."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            # Index 0 so that the key is "downsample.0.*" as in the official checkpoints (index 1 is the norm).
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(_instance_norm(self.conv1(x)))
        y = F.relu(_instance_norm(self.conv2(y)))
        if self.downsample is not None:
            x = _instance_norm(self.downsample(x))
        return F.relu(x + y)


DEEPEST_STRIDE = 16  # conv1, layer2, layer3 and layer4 each halve the frame (3x3 / 7x7 convs, padded: ceil)


def encoder_input_problem(height: int, width: int) -> str | None:
    """Why the encoder cannot take (height, width) frames, or None. Its instance norms need more than one value per
    channel; the deepest one (layer4, stride 16) sees ceil(H/16) x ceil(W/16) pixels, which must be at least 2."""
    h, w = -(-height // DEEPEST_STRIDE), -(-width // DEEPEST_STRIDE)
    if h * w < 2:
        return (f"one side must exceed {DEEPEST_STRIDE}: the encoder's deepest layer (stride {DEEPEST_STRIDE}) would "
                f"see {h}x{w} pixel and its instance norm needs at least 2")
    return None


class BasicEncoder(nn.Module):
    """frames (M, 3, H, W) in [-1, 1] -> raw features (M, out_dim, H/4, W/4) (not L2-normalised)."""

    def __init__(self, out_dim: int = 128, dims: Sequence[int] = (64, 96, 128, 128), fuse_dim: int = 256) -> None:
        super().__init__()
        d1, d2, d3, d4 = dims
        self.conv1 = nn.Conv2d(3, d1, 7, stride=2, padding=3)
        self.layer1 = nn.Sequential(ResidualBlock(d1, d1, 1), ResidualBlock(d1, d1, 1))
        self.layer2 = nn.Sequential(ResidualBlock(d1, d2, 2), ResidualBlock(d2, d2, 1))
        self.layer3 = nn.Sequential(ResidualBlock(d2, d3, 2), ResidualBlock(d3, d3, 1))
        self.layer4 = nn.Sequential(ResidualBlock(d3, d4, 2), ResidualBlock(d4, d4, 1))
        self.conv2 = nn.Conv2d(d1 + d2 + d3 + d4, fuse_dim, 3, padding=1)
        self.conv3 = nn.Conv2d(fuse_dim, out_dim, 1)
        self.stride = 4
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # spec 15: Kaiming normal, fan-out, ReLU gain; biases keep the default
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        x = F.relu(_instance_norm(self.conv1(x)))
        a = self.layer1(x)
        b = self.layer2(a)
        c = self.layer3(b)
        d = self.layer4(c)
        size = (H // self.stride, W // self.stride)
        # Multi-scale fusion by align-corners bilinear resizing (also *down*-sampling layer1; pitfall 6).
        feats = [F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in (a, b, c, d)]
        x = F.relu(_instance_norm(self.conv2(torch.cat(feats, dim=1))))
        return self.conv3(x)
