"""VGG19 perceptual loss: the variants of common LLIE code, S3Net, EDSR and SRGAN as presets."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark import weights
from benchmark.errors import did_you_mean
from benchmark.losses.base import Loss, check_pair, check_reduction, reduce_images

#: ImageNet statistics of torchvision's VGG19 (EDSR's MeanShift with rgb_range 1)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: indices of ``vgg19().features`` by layer name (0 conv1_1, 1 relu1_1, 4 pool1, ...)
VGG19_DEPTH = 37


@dataclass(frozen=True)
class Preset:
    layers: tuple[int, ...]
    layer_weights: tuple[float, ...]
    criterion: str
    normalize: bool


_FIVE = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_FIVE_W = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

PRESETS: dict[str, Preset] = {
    "lol5": Preset(_FIVE, _FIVE_W, "l1", False),
    "lol5_l2": Preset(_FIVE, _FIVE_W, "l2", False),
    "drn": Preset(_FIVE[:3], _FIVE_W[:3], "l1", False),
    "edsr22": Preset((7,), (1.0,), "l2", True),  # conv2_2, before its ReLU
    "edsr54": Preset((34,), (1.0,), "l2", True),  # conv5_4, before its ReLU
    "srgan": Preset((15,), (1.0,), "l2", False),  # features[:16] ends at relu3_3
}
CRITERIA = ("l1", "l2")


class PerceptualLoss(Loss):
    r"""Weighted distance between VGG19 feature maps of ``pred`` and ``target``.

    .. math:: L = \sum_i w_i \, \mathrm{mean}\,\rho(\phi_{k_i}(N(x)) - \phi_{k_i}(N(y)))

    where :math:`\phi_k` is the output of module ``k`` of torchvision's ``vgg19().features``
    (ImageNet weights, :func:`benchmark.weights.vgg19_features`), :math:`\rho` is ``|.|`` (``l1``)
    or ``(.)^2`` (``l2``) and :math:`N` is either the identity or the ImageNet shift
    ``(x - mean) / std``. Presets (``layers`` = feature indices compared after):

    - ``lol5`` (default; the five-slice VGG19 loss common in LLIE code): slices ending at
      relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 (``layers=(1, 6, 11, 20, 29)``), weights 1/32,
      1/16, 1/8, 1/4, 1, L1, no normalisation. The default because it is the most common form
      in LLIE code, with its ``criterion='l1'`` default.
    - ``lol5_l2``: the same with ``criterion='l2'`` (MSE), the other option of that code.
    - ``drn`` (S3Net, using DRN / DeepRelight's ``networks.py``): only the first three
      slices (its ``forward`` returns three maps, so only weights 1/32, 1/16, 1/8 are used), L1.
    - ``edsr22`` / ``edsr54`` (EDSR's ``loss/vgg.py``): ``features[:8]``
      / ``features[:35]``, i.e. conv2_2 / conv5_4 *before* their ReLU (``layers=(7,)`` /
      ``(34,)``), ImageNet MeanShift with rgb_range 1, MSE.
    - ``srgan`` (SRGAN's content loss): ``features[:16]`` (ends at relu3_3, ``layers=(15,)``),
      MSE, no normalisation.

    ``layers``, ``layer_weights``, ``criterion`` and ``normalize`` override the preset. Given
    ``layers`` without ``layer_weights``, every layer weighs 1.

    Deliberate differences from the sources (same numbers, less work): the trunk runs once per
    input up to the deepest layer needed, the target side runs under ``torch.no_grad()`` (the
    sources detach it or build no graph for it), the trunk's ReLUs run out of place (stored
    pre-ReLU maps cannot be overwritten), and one VGG19 is shared by every instance on a device
    and is not a sub-module (not in ``state_dict()``, not moved by ``.to()``; fetched for the
    input's device). When a recipe holds several perceptual terms, :func:`shared_perceptual`
    (called by the recipe's ``LossMix``) runs the trunk once per input for all of them. The EDSR
    source's ``self.vgg.requires_grad = False`` sets a plain attribute
    and leaves the VGG parameters trainable there; here they are frozen (no effect on the value or
    on the gradient with respect to ``pred``).

    ``reduction`` (a library keyword, not a recipe parameter): ``"mean"`` (the batch mean),
    ``"sum"`` or ``"none"`` (each image's weighted distance, shape ``(N,)``).
    """

    references = ("johnson2016perceptual", "simonyan2015vgg", "ledig2017srgan", "lim2017edsr",
                  "wang2020drn", "yang2021s3net")
    paper = (
        "Johnson et al., ECCV 2016 (perceptual losses); Ledig et al., CVPR 2017 (SRGAN); "
        "Lim et al., CVPRW 2017 (EDSR); Wang et al., ECCVW 2020 (DRN); "
        "Yang et al., CVPRW 2021 (S3Net)"
    )
    backbones: tuple[str, ...] = ("vgg19",)
    reduces = True

    def __init__(
        self,
        preset: str = "lol5",
        layers: Sequence[int] | None = None,
        layer_weights: Sequence[float] | None = None,
        criterion: str | None = None,
        normalize: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.reduction = check_reduction("perceptual", reduction)
        if preset not in PRESETS:
            raise ValueError(
                f"perceptual: unknown preset '{preset}'{did_you_mean(str(preset), PRESETS)}"
                f" (presets: {', '.join(PRESETS)})"
            )
        base = PRESETS[preset]
        self.preset = preset
        self.layers = _check_layers(layers) if layers is not None else base.layers
        if layer_weights is None:
            layer_weights = base.layer_weights if layers is None else (1.0,) * len(self.layers)
        self.layer_weights = _check_weights(layer_weights, len(self.layers))
        self.criterion = base.criterion if criterion is None else criterion
        if self.criterion not in CRITERIA:
            raise ValueError(
                f"perceptual: criterion must be one of {', '.join(CRITERIA)}, got "
                f"{self.criterion!r}{did_you_mean(str(self.criterion), CRITERIA)}"
            )
        self.normalize = base.normalize if normalize is None else normalize
        if not isinstance(self.normalize, bool):
            raise ValueError(f"perceptual: normalize must be true or false, got {normalize!r}")
        # MeanShift as EDSR builds it: weight 1/std, bias -mean/std (rgb_range 1)
        std = torch.tensor(IMAGENET_STD)
        self.register_buffer("_scale", (1.0 / std).view(1, 3, 1, 1), persistent=False)
        mean = torch.tensor(IMAGENET_MEAN)
        self.register_buffer("_shift", (-mean / std).view(1, 3, 1, 1), persistent=False)
        # fails now (UserError with instructions), not at the first training step
        weights.ensure("vgg19")
        self._deepest = max(self.layers)

    @classmethod
    def resolved_params(cls, params: dict) -> dict:
        """The preset's layers, weights, criterion and normalisation where ``params`` has None."""
        base = PRESETS.get(params.get("preset", "lol5"))
        if base is None:
            return dict(params)
        layers = params.get("layers")
        weights_ = params.get("layer_weights")
        if weights_ is None:
            weights_ = base.layer_weights if layers is None else (1.0,) * len(layers)
        fill = {"layers": base.layers if layers is None else layers, "layer_weights": weights_,
                "criterion": base.criterion, "normalize": base.normalize}
        out = dict(params)
        for key, value in fill.items():
            if out.get(key) is None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def min_input_size(self) -> int:
        """2 ** (number of max-pools before the deepest compared layer)."""
        pools = sum(1 for i in (4, 9, 18, 27, 36) if i < self._deepest)
        return 2**pools

    def trunk(self, device: torch.device) -> nn.Sequential:
        """The shared VGG19 trunk on ``device``."""
        return weights.vgg19_features(device)

    def feature_maps(self, x: torch.Tensor, layers: Collection[int]) -> dict[int, torch.Tensor]:
        """Maps after each of ``layers`` (indices), one pass through the trunk, by index.

        ``x`` is normalised first when this loss normalises. On CUDA the trunk runs channels_last
        (see :func:`benchmark.weights.vgg19_features`); on the CPU, NCHW.
        """
        if self.normalize:
            x = x * self._scale.to(x) + self._shift.to(x)
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        deepest = max(layers)
        out: dict[int, torch.Tensor] = {}
        for index, module in enumerate(self.trunk(x.device)):
            if index > deepest:
                break
            x = F.relu(x) if isinstance(module, nn.ReLU) else module(x)
            if index in layers:
                out[index] = x
        return out

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Maps after each of ``self.layers``, one pass through the trunk."""
        maps = self.feature_maps(x, set(self.layers))
        return [maps[i] for i in self.layers]

    def check_inputs(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Raise ValueError for inputs this loss cannot compare (channels, shapes, size)."""
        check_pair("perceptual", pred, target, channels=3)
        size = self.min_input_size()
        if min(pred.shape[-2:]) < size:
            raise ValueError(
                f"perceptual: layers {list(self.layers)} need inputs of at least {size}x{size}, "
                f"got {pred.shape[-2]}x{pred.shape[-1]}"
            )

    def distance(
        self, pred_maps: dict[int, torch.Tensor], target_maps: dict[int, torch.Tensor],
        per_image: bool = False,
    ) -> torch.Tensor:
        """The weighted sum of per-layer distances between maps keyed by layer index (the
        batch mean, or ``per_image``: each image's, shape ``(N,)``)."""
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        first = pred_maps[self.layers[0]]
        if per_image:
            loss = first.new_zeros(first.shape[0])
            for w, i in zip(self.layer_weights, self.layers, strict=True):
                each = dist(pred_maps[i], target_maps[i], reduction="none")
                loss = loss + w * each.mean(dim=(1, 2, 3))
            return loss
        loss = first.new_zeros(())
        for w, i in zip(self.layer_weights, self.layers, strict=True):
            loss = loss + w * dist(pred_maps[i], target_maps[i])
        return loss

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, *, low: torch.Tensor | None = None
    ) -> torch.Tensor:
        self.check_inputs(pred, target)
        wanted = set(self.layers)
        pred_maps = self.feature_maps(pred, wanted)
        with torch.no_grad():
            target_maps = self.feature_maps(target, wanted)
        if self.reduction != "mean":
            return reduce_images(self.distance(pred_maps, target_maps, True), self.reduction)
        return self.distance(pred_maps, target_maps)


def shared_perceptual(
    terms: dict[str, nn.Module], pred: torch.Tensor, target: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Values of the :class:`PerceptualLoss` terms that can share trunk passes, by label.

    Terms with the same ``normalize`` setting see the same trunk input, so the trunk runs once
    for ``pred`` and once (under ``no_grad``) for ``target`` up to the deepest layer any of them
    compares, and every term measures its distance on those maps. The values equal separate
    calls exactly; gradients agree to float rounding (the trunk's backward runs once on summed
    map gradients instead of once per term). Groups of a single term are left out: the caller
    runs them as usual.
    """
    groups: dict[bool, list[tuple[str, PerceptualLoss]]] = {}
    for label, term in terms.items():
        if isinstance(term, PerceptualLoss):
            groups.setdefault(term.normalize, []).append((label, term))
    out: dict[str, torch.Tensor] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        for _, term in members:
            term.check_inputs(pred, target)
        wanted = {i for _, term in members for i in term.layers}
        first = members[0][1]
        pred_maps = first.feature_maps(pred, wanted)
        with torch.no_grad():
            target_maps = first.feature_maps(target, wanted)
        for label, term in members:
            out[label] = term.distance(pred_maps, target_maps)
    return out


def _check_layers(layers: Sequence[int]) -> tuple[int, ...]:
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(f"perceptual: layers must be a non-empty list of indices, got {layers!r}")
    for item in layers:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < VGG19_DEPTH:
            raise ValueError(
                f"perceptual: layers holds {item!r}; each must be a whole number from 0 to "
                f"{VGG19_DEPTH - 1} (an index of torchvision's vgg19().features)"
            )
    if any(b <= a for a, b in zip(layers, layers[1:], strict=False)):
        raise ValueError(f"perceptual: layers must be strictly increasing, got {list(layers)}")
    return tuple(layers)


def _check_weights(values: Sequence[float], count: int) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"perceptual: layer_weights must be a list of numbers, got {values!r}")
    if len(values) != count:
        raise ValueError(
            f"perceptual: layer_weights has {len(values)} values but there are {count} layers"
        )
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or not item >= 0:
            raise ValueError(f"perceptual: layer_weights must be numbers >= 0, got {item!r}")
    return tuple(float(v) for v in values)
