"""Wavelet SSIM loss (W-SSIM): SSIM over a Haar DWT pyramid, after Y-Net as used by S3Net.

S3Net (, Yang, Chen & Kuo, CVPRW 2021) defines
``L_W-SSIM = sum_i gamma_i L_SSIM(I_i^w, Î_i^w), w in {LL, HL, LH, HH}`` and says the
implementation follows "wavelet_ssim". S3Net's repository publishes no training code; its
authors' earlier Y-Net (Yang, Yang & Wang, "Y-Net: Multi-scale feature aggregation network
with wavelet structure similarity loss function for single image dehazing", ICASSP 2020)
publishes the loss: github.com/dectrfov/Y-net ``wavelet_ssim_loss.py`` (class ``WSloss``),
with the Haar transform of the same authors' ``dwt.py`` (pywt ``db1`` filters, stride-2 valid
2x2 convolution, outputs LL | (LH, HL) | HH). That is the definition implemented here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.losses.base import Loss, check_pair
from benchmark.losses.ssim import gaussian_kernel_1d

_C1 = 0.01**2
_C2 = 0.03**2
_PADDINGS = ("same", "valid")


def haar_filters(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The four 2x2 orthonormal Haar (pywt ``db1``) analysis filters, shape (4, 1, 2, 2).

    Order LL, LH, HL, HH as Y-Net's ``dwt``: ``outer(lo, lo)``, ``outer(hi, lo)`` (vertical
    detail), ``outer(lo, hi)`` (horizontal detail), ``outer(hi, hi)``, with lo = (1, 1)/sqrt(2)
    and hi = (1, -1)/sqrt(2) (pywt's filters reversed, as a correlation needs).
    """
    s = 1.0 / math.sqrt(2.0)
    lo = torch.tensor([s, s], dtype=torch.float64)
    hi = torch.tensor([s, -s], dtype=torch.float64)
    bank = [torch.outer(lo, lo), torch.outer(hi, lo), torch.outer(lo, hi), torch.outer(hi, hi)]
    return torch.stack(bank).unsqueeze(1).to(dtype)


class WaveletSSIMLoss(Loss):
    r"""W-SSIM: SSIM loss of the image and of its Haar sub-bands, recursively on LL.

    Y-Net's ``WSloss`` with split ratio ``r`` (0.7) and 2 levels: the image gets weight 1; at
    level ``i`` (1-based) the parent mass :math:`s_{i-1} = r^{2(i-1)}` is split into
    :math:`s_{i-1} r(1-r)` for LH and for HL each, :math:`s_{i-1}(1-r)^2` for HH and
    :math:`s_i = s_{i-1} r^2` for LL, which is decomposed further; only the last LL is scored:

    .. math::
        \mathcal{L} = \sum_k \gamma_k\,\bigl(1 - \mathrm{SSIM}(\hat I_k, I_k)\bigr),\quad
        \gamma = \bigl(1;\ [r(1-r), r(1-r), (1-r)^2]\,r^{2(i-1)}\ \text{for}\ i=1..L;\ r^{2L}\bigr)

    Defaults (r = 0.7, L = 2): image 1; level 1 LH, HL 0.21, HH 0.09; level 2 LH, HL 0.1029,
    HH 0.0441; LL 0.2401 (the gammas add up to 2). SSIM as in Y-Net's ``pytorch_ssim.SSIM()``:
    11x11 Gaussian (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2 (the sub-bands' own ranges are not
    rescaled), per channel, mean over the map, and zero "same" padding (``padding='same'``);
    ``padding='valid'`` gives the ``ssim`` loss convention instead.

    Deliberate differences from Y-Net's code: it returns ``-sum_k gamma_k SSIM_k``; we return
    ``sum_k gamma_k (1 - SSIM_k)``, the same minus the constant ``sum_k gamma_k`` (2 by default),
    so gradients are identical and a perfect prediction gives 0. All sub-bands of one level go
    through one batched, separable Gaussian convolution (Y-Net loops over them). Inputs
    smaller than :meth:`min_input_size` raise ``ValueError``.

    Args:
        r: split ratio of each level between low and high frequencies (0 < r < 1).
        levels: number of Haar decompositions (>= 1).
        padding: ``'same'`` (Y-Net, zero padding) or ``'valid'`` (SSIM only where the window fits).
        win_size: odd side of the Gaussian window (11).
        win_sigma: its standard deviation (1.5).
    """

    references = ("yang2020ynet", "yang2021s3net")
    paper = "S3Net, Yang et al., CVPRW 2021; W-SSIM from Y-Net, Yang et al., ICASSP 2020"

    def __init__(
        self,
        r: float = 0.7,
        levels: int = 2,
        padding: str = "same",
        win_size: int = 11,
        win_sigma: float = 1.5,
    ) -> None:
        super().__init__()
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 < r < 1.0:
            raise ValueError(f"wssim: r must be a number strictly between 0 and 1, got {r!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"wssim: levels must be an integer >= 1, got {levels!r}")
        if padding not in _PADDINGS:
            raise ValueError(f"wssim: padding must be 'same' or 'valid', got {padding!r}")
        if isinstance(win_size, bool) or not isinstance(win_size, int) or win_size < 3:
            raise ValueError(f"wssim: win_size must be an odd integer >= 3, got {win_size!r}")
        if win_size % 2 != 1:
            raise ValueError(f"wssim: win_size must be odd, got {win_size}")
        if isinstance(win_sigma, bool) or not isinstance(win_sigma, (int, float)) or not (
            math.isfinite(win_sigma) and win_sigma > 0
        ):
            raise ValueError(f"wssim: win_sigma must be a finite number > 0, got {win_sigma!r}")
        self.r = float(r)
        self.levels = levels
        self.padding = padding
        self.win_size = win_size
        self.register_buffer("haar", haar_filters(), persistent=False)
        win = gaussian_kernel_1d(win_size, float(win_sigma))
        self.register_buffer("win", win, persistent=False)
        # the band weights as one device-resident (levels, 4) buffer: no host-to-device copy per
        # step (a CUDA step must never wait for the host, and a CUDA graph cannot capture one)
        gamma = torch.tensor(self.band_weights(), dtype=torch.float64)
        self.register_buffer("gamma", gamma, persistent=False)

    def band_weights(self) -> list[tuple[float, float, float, float]]:
        """Per level, the weights (LL, LH, HL, HH); LL is 0 except at the last level."""
        r, out, parent = self.r, [], 1.0
        for i in range(self.levels):
            ll = parent * r * r if i == self.levels - 1 else 0.0
            out.append((ll, parent * r * (1 - r), parent * r * (1 - r), parent * (1 - r) ** 2))
            parent *= r * r
        return out

    def min_input_size(self) -> int:
        # each level halves (rounding down); 'valid' needs the window inside the last level
        last = self.win_size if self.padding == "valid" else 1
        return last * 2**self.levels

    def _ssim_per_channel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean SSIM of each (n, c) map, shape (N, C): one grouped, separable convolution."""
        c = x.shape[1]
        pad = self.win_size // 2 if self.padding == "same" else 0
        win = self.win.to(x.dtype)
        stats = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        k = stats.shape[1]
        rows = win.view(1, 1, -1, 1).expand(k, 1, -1, 1)
        cols = win.view(1, 1, 1, -1).expand(k, 1, 1, -1)
        stats = F.conv2d(stats, rows, padding=(pad, 0), groups=k)
        stats = F.conv2d(stats, cols, padding=(0, pad), groups=k)
        mu_x, mu_y, xx, yy, xy = stats.split(c, dim=1)
        mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
        num = (2 * mu_xy + _C1) * (2 * (xy - mu_xy) + _C2)
        den = (mu_xx + mu_yy + _C1) * ((xx - mu_xx) + (yy - mu_yy) + _C2)
        return (num / den).flatten(2).mean(-1)

    def _dwt(self, x: torch.Tensor) -> torch.Tensor:
        """Haar DWT per channel: (N, C, H, W) -> (N, C, 4, H//2, W//2), bands LL, LH, HL, HH."""
        n, c, h, w = x.shape
        filters = self.haar.to(x.dtype).repeat(c, 1, 1, 1)
        return F.conv2d(x, filters, stride=2, groups=c).view(n, c, 4, h // 2, w // 2)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("wssim", pred, target)
        h, w = pred.shape[-2:]
        need = self.min_input_size()
        if min(h, w) < need:
            why = f"{self.levels} Haar levels"
            if self.padding == "valid":
                why += f" and a {self.win_size}x{self.win_size} valid window"
            raise ValueError(
                f"wssim: input {h}x{w} is too small: {why} need height and width >= {need}"
            )
        n, c = pred.shape[:2]
        loss = 1.0 - self._ssim_per_channel(pred, target).mean()
        x, y = pred, target
        for i in range(self.levels):
            last = i == self.levels - 1
            bx, by = self._dwt(x), self._dwt(y)
            first = 0 if last else 1  # LL is scored only at the last level
            sx, sy = bx[:, :, first:].flatten(1, 2), by[:, :, first:].flatten(1, 2)
            ssim = self._ssim_per_channel(sx, sy).view(n, c, 4 - first).mean(dim=(0, 1))
            gamma = self.gamma[i, first:].to(ssim.dtype)
            loss = loss + (gamma * (1.0 - ssim)).sum()
            x, y = bx[:, :, 0], by[:, :, 0]
        return loss
