"""Optimisers for the trainer: SGD (momentum, Nesterov), Adam, AdamW and AdaBound, and SGD with
Muon for the convolution filters.

`build_optimizer` splits the model's parameters into a body and a head group, so the head can
learn faster (`optim.head_lr_mult`) and the body can be frozen for the first epochs. Each group
carries its `lr_mult`; the trainer sets `group["lr"] = lr_at(step) * group["lr_mult"]` before
every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from core.i18n import _
from core.training.config import TrainConfig


class AdaBound(torch.optim.Optimizer):
    """AdaBound (Luo et al. 2019, "Adaptive Gradient Methods with Dynamic Bound of Learning Rate").

    Adam whose per-parameter step size is clipped to [lower(t), upper(t)], two bounds that start
    at 0 and infinity and close in on `final_lr`, so training starts like Adam and ends like SGD:

        m_t = b1 m + (1 - b1) g,   v_t = b2 v + (1 - b2) g^2
        step = clip(lr sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v_t) + eps), lower(t), upper(t))
        lower(t) = final_lr (1 - 1 / (gamma t + 1)),  upper(t) = final_lr (1 + 1 / (gamma t))
        p <- p - step * m_t

    As in the authors' code, `final_lr` follows the lr schedule: it is scaled by lr / initial lr,
    and weight decay is the L2 kind (added to the gradient).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or final_lr <= 0 or gamma <= 0 or eps <= 0 or weight_decay < 0:
            raise ValueError(_("AdaBound needs lr, final_lr, gamma, eps > 0 and weight_decay >= 0"))
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(_("AdaBound betas must be in [0, 1), got {betas}").format(betas=betas))
        defaults = dict(lr=lr, betas=betas, final_lr=final_lr, gamma=gamma, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError(_("AdaBound does not support sparse gradients"))
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                final_lr = group["final_lr"] * group["lr"] / group["initial_lr"]
                lower = final_lr * (1 - 1 / (group["gamma"] * t + 1))
                upper = final_lr * (1 + 1 / (group["gamma"] * t))
                step = torch.full_like(denom, step_size).div_(denom).clamp_(lower, upper).mul_(exp_avg)
                p.sub_(step)
        return loss


# Newton-Schulz quintic of Jordan et al. (2024): its slope at 0 is pushed as high as it goes, so
# five steps bring the singular values of a matrix scaled to norm 1 into about [0.7, 1.2], all but
# those under about 1/300 (a small one grows 3.4445 times a step)
_NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """A matrix with g's singular vectors and singular values all close to 1 (about U V^T of g's SVD),
    by Newton-Schulz iteration: X <- a X + (b A + c A^2) X with A = X X^T, X starting as g / |g|.
    Each step is a polynomial in X X^T times X, so the singular vectors stay g's exactly."""
    a, b, c = _NEWTON_SCHULZ
    x = g.float()
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T  # iterate on the smaller Gram matrix
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)  # fewer passes than * and +
    return (x if wide else x.T).to(g.dtype)


class SGDMuon(torch.optim.SGD):
    """SGD, with Muon (Jordan et al. 2024) for the parameter groups marked `muon`.

    For a parameter of such a group, seen as a matrix [out, in * kh * kw]: the momentum buffer
    b <- momentum * b + g; the update u = g + momentum * b (Nesterov) or b, orthogonalised
    (the group's `ns_steps` Newton-Schulz steps, 5 unless it says);
    the parameter first scaled back to norm sqrt(out), as airbench does (the batch norm after it
    makes its scale irrelevant, and the fixed norm takes the place of weight decay); then
    p <- p - lr * u. Every other group is plain SGD.
    """

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            if not group.get("muon"):
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "muon_buffer" not in state:
                    state["muon_buffer"] = torch.zeros_like(p)
                buf = state["muon_buffer"].mul_(group["momentum"]).add_(p.grad)
                update = p.grad.add(buf, alpha=group["momentum"]) if group["nesterov"] else buf
                p.mul_(math.sqrt(p.shape[0]) / p.norm().clamp(min=1e-12))
                p.add_(orthogonalise(update.flatten(1), group.get("ns_steps", 5)).view_as(p), alpha=-group["lr"])
                p.grad = None  # done with: SGD's step below passes over it
        return super().step(closure)


def batch_normed_filters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights of the convolutions that a batch norm follows before any other convolution
    (in the order the modules were built), where Muon's fixed filter norm changes nothing."""
    found, pending = [], None
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            pending = module
        elif isinstance(module, torch.nn.BatchNorm2d) and pending is not None:
            found.append(pending.weight)
            pending = None
    return found


def make_param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """Body and head parameter groups with their lr multipliers (empty groups left out).

    With optim.bias_lr_mult other than 1, each part's biases get a group of their own at that
    multiple of the lr and the weight decay divided by it (airbench's scaled batch-norm biases).
    With optim.muon_lr above 0, the body's batch-normed convolution filters get a group marked
    `muon`, at muon_lr / lr times the lr and no weight decay (SGDMuon holds their norm).
    """
    from core.training.models import param_groups

    o = cfg.optim
    split = param_groups(model)
    biases = {id(p) for name, p in model.named_parameters() if name.endswith("bias")} if o.bias_lr_mult != 1 else set()
    body = {id(p) for p in split["body"]}
    filters = {id(p) for p in batch_normed_filters(model) if id(p) in body} if o.muon_lr > 0 else set()
    if o.muon_lr > 0 and not filters:
        raise ValueError(_("optim.muon_lr needs convolutions followed by batch norm in the model's body, and "
                           "{name} has none: set optim.muon_lr to 0").format(name=cfg.model.name))
    own_group = biases | filters
    groups = []
    for name, mult in (("body", 1.0), ("head", o.head_lr_mult)):
        params = list(split[name])
        groups.append({"params": [p for p in params if id(p) not in own_group], "name": name, "lr_mult": mult})
        groups.append({"params": [p for p in params if id(p) in biases], "name": name,
                       "lr_mult": mult * o.bias_lr_mult, "weight_decay": o.weight_decay / o.bias_lr_mult})
        groups.append({"params": [p for p in params if id(p) in filters], "name": name,
                       "lr_mult": o.muon_lr / o.lr, "weight_decay": 0.0, "muon": True, "ns_steps": o.muon_steps})
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = make_param_groups(model, cfg)
    for group in groups:
        group["lr"] = o.lr * group["lr_mult"]
    betas = (o.beta1, o.beta2)
    if o.name == "sgd":
        return (SGDMuon if o.muon_lr > 0 else torch.optim.SGD)(
            groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
        )
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, betas=betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.name == "adabound":
        return AdaBound(
            groups, lr=o.lr, betas=betas, final_lr=o.final_lr, gamma=o.adabound_gamma, eps=o.eps,
            weight_decay=o.weight_decay,
        )
    raise ValueError(_("unknown optimiser {name!r}").format(name=o.name))
