"""Gradient shares: each weighted loss term's gradient with respect to the network output
(``protocol.grad_shares``), logged by :class:`benchmark.run.loop.Trainer` every ``log_every``
iterations of a multi-term recipe."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def term_gradient_norms(
    weights: dict[str, float], terms: dict[str, torch.Tensor], pred: torch.Tensor,
    labels: Sequence[str],
) -> torch.Tensor:
    """``||d(w_k L_k)/d pred||_2`` for each label, one backward through the loss graph each.

    Only the graph between the terms and ``pred`` is traversed (``torch.autograd.grad`` with
    ``inputs=pred``, graph retained): the network's backward and the parameters' ``.grad`` are
    untouched. A term without a path to ``pred`` (or with weight 0) has norm 0.
    """
    norms = []
    for label in labels:
        value, weight = terms[label], float(weights[label])
        grad = None
        if weight != 0.0 and value.requires_grad:
            (grad,) = torch.autograd.grad(value, pred, retain_graph=True, allow_unused=True)
        norms.append(pred.new_zeros(()) if grad is None else weight * grad.float().norm())
    return torch.stack(norms).detach()


def _share_columns(labels: Sequence[str], norms: torch.Tensor | None) -> dict[str, float]:
    """``gradnorm_<label>`` and ``gradshare_<label>`` (norm / sum of the terms' norms)."""
    if norms is None:  # not computed at this row (cannot happen in a full run): leave blank
        return {f"{k}_{lb}": float("nan") for k in ("gradnorm", "gradshare") for lb in labels}
    values = norms.double().cpu().tolist()
    total = sum(values)
    out = {f"gradnorm_{lb}": v for lb, v in zip(labels, values, strict=True)}
    out.update({f"gradshare_{lb}": (v / total if total > 0 else float("nan"))
                for lb, v in zip(labels, values, strict=True)})
    return out


__all__ = ["term_gradient_norms"]
