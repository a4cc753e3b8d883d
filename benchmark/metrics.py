"""Per-image quality metrics on NCHW float tensors in [0, 1] (conventions: docs/METRICS.md),
and :data:`METRICS`, the registry every other module reads.

- :func:`psnr`: float64, data_range 1, equal to ``skimage.metrics.peak_signal_noise_ratio``.
- :func:`ssim`: batched float64 torch code equal to ``skimage.metrics.structural_similarity(...,
  channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)``.
- :class:`LPIPSMetric`: the ``lpips`` package, AlexNet, v0.1, inputs scaled to [-1, 1], with the
  AlexNet trunk loaded through :mod:`benchmark.weights` (checksum and offline policy).
- :func:`gt_mean`: the GT-mean rescaling of the LLIE literature, for the extra columns.

Importing this module is cheap (no torch, no lpips): the command line and the analysis read
the registry without paying for them; the functions import torch when first called.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage's value for gaussian_weights=True: an 11-tap window at sigma 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
#: cv2.COLOR_BGR2GRAY weights applied to (R, G, B) planes, as the GT-mean scripts do (see gt_mean)
GT_MEAN_GRAY = (0.114, 0.587, 0.299)

# (weights file, sha256, device) -> the LPIPS network (building one costs seconds)
_LPIPS_CACHE: dict[tuple[str, str, str], Any] = {}


def _check(name: str, pred: torch.Tensor, ref: torch.Tensor) -> None:
    if pred.dim() != 4 or pred.shape != ref.shape:
        raise ValueError(
            f"{name}: expected two NCHW tensors of the same shape, got {tuple(pred.shape)} "
            f"and {tuple(ref.shape)}"
        )


def psnr(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, ``10 log10(1 / mse)`` in float64 (``inf`` for identical images)."""
    import torch

    _check("psnr", pred, ref)
    mse = (pred.double() - ref.double()).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """scipy.ndimage's 1-D gaussian: radius int(truncate * sigma + 0.5), normalised to sum 1."""
    import torch

    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 / SSIM_SIGMA**2 * x * x)
    return g / g.sum()


def _filter_valid(t: torch.Tensor, g: torch.Tensor, dim: int) -> torch.Tensor:
    """Correlate ``t`` with the 1-D window ``g`` along ``dim``, valid part only.

    A weighted sum of shifted views: exact in float64 and much faster on CPU than a float64
    depthwise ``conv2d``.
    """
    taps = g.tolist()
    out_len = t.shape[dim] - len(taps) + 1
    acc = taps[0] * t.narrow(dim, 0, out_len)
    for i in range(1, len(taps)):
        acc = acc + taps[i] * t.narrow(dim, i, out_len)
    return acc


def ssim(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (float64), per channel then averaged over channels.

    Matches skimage's gaussian-weighted SSIM: an 11x11 separable gaussian (sigma 1.5, truncate
    3.5), population covariances, C1 = 0.01^2, C2 = 0.03^2, and the mean taken over the map with
    a border of 5 pixels cropped. skimage filters with ``mode='reflect'`` and then crops exactly
    the pixels the padding reaches, so a valid (unpadded) convolution gives the same numbers.

    Raises:
        ValueError: shapes differ, or an image side is smaller than the 11-pixel window.
    """
    import torch

    _check("ssim", pred, ref)
    g = _gaussian_window(torch.float64, pred.device)
    k = g.numel()
    if min(pred.shape[-2:]) < k:
        raise ValueError(
            f"ssim: images must be at least {k}x{k} (the gaussian window), got "
            f"{pred.shape[-2]}x{pred.shape[-1]}"
        )
    x, y = pred.double(), ref.double()
    n, c = x.shape[:2]
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (N, 5C, H, W)
    stack = _filter_valid(_filter_valid(stack, g, -1), g, -2)
    ux, uy, uxx, uyy, uxy = stack.split(c, dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s_map.mean(dim=(2, 3)).mean(dim=1).view(n)


def gt_mean(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Rescale each prediction to its reference's mean grey level, then clip to [0, 1].

    ``out = clip(pred * mean_gray(ref) / mean_gray(pred), 0, 1)``, Retinexformer's GT-mean
    protocol (``Enhancement/test_from_dataset.py --GT_mean``, Cai et al., ICCV 2023). It computes
    the grey level with ``cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)`` on RGB arrays, i.e. weights
    0.114, 0.587, 0.299 on R, G, B (not the Rec. 601 order); this follows it exactly so the column
    is comparable with Retinexformer's GT-mean figures. Other papers' "GT-mean" differ: LLFlow's
    test code rescales by the mean of the unclamped output and quantises to uint8 before PSNR,
    and KinD does not rescale the output at all (docs/METRICS.md measures the differences). An
    all-black prediction (mean 0) is returned unchanged instead of becoming NaN. The ratio is
    computed in float64.
    """
    import torch

    _check("gt_mean", pred, ref)
    if pred.shape[1] != 3:
        raise ValueError(f"gt_mean: expected RGB images (3 channels), got {pred.shape[1]}")
    w = torch.tensor(GT_MEAN_GRAY, dtype=torch.float64, device=pred.device).view(1, 3, 1, 1)
    mean_pred = (pred.double() * w).sum(dim=1).mean(dim=(1, 2))
    mean_ref = (ref.double() * w).sum(dim=1).mean(dim=(1, 2))
    ratio = torch.where(mean_pred > 0, mean_ref / mean_pred.clamp_min(1e-300), 1.0)
    return (pred.double() * ratio.view(-1, 1, 1, 1)).clamp(0.0, 1.0).to(pred.dtype)


def _build_lpips(device: torch.device) -> Any:
    import lpips  # noqa: PLC0415 - seconds to import; only runs that score LPIPS need it
    from torch import nn

    from benchmark import weights

    feats = weights.alexnet_state_dict()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True)
    # the package's slices hold torchvision's modules under their original indices
    by_index = {int(n): m for part in model.net.children() for n, m in part.named_children()}
    trunk = nn.Sequential(*(by_index[i] for i in range(len(by_index))))
    trunk.load_state_dict({k[len("features.") :]: v for k, v in feats.items()})
    return model.to(device).eval().requires_grad_(False)


class LPIPSMetric:
    """LPIPS (``lpips`` package, AlexNet, v0.1) per image, inputs in [0, 1] scaled to [-1, 1].

    The package is built with a random trunk (``pnet_rand=True``) and the AlexNet features are
    then loaded from :func:`benchmark.weights.alexnet_state_dict`, so the checksum and offline
    policy apply; the package's own v0.1 linear-layer weights ship inside it. The network is
    built once per process, weights file and device (building one takes seconds on a CPU).
    """

    backbones: tuple[str, ...] = ("alexnet",)

    def __init__(self, device: torch.device | str | None = None) -> None:
        from benchmark import weights

        self.device = weights.canonical_device(device)
        info = weights.ensure("alexnet")
        key = (str(info.path), info.sha256, str(self.device))
        if key not in _LPIPS_CACHE:
            _LPIPS_CACHE[key] = _build_lpips(self.device)
        self.model = _LPIPS_CACHE[key]

    def __call__(self, pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image, shape ``[N]`` (float32, on the metric's device)."""
        import torch

        _check("lpips", pred, ref)
        with torch.no_grad():
            x = pred.to(self.device, torch.float32) * 2 - 1
            y = ref.to(self.device, torch.float32) * 2 - 1
            return self.model(x, y).reshape(-1)


def lpips(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS on ``pred``'s device (:class:`LPIPSMetric`, built once per device)."""
    return LPIPSMetric(pred.device)(pred, ref)




@dataclass(frozen=True)
class Metric:
    """One test metric: how it is computed and how every table, figure and test treats it.

    Attributes:
        name: the key in ``per_image.csv``, ``metrics.json`` and every frame.
        fn: ``fn(pred, ref) -> Tensor[N]``, one value per image of NCHW images in [0, 1].
        higher_is_better: the direction ranks, bold, probabilities of improvement and arrows
            follow (differences are always ``recipe - baseline``).
        label: the name tables and figures print (``PSNR``, ``GT-mean PSNR``).
        unit: ``dB`` or empty.
        decimals: decimals of the tables' and figures' means, SDs, intervals and differences.
        fine_decimals: decimals of one run's value (the end-of-run table) and of the small
            differences the reference check and the selection table print.
        needs_weights: pretrained files :func:`fn` loads (:mod:`benchmark.weights` names); a
            run checks them before training.
        optional: ``--metrics`` may leave it out (it needs weights a machine may lack); a run
            folder then records null, or no column, for it.
        gt_mean_of: for a GT-mean variant, the metric whose function it applies to the
            GT-mean rescaled prediction (:func:`gt_mean`); computed whenever that one is, never
            chosen on its own.
        headline: a headline metric: the compact table's columns and differences, ranks, the
            difference figures (GT-mean variants are extra columns, never the headline).
        summarized: the statistics summarise it (means, intervals, tests against the baseline
            and their Holm family, ranks, the reference check); else recorded per image only.
    """

    name: str
    fn: Callable[[Any, Any], Any]
    higher_is_better: bool
    label: str
    unit: str = ""
    decimals: int = 3
    fine_decimals: int = 4
    needs_weights: tuple[str, ...] = ()
    optional: bool = False
    gt_mean_of: str | None = None
    headline: bool = True
    summarized: bool = True

    @property
    def heading(self) -> str:
        """The label with its unit: ``PSNR (dB)``, ``SSIM``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def arrow(self) -> str:
        """``↑`` when higher is better, else ``↓``."""
        return "↑" if self.higher_is_better else "↓"


#: every metric, in the order of the per-image columns and of every table. Adding a metric is
#: one entry here plus its tests against an outside reference (tests/test_metrics.py); the
#: run, the record readers, the statistics, tables and figures read it from here. A metric added
#: after run folders exist should be ``optional``, so older folders (without it) still load;
#: a new ``--metrics`` choice changes the default choice and so the config of new default runs.
METRICS: dict[str, Metric] = {
    "psnr": Metric("psnr", psnr, True, "PSNR", "dB", decimals=2, fine_decimals=2),
    "ssim": Metric("ssim", ssim, True, "SSIM"),
    "lpips": Metric("lpips", lpips, False, "LPIPS", needs_weights=("alexnet",), optional=True),
    "psnr_gtmean": Metric("psnr_gtmean", psnr, True, "GT-mean PSNR", "dB", decimals=2,
                          fine_decimals=2, gt_mean_of="psnr", headline=False),
    "ssim_gtmean": Metric("ssim_gtmean", ssim, True, "GT-mean SSIM", gt_mean_of="ssim",
                          headline=False, summarized=False),
}


def recorded() -> tuple[str, ...]:
    """Every metric a run records per image (``per_image.csv``'s columns, in order)."""
    return tuple(METRICS)


def required() -> tuple[str, ...]:
    """The metrics every finished run records (the others may be null or absent)."""
    return tuple(n for n, m in METRICS.items() if not _optional(m))


def choices() -> tuple[str, ...]:
    """What ``--metrics`` chooses from (the GT-mean variants follow their metric)."""
    return tuple(n for n, m in METRICS.items() if m.gt_mean_of is None)


def always() -> tuple[str, ...]:
    """The choices every run computes (``--metrics`` must name them)."""
    return tuple(n for n in choices() if not METRICS[n].optional)


def summarized() -> tuple[str, ...]:
    """The metrics the statistics summarise (summary columns, tests, Holm family, ranks)."""
    return tuple(n for n, m in METRICS.items() if m.summarized)


def headline() -> tuple[str, ...]:
    """The headline metrics: compact table, differences to the baseline, ranks."""
    return tuple(n for n, m in METRICS.items() if m.headline)


def chosen(names: Iterable[str]) -> tuple[str, ...]:
    """The metrics a run with ``--metrics names`` computes, in registry order: the names and
    their GT-mean variants."""
    names = set(names)
    return tuple(n for n, m in METRICS.items() if (m.gt_mean_of or n) in names)


def backbones(names: Iterable[str]) -> set[str]:
    """The pretrained files the metrics ``names`` need."""
    return {w for n in chosen(names) for w in METRICS[n].needs_weights}


def _optional(metric: Metric) -> bool:
    return metric.optional or (metric.gt_mean_of is not None
                               and METRICS[metric.gt_mean_of].optional)


def evaluate(
    pred: torch.Tensor, ref: torch.Tensor, names: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Every chosen metric per image, in registry order (``{name: Tensor[N]}``).

    ``names`` are ``--metrics`` choices (default: those needing no pretrained weights); a
    GT-mean variant follows its metric. ``pred`` is clamped to [0, 1] first, as the LLIE
    evaluation scripts clamp the network output.
    """
    _check("evaluate", pred, ref)
    pred = pred.clamp(0.0, 1.0)
    adjusted = None
    out = {}
    for name in chosen(always() if names is None else names):
        metric = METRICS[name]
        if metric.gt_mean_of is not None and adjusted is None:
            adjusted = gt_mean(pred, ref)
        out[name] = metric.fn(pred if metric.gt_mean_of is None else adjusted, ref)
    return out


__all__ = ["METRICS", "LPIPSMetric", "Metric", "always", "backbones", "choices", "chosen",
           "evaluate", "gt_mean", "headline", "lpips", "psnr", "recorded", "required", "ssim",
           "summarized"]
