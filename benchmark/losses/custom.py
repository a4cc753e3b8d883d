"""A user's own loss, named in a recipe as ``file.py:Class`` or ``package.module:Class``.

``file.py`` is relative to the recipe's folder (or absolute); ``package.module`` must be
importable. :func:`load_custom` imports the class once and returns a :class:`CustomLoss`: the
class, where it came from and the sha256 of its source file (and the package version for a
module), which the recipe records and the config hash covers, so an edited loss never hides
behind a cached result. :func:`check_contract` tries the built loss once on random batches
before training (the same contract as the built-in losses).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import did_you_mean

_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_CLASS = re.compile(r"^[A-Za-z_]\w*$")


def is_custom(name: str) -> bool:
    """Whether a recipe's loss name refers to a user's loss (it holds a ``:``)."""
    return isinstance(name, str) and ":" in name


@dataclass(frozen=True)
class CustomLoss:
    """A user's loss class and its provenance."""

    cls: type[nn.Module]
    origin: str  # the resolved file, or the module name
    sha256: str | None  # of the source file (None for a module without a file)
    version: str | None  # the distribution version of a module's top-level package

    def provenance(self) -> dict[str, str]:
        """What the recipe records next to the loss (and the config hash covers)."""
        out = {"origin": self.origin}
        if self.sha256:
            out["sha256"] = self.sha256
        if self.version:
            out["version"] = self.version
        return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _explain(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError at line {exc.lineno}: {exc.msg}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_custom(name: str, base_dir: Path) -> CustomLoss:
    """Import the class a ``file.py:Class`` / ``package.module:Class`` name refers to.

    Raises:
        ValueError: a one-line reason (malformed name, missing file, import error, no such
            class, not an ``nn.Module``); the caller adds the recipe file and key path.
    """
    target, _, cls_name = name.rpartition(":")
    if not target or not _CLASS.match(cls_name):
        raise ValueError(f"'{name}': expected 'file.py:ClassName' or 'package.module:ClassName'")
    if target.endswith(".py"):
        path = Path(target) if Path(target).is_absolute() else base_dir / target
        if not path.is_file():
            raise ValueError(f"loss file {path} does not exist (a relative path is taken from "
                             f"the recipe's folder, {base_dir})")
        try:
            digest = _sha256(path)
        except OSError as exc:
            raise ValueError(f"cannot read the loss file {path} ({exc})") from None
        module_name = f"lossbench_user_{digest[:16]}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - any failure of the user's file is reported
                raise ValueError(f"importing {path} failed: {_explain(exc)}") from None
            sys.modules[module_name] = module
        origin, version, where = str(path.resolve()), None, str(path)
    else:
        if not _MODULE.match(target):
            raise ValueError(f"'{name}': expected 'file.py:ClassName' or "
                             "'package.module:ClassName'")
        try:
            module = importlib.import_module(target)
        except Exception as exc:  # noqa: BLE001 - any failure of the user's module is reported
            raise ValueError(f"importing module {target} failed: {_explain(exc)}") from None
        file = getattr(module, "__file__", None)
        digest = _sha256(Path(file)) if file and Path(file).is_file() else None
        top = target.split(".")[0]
        try:
            version = importlib.metadata.version(top)
        except importlib.metadata.PackageNotFoundError:
            version = getattr(sys.modules.get(top), "__version__", None)
        origin, where = target, f"module {target}"
    cls = getattr(module, cls_name, None)
    if cls is None:
        defined = sorted(k for k, v in vars(module).items()
                         if inspect.isclass(v) and issubclass(v, nn.Module)
                         and v.__module__ == module.__name__)
        raise ValueError(f"{where} has no class '{cls_name}'{did_you_mean(cls_name, defined)} "
                         f"(its nn.Module classes: "
                         f"{', '.join(defined) or 'none'})")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise ValueError(f"{where}: '{cls_name}' is not a torch.nn.Module subclass")
    return CustomLoss(cls, origin, digest, None if version is None else str(version))


def custom_params(cls: type[nn.Module]) -> dict[str, inspect.Parameter] | None:
    """The keyword parameters of the class's constructor (None when it takes ``**kwargs``)."""
    sig = inspect.signature(cls.__init__)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {k: p for k, p in sig.parameters.items() if k != "self" and p.kind in kinds}


def check_contract(loss: nn.Module, size: int) -> None:
    """Try ``loss`` once: float32 NCHW in [0, 1] of ``size`` pixels, batch 2.

    It must accept ``forward(pred, target, *, low=None)``, return a finite scalar tensor with a
    finite, non-zero gradient with respect to ``pred`` on a random batch, and give a perfect
    prediction (``pred == target``) a value no higher than a random one. The global RNG is left
    as it was.

    Raises:
        ValueError: the first rule broken, in one sentence.
    """
    try:
        inspect.signature(loss.forward).bind(None, None, low=None)
    except TypeError:
        sig = inspect.signature(loss.forward)
        raise ValueError(f"forward{sig} does not match forward(pred, target, *, low=None)") \
            from None
    gen = torch.Generator().manual_seed(0)
    shape = (2, 3, size, size)
    pred = torch.rand(shape, generator=gen).requires_grad_(True)
    target, low = torch.rand(shape, generator=gen), 0.2 * torch.rand(shape, generator=gen)
    with torch.random.fork_rng(devices=[]):
        value = _call(loss, pred, target, low, "a random batch")
        if not value.requires_grad:
            raise ValueError("its value on a random batch does not depend on pred (no gradient)")
        (grad,) = torch.autograd.grad(value, pred, allow_unused=True)
        if grad is None or not bool(torch.isfinite(grad).all()) or not bool(grad.abs().sum()):
            what = "a zero" if grad is not None and bool(torch.isfinite(grad).all()) else "no"
            if grad is not None and not bool(torch.isfinite(grad).all()):
                what = "a non-finite"
            raise ValueError(f"it gives {what} gradient with respect to pred on a random batch")
        with torch.no_grad():
            perfect = _call(loss, target.clone(), target, low, "a perfect prediction")
    good, bad = float(perfect), float(value.detach())
    if good > bad + 1e-6 * max(1.0, abs(bad)):
        raise ValueError(f"a perfect prediction scores {good:.6g}, more than a random "
                         f"one ({bad:.6g}): a loss must not prefer wrong outputs")


def _call(loss: nn.Module, pred: torch.Tensor, target: torch.Tensor, low: torch.Tensor,
          what: str) -> torch.Tensor:
    try:
        value = loss(pred, target, low=low)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's loss is reported
        raise ValueError(f"calling it on {what} (float32 NCHW {tuple(pred.shape)}, in [0, 1]) "
                         f"raised {_explain(exc)}") from None
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"it returns {type(value).__name__}, not a tensor, on {what}")
    if value.numel() != 1 or value.dim() > 1:
        raise ValueError(f"it returns a tensor of shape {tuple(value.shape)} on {what}; "
                         "a loss returns a scalar")
    if not math.isfinite(float(value.detach())):
        raise ValueError(f"it returns {float(value.detach())} on {what}")
    return value.reshape(())


__all__ = ["CustomLoss", "check_contract", "custom_params", "is_custom", "load_custom"]
