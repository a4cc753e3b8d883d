"""Pretrained backbones (VGG19 for perceptual losses, AlexNet for LPIPS): cache, checksum, policy.

The files are torchvision's published ImageNet weights, kept in the normal torch hub cache
(``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``), under the file names
of torchvision's weight enums (``VGG19_Weights.IMAGENET1K_V1``, ``AlexNet_Weights.IMAGENET1K_V1``).

Policy:

- A missing file is downloaded from torchvision's URL. If that fails (offline), a
  :class:`UserError` names the file, the exact path it must be placed at, and how to fetch it on a
  connected machine (``python -m benchmark weights``, then copy the file).
- "Official" means the file's full sha256 equals the pinned value below. torch hub file names carry
  only the first 8 hex digits of the sha256; the full values were cross-checked against several
  independent public projects that pin them (each one starts with the file-name prefix, and the
  byte sizes agree with torchvision's ``_file_size`` metadata: 548.051 MiB and 233.087 MiB).
  The whole file is hashed; nothing weaker (prefix, size) is accepted as official.
- A non-official file is refused unless ``BENCHMARK_ALLOW_UNOFFICIAL_WEIGHTS=1``; then it is used
  and the run records ``"official": false``. A freshly downloaded file that does not match is
  deleted and refused whatever the variable says (a corrupt download, not a user's choice).

Only the ``features.*`` tensors of each file are read (the perceptual losses use VGG19's
convolutional trunk; LPIPS uses AlexNet's); the classifier weights in the official files are
ignored, so a file holding only ``features.*`` keys (what the test fixture plants) loads the same.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from benchmark.errors import UserError


def _mismatch(exc: RuntimeError) -> UserError:
    """torchvision built for another torch (e.g. a CPU-only torch next to a CUDA torchvision,
    as a ``pip install -e .`` into a fresh environment can pair them): its compiled operators
    fail to register when it is imported (``operator torchvision::nms does not exist``)."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    try:  # the pair lossbench pins, as its installed metadata says
        required = metadata.requires("lossbench") or []
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        required = []
    pins = [r.split(";")[0].replace(" ", "") for r in required
            if r.split("=")[0].strip() in ("torch", "torchvision")]
    pair = (f"`pip install {' '.join(pins)}`" if pins else
            "the torch and torchvision that requirements.lock pins, in one `pip install`")
    return UserError(
        f"torchvision {version('torchvision')} does not match torch {version('torch')}: importing "
        f"it failed with '{str(exc).strip().splitlines()[-1]}', which means its compiled "
        f"operators were built for another torch build. Install the matching pair from one index: "
        f"{pair} (for CPU-only builds add --index-url "
        f"https://download.pytorch.org/whl/cpu), or build the environment from requirements.lock "
        f"(`make venv`)."
    )


try:
    from torchvision.models import AlexNet_Weights, VGG19_Weights, WeightsEnum, alexnet, vgg19
except RuntimeError as _exc:
    if "torchvision::" not in str(_exc):
        raise
    raise _mismatch(_exc) from None

ALLOW_ENV = "BENCHMARK_ALLOW_UNOFFICIAL_WEIGHTS"
DOWNLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Backbone:
    """One pretrained backbone: where torchvision publishes it and what it must hash to."""

    name: str
    weights: WeightsEnum
    sha256: str  # full official sha256 of the published file
    size: int  # bytes of the published file

    @property
    def url(self) -> str:
        return self.weights.url

    @property
    def file_name(self) -> str:
        return os.path.basename(urlparse(self.url).path)


BACKBONES: dict[str, Backbone] = {
    "vgg19": Backbone(
        "vgg19",
        VGG19_Weights.IMAGENET1K_V1,
        "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        574_673_361,
    ),
    "alexnet": Backbone(
        "alexnet",
        AlexNet_Weights.IMAGENET1K_V1,
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        244_408_911,
    ),
}


@dataclass(frozen=True)
class WeightsInfo:
    """A cached file that passed the policy."""

    name: str
    path: Path
    sha256: str
    official: bool


# (path, size, mtime_ns) -> sha256, so a 550 MB file is hashed once per process
_SHA_CACHE: dict[tuple[str, int, int], str] = {}
# (path, sha256, device) -> the VGG19 trunk
_VGG_CACHE: dict[tuple[str, str, str], nn.Sequential] = {}
# name -> last info that passed the policy (for weights_record)
_USED: dict[str, WeightsInfo] = {}


def clear_cache() -> None:
    """Forget every hashed file and loaded trunk (tests switch TORCH_HOME)."""
    _SHA_CACHE.clear()
    _VGG_CACHE.clear()
    _USED.clear()


def _backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)})")
    return BACKBONES[name]


def checkpoint_dir() -> Path:
    """The torch hub checkpoint folder, read now (it follows ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_path(name: str) -> Path:
    """Where the file of backbone ``name`` must be."""
    return checkpoint_dir() / _backbone(name).file_name


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file (cached per process by path, size and modification time)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def unofficial_allowed() -> bool:
    """Whether ``BENCHMARK_ALLOW_UNOFFICIAL_WEIGHTS`` is set to a true value."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _download(url: str, dst: Path) -> None:
    """torch hub's downloader (temp file, then rename) with a socket timeout."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(
            url, str(dst), hash_prefix=None, progress=sys.stderr.isatty()
        )
    finally:
        socket.setdefaulttimeout(previous)


#: what a run's missing-weights message adds: the way to run without any pretrained file
OFFLINE_HINT = (
    "Offline, a recipe without a perceptual term (l1, charbonnier, ssim, ...) needs no "
    "pretrained file at all with `--metrics psnr,ssim` (LPIPS, which needs AlexNet, left out)."
)


class MissingWeightsError(UserError):
    """A backbone file that is not cached and could not be downloaded."""

    def __init__(self, bb: Backbone, path: Path, reason: str) -> None:
        super().__init__(_missing_message(bb, path, reason))
        self.backbone, self.path, self.reason = bb, path, reason


def _missing_message(bb: Backbone, path: Path, reason: str) -> str:
    return (
        f"pretrained weights for {bb.name} are missing: {bb.file_name} is not at {path} and "
        f"could not be downloaded from {bb.url} ({reason}). On a machine with a network, run "
        f"`python -m benchmark weights` (it saves {bb.file_name} under "
        f"$TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints), or download "
        f"{bb.url} directly; then copy "
        f"{bb.file_name} to {path}."
    )


def ensure(name: str, *, download: bool = True) -> WeightsInfo:
    """Make sure backbone ``name`` is cached and passes the checksum policy.

    Args:
        name: ``"vgg19"`` or ``"alexnet"``.
        download: try the download when the file is missing.

    Raises:
        UserError: missing and not downloadable, or not official without the opt-in variable.
    """
    bb = _backbone(name)
    path = weight_path(name)
    fresh = False
    if not path.is_file():
        if not download:
            raise MissingWeightsError(bb, path, "downloads were not requested")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"lossbench: downloading {bb.url} to {path}", file=sys.stderr)
            _download(bb.url, path)
        except Exception as exc:  # offline, DNS, HTTP, disk: all mean "not available here"
            raise MissingWeightsError(bb, path, f"{type(exc).__name__}: {exc}") from None
        fresh = True
    sha = file_sha256(path)
    official = sha == bb.sha256
    if not official:
        if fresh:
            path.unlink(missing_ok=True)
            raise UserError(
                f"the download of {bb.url} is corrupt: its sha256 is {sha}, expected {bb.sha256}; "
                f"the file was deleted. Try `python -m benchmark weights` again."
            )
        if not unofficial_allowed():
            raise UserError(
                f"{path} is not the official torchvision file {bb.file_name}: its sha256 is {sha}, "
                f"expected {bb.sha256} ({type(bb.weights).__name__}.{bb.weights.name}). Delete it "
                f"and run `python -m benchmark weights` to fetch the official file, or set "
                f'{ALLOW_ENV}=1 to use it anyway (runs then record "official": false and their '
                f"perceptual/LPIPS figures are marked not comparable)."
            )
    info = WeightsInfo(name, path, sha, official)
    _USED[name] = info
    return info


def ensure_all(names: Iterable[str]) -> list[WeightsInfo]:
    """:func:`ensure` every backbone in ``names``; the files that are missing are reported
    together, in one message that also says how to run without them (:data:`OFFLINE_HINT`).

    Raises:
        UserError: as :func:`ensure`; for missing files, one naming each of them.
    """
    infos, missing = [], []
    for name in dict.fromkeys(names):
        try:
            infos.append(ensure(name))
        except MissingWeightsError as exc:
            missing.append(exc)
    if len(missing) == 1:
        raise UserError(f"{missing[0]} {OFFLINE_HINT}")
    if missing:
        files = " and ".join(f"{m.backbone.file_name} ({m.backbone.name})" for m in missing)
        urls = " and ".join(m.backbone.url for m in missing)
        folder = missing[0].path.parent
        raise UserError(
            f"pretrained weights are missing: {files} are not in {folder} and could not be "
            f"downloaded ({missing[0].reason}). On a machine with a network, run `python -m "
            f"benchmark weights` (it saves them under $TORCH_HOME/hub/checkpoints, by default "
            f"~/.cache/torch/hub/checkpoints), or download {urls} directly; then copy them to "
            f"{folder}. {OFFLINE_HINT}"
        )
    return infos


def _features_state_dict(name: str, info: WeightsInfo) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(info.path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"{info.path}: cannot read it as a torch checkpoint ({type(exc).__name__}: {exc}); "
            f"delete it and run `python -m benchmark weights`."
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"{info.path}: expected a state dict, got {type(state).__name__}")
    feats = {k: v for k, v in state.items() if k.startswith("features.")}
    if not feats:
        raise UserError(f"{info.path}: holds no 'features.*' tensors, so it is not {name} weights")
    return feats


def _load_trunk(trunk: nn.Sequential, feats: dict[str, torch.Tensor], info: WeightsInfo) -> None:
    local = {k[len("features.") :]: v for k, v in feats.items()}
    expected = trunk.state_dict()
    problems = [k for k in expected if k not in local]
    problems += [k for k in local if k not in expected]
    problems += [
        f"{k} {tuple(local[k].shape)}!={tuple(v.shape)}"
        for k, v in expected.items()
        if k in local and local[k].shape != v.shape
    ]
    if problems:
        raise UserError(
            f"{info.path}: its features do not fit torchvision's {info.name} "
            f"(features.{', features.'.join(problems[:4])})"
        )
    trunk.load_state_dict(local, assign=True)


def canonical_device(device: torch.device | str | None) -> torch.device:
    """``None`` -> cpu; a bare ``cuda`` -> ``cuda:<current>`` (one cache entry per real device)."""
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def vgg19_features(device: torch.device | str | None = None) -> nn.Sequential:
    """The 37-module ``features`` of torchvision's VGG19 with the cached ImageNet weights.

    Eval mode, ``requires_grad=False``, cached per process, weights file and device: every
    perceptual term of a recipe shares ONE trunk. Its ReLUs are out of place (``inplace=False``)
    so a feature map stored before a ReLU is never overwritten by it. On CUDA its weights are
    channels_last (the losses feed it channels_last inputs there); on the CPU everything stays
    NCHW, so CPU values are those of the straightforward computation.
    """
    dev = canonical_device(device)
    info = ensure("vgg19")
    key = (str(info.path), info.sha256, str(dev))
    if key not in _VGG_CACHE:
        with torch.device("meta"):
            trunk = vgg19(weights=None).features
        _load_trunk(trunk, _features_state_dict("vgg19", info), info)
        for module in trunk:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        trunk = trunk.to(dev).eval().requires_grad_(False)
        if dev.type == "cuda":  # tensor-core convolutions want NHWC (values: float rounding)
            trunk = trunk.to(memory_format=torch.channels_last)
        _VGG_CACHE[key] = trunk
    return _VGG_CACHE[key]


def alexnet_state_dict() -> dict[str, torch.Tensor]:
    """AlexNet's ``features.*`` tensors (CPU) from the cached file, checked against the policy.

    Keys keep torchvision's names (``features.0.weight`` ...); they fit ``alexnet().features``
    and the ``lpips`` package's AlexNet slices (which reuse torchvision's module indices).
    """
    info = ensure("alexnet")
    feats = _features_state_dict("alexnet", info)
    with torch.device("meta"):
        trunk = alexnet(weights=None).features
    _load_trunk(trunk, feats, info)  # validates keys and shapes
    return feats


def weights_record(names: list[str] | tuple[str, ...]) -> dict[str, dict[str, object]]:
    """``{"vgg19": {"file", "sha256", "official"}, ...}`` for the backbones a run used."""
    record: dict[str, dict[str, object]] = {}
    for name in names:
        info = _USED.get(name)
        if info is None or info.path != weight_path(name):
            info = ensure(name, download=False)
        record[name] = {"file": info.path.name, "sha256": info.sha256, "official": info.official}
    return record


def command_weights(args: argparse.Namespace) -> int:
    """``python -m benchmark weights [--check]``: report (and fetch) the pretrained backbones.

    Prints one row per backbone: name, file, path, sha256, official. Returns 0 when every file is
    present and official, 1 otherwise (missing under ``--check``, or not official).
    """
    rows: list[tuple[str, str, str, str, str]] = []
    ok = True
    for name, bb in BACKBONES.items():
        path = weight_path(name)
        if not path.is_file() and not args.check:
            ensure(name, download=True)  # raises UserError with the offline instructions
        if not path.is_file():
            rows.append((name, bb.file_name, str(path), "-", "missing"))
            ok = False
            continue
        sha = file_sha256(path)
        official = sha == bb.sha256
        ok = ok and official
        rows.append((name, bb.file_name, str(path), sha, "yes" if official else "NO"))
    header = ("backbone", "file", "path", "sha256", "official")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not ok:
        print(
            "lossbench: some backbones are missing or not official; runs need the official files "
            f"(or {ALLOW_ENV}=1, recorded as not comparable).",
            file=sys.stderr,
        )
    return 0 if ok else 1
