"""SRGAN's adversarial loss (Ledig et al., CVPR 2017) and the small discriminator it trains with."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from benchmark.losses.base import Loss, check_pair


def build_discriminator(in_channels: int = 3, width: int = 32) -> nn.Sequential:
    """A small SRGAN-style discriminator: one logit per image.

    Four 3x3 convolutions with stride 2 and padding 1 (channels ``in -> w -> 2w -> 4w -> 4w``),
    each followed by LeakyReLU(0.2), then global average pooling and a linear layer to one
    logit; output shape ``(N,)``. Input of any size >= 1x1.

    SRGAN's discriminator (Ledig et al. 2017, Fig. 4) has eight 3x3 convolutions (stride 1/2
    alternating, 64 -> 512 channels), BatchNorm, LeakyReLU(0.2) and a dense 1024 head on a
    fixed 96x96 input. Deliberate differences: fewer, all-strided layers (it must stay cheap
    next to the benchmark's small UNet, on CPU too), global pooling instead of the dense head
    (any patch size), and no BatchNorm (an image's logit does not depend on the rest of its
    batch, and the generator term does not update running statistics).
    """
    chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], 1), nn.Flatten(0)]
    return nn.Sequential(*layers)


class AdversarialLoss(Loss):
    """Generator term of SRGAN's adversarial loss: ``L = sum_n -log D(pred_n)``.

    ``D(x) = sigmoid(discriminator(x))``; computed as ``-logsigmoid(logits).sum()``, which is
    the same value without the ``log(0) = -inf`` of the source's ``-log(sigmoid)`` when the
    discriminator is confident. It is a SUM over the batch, as the source writes it, so it
    grows with the batch size (SRGAN weights it 1e-3 next to the content loss; that weight
    belongs in the recipe). ``target`` is only shape-checked.

    ``forward`` leaves no gradient on the discriminator (it runs on detached copies of its
    parameters). The training loop trains the discriminator: after each generator step it calls
    :meth:`discriminator_loss` with ``pred.detach()`` and the target and steps its own
    ``Adam(self.discriminator.parameters(), lr=d_lr, betas=d_betas)``.

    Source: SRGAN's generator loss (``sum(-log(x))`` on discriminator probabilities).
    Paper: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
    Adversarial Network", CVPR 2017. Differences: logits + logsigmoid (numerically safe); the
    discriminator architecture (see :func:`build_discriminator`).

    Args:
        d_lr: learning rate of the discriminator's Adam (SRGAN: 1e-4).
        d_betas: Adam betas of the discriminator (SRGAN: beta1 = 0.9).
        width: channels of the discriminator's first layer.
        in_channels: channels of the images.
    """

    references = ("ledig2017srgan", "goodfellow2014gan")
    paper = "SRGAN generator loss (Ledig et al., CVPR 2017)"

    def __init__(
        self,
        d_lr: float = 1e-4,
        d_betas: Sequence[float] = (0.9, 0.999),
        width: int = 32,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if isinstance(d_lr, bool) or not isinstance(d_lr, (int, float)) or not d_lr > 0:
            raise ValueError(f"adversarial: d_lr must be a number > 0, got {d_lr!r}")
        betas = tuple(d_betas) if isinstance(d_betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
        ):
            raise ValueError(f"adversarial: d_betas must be two numbers in [0, 1), got {d_betas!r}")
        for key, value in (("width", width), ("in_channels", in_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"adversarial: {key} must be a positive integer, got {value!r}")
        self.d_lr = float(d_lr)
        self.d_betas: tuple[float, float] = (float(betas[0]), float(betas[1]))
        self.in_channels = in_channels
        self.discriminator: nn.Module = build_discriminator(in_channels, width)

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_pair("adversarial", pred, target, channels=self.in_channels)
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        frozen.update(dict(self.discriminator.named_buffers()))
        logits = functional_call(self.discriminator, frozen, (pred,))
        return -F.logsigmoid(logits).sum()

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The discriminator's objective: ``BCE(D(real), 1) + BCE(D(fake), 0)``, each a batch mean.

        BCE on logits (``binary_cross_entropy_with_logits``), the two terms added as in the
        PyTorch DCGAN tutorial (``errD = errD_real + errD_fake``). ``fake`` is detached here as
        well, so this never sends gradient to the generator.
        """
        check_pair("adversarial", fake, real, channels=self.in_channels)
        logits = self.discriminator(torch.cat([fake.detach(), real]))
        fake_logits, real_logits = logits.chunk(2)
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
