"""The fixed UNet every recipe trains (only the loss changes between recipes).

Architecture (``width`` w, ``depth`` d):

- stem: two 3x3 convolutions 3 -> w;
- d encoder levels: a 3x3 stride-2 convolution doubling the channels, then a 3x3 convolution
  (channels w * 2**i at level i);
- d decoder levels: a 2x2 stride-2 transposed convolution halving the channels, concatenation
  with the encoder feature of the same resolution, then two 3x3 convolutions;
- head: a 3x3 convolution w -> 3 whose weights and bias start at zero.

Every convolution but the head is followed by LeakyReLU(0.2). There is no normalisation layer, so
the network behaves the same in train and eval mode and for any batch size.

Output: ``out = low + head(...)`` (a residual on the input). Because the head starts at zero the
untrained network is exactly the identity, the same starting point for every recipe. There is no
sigmoid and no clamp: losses see the raw output (which may leave [0, 1]); evaluation clamps to
[0, 1] before metrics and saved images (see ``benchmark.run.execute``).

Any height and width are accepted: the input is padded (reflect, or replicate where reflect is
impossible) to a multiple of ``2**depth`` and the output cropped back. Transposed convolutions are
used for upsampling rather than interpolation because interpolation backward passes have no
deterministic CUDA kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.LeakyReLU(0.2, inplace=True)
    )


class UNet(nn.Module):
    """Encoder-decoder with skips and a residual output; identity at initialisation.

    Args:
        width: channels of the first level (doubled at every level down).
        depth: number of down-sampling steps; inputs are padded to a multiple of ``2**depth``.
    """

    def __init__(self, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"UNet: width and depth must be >= 1, got {width} and {depth}")
        self.width = width
        self.depth = depth
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = nn.Sequential(_conv(3, width), _conv(width, width))
        self.down = nn.ModuleList(
            nn.Sequential(
                _conv(chans[i], chans[i + 1], stride=2), _conv(chans[i + 1], chans[i + 1])
            )
            for i in range(depth)
        )
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.fuse = nn.ModuleList(
            nn.Sequential(_conv(2 * chans[i], chans[i]), _conv(chans[i], chans[i]))
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        """Height and width are padded internally to a multiple of this."""
        return 2**self.depth

    def count_parameters(self) -> int:
        """Number of trainable parameters."""
        return count_parameters(self)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        """Enhance ``low`` (N x 3 x H x W, any H, W) into a tensor of the same shape."""
        if low.dim() != 4 or low.shape[1] != 3:
            raise ValueError(f"UNet: expected N x 3 x H x W input, got {tuple(low.shape)}")
        h, w = low.shape[-2:]
        m = self.multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        x = low
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(low, (0, pad_w, 0, pad_h), mode=mode)
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        y = feats.pop()
        for up, fuse in zip(self.up, self.fuse, strict=True):
            y = fuse(torch.cat([up(y), feats.pop()], dim=1))
        residual = self.head(y)[..., :h, :w]
        return low + residual


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["UNet", "count_parameters"]
