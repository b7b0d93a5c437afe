"""Independent, textbook versions of each method, written with autograd on the embedding
matrix or on the lookup output, with no code shared with advnlp. Each leaves the gradients
in .grad exactly as the method under test should.

"g = d loss / d E" means the gradient through the *lookup* only: a zero matrix D is added to
the matrix on the lookup path (E + D)[ids], and g = d loss / d D. For a model with a tied
output head that is the input side alone, which is what gets perturbed.

At the end: ``REFERENCE``, the formula of each registered method, and the two checks that
compare advnlp's step with it (tests/test_reference_gradients.py, test_causal_lm.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from .models import Case

FLOOR = 1e-8


def _matrix_gradient(case: Case, delta: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(loss at E + delta on the lookup path, d loss / d E through the lookup)."""
    d = torch.zeros_like(case.weight, requires_grad=True)
    base = case.weight + d if delta is None else case.weight + delta + d
    loss = case.loss_from_embeds(case.lookup(base))
    (g,) = torch.autograd.grad(loss, d, retain_graph=True)
    return loss, g


def _example_unit(g: Tensor, mask: Tensor) -> Tensor:
    g = g * mask
    norms = g.flatten(1).norm(dim=1).view(-1, 1, 1)
    return g / (norms + FLOOR)


def _project_examples(delta: Tensor, radius: float) -> Tensor:
    norms = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
    return delta * torch.clamp(radius / (norms + FLOOR), max=1.0)


def _project_matrix(delta: Tensor, radius: float) -> Tensor:
    return delta * min(1.0, radius / (float(delta.norm()) + FLOOR))


def none(case: Case) -> Tensor:
    loss = case.closure()
    loss.backward()
    return loss


def fgm(case: Case, epsilon: float, scope: str = "token", adversarial_only: bool = False) -> Tensor:
    if scope == "token":
        loss, g = _matrix_gradient(case)
        if not adversarial_only:
            loss.backward()
        delta = epsilon * g / (g.norm() + FLOOR)
        case.loss_from_embeds(case.lookup(case.weight + delta)).backward()
        return loss
    e = case.lookup()
    loss = case.loss_from_embeds(e)
    (g,) = torch.autograd.grad(loss, e, retain_graph=True)
    if not adversarial_only:
        loss.backward()
    delta = epsilon * _example_unit(g, case.mask())
    case.loss_from_embeds(case.lookup() + delta).backward()
    return loss


def gradient_penalty(case: Case, epsilon: float) -> tuple[Tensor, Tensor]:
    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU kernel has no double backward
        e = case.lookup()
        loss = case.loss_from_embeds(e)
        (g,) = torch.autograd.grad(loss, e, create_graph=True)
        penalty = 0.5 * epsilon * g.pow(2).sum()
        (loss + penalty).backward()
    return loss, penalty.detach()


def pgd(
    case: Case,
    epsilon: float,
    alpha: float,
    steps: int,
    scope: str = "example",
    adversarial_only: bool = False,
) -> Tensor:
    if scope == "token":
        loss, g = _matrix_gradient(case)
        if not adversarial_only:
            loss.backward()
        delta = torch.zeros_like(case.weight)
        for step in range(steps):
            delta = _project_matrix(delta + alpha * g / (g.norm() + FLOOR), epsilon)
            if step < steps - 1:
                _, g = _matrix_gradient(case, delta)
        case.loss_from_embeds(case.lookup(case.weight + delta)).backward()
        return loss
    e = case.lookup()
    loss = case.loss_from_embeds(e)
    (g,) = torch.autograd.grad(loss, e, retain_graph=True)
    if not adversarial_only:
        loss.backward()
    delta = torch.zeros_like(e)
    for step in range(steps):
        delta = _project_examples(delta + alpha * _example_unit(g, case.mask()), epsilon)
        if step < steps - 1:
            e = case.lookup()
            (g,) = torch.autograd.grad(case.loss_from_embeds(e + delta), e)
    case.loss_from_embeds(case.lookup() + delta).backward()
    return loss


def freelb(case: Case, epsilon: float, alpha: float, steps: int, init_magnitude: float) -> Tensor:
    """Zhu et al. 2020, Algorithm 1, with masked per-example L2 norms.

    The random start is drawn as U(-1, 1) in one call of the embedding output's shape, so a
    caller that seeds the global generator gets the same start as the method under test.
    """
    mask = case.mask()
    e = case.lookup()
    noise = torch.empty_like(e).uniform_(-1, 1) * mask
    dims = (mask.flatten(1).sum(1) * e.shape[-1]).clamp_min(1).view(-1, 1, 1)
    delta = noise * init_magnitude / dims.sqrt()
    first = None
    for step in range(steps):
        delta = delta.detach().requires_grad_()
        loss = case.loss_from_embeds(case.lookup() + delta)
        first = loss.detach() if first is None else first
        (loss / steps).backward()
        if step < steps - 1:
            delta = _project_examples(delta + alpha * _example_unit(delta.grad, mask), epsilon)
    return first


def neftune(case: Case, alpha: float) -> Tensor:
    """Jain et al. 2023 with the real length: U(-1, 1) * alpha / sqrt(L * d) on the non-padding
    positions, drawn in one call of the output's shape (a caller seeding the global generator
    gets the method's noise); none in eval mode."""
    mask = case.mask()
    e = case.lookup()
    if case.model.training:
        noise = torch.empty_like(e).uniform_(-1, 1) * mask
        dims = (mask.flatten(1).sum(1) * e.shape[-1]).clamp_min(1).view(-1, 1, 1)
        e = e + noise * alpha / dims.sqrt()
    loss = case.loss_from_embeds(e)
    loss.backward()
    return loss


def r3f(case: Case, epsilon: float, kl_weight: float, noise: str) -> Tensor:
    """Aghajanyan et al. 2021 as fairseq's criterion computes it (batch-mean symmetric KL of
    the softmaxes), the noise masked on padding and drawn in one call of the output's shape
    after the clean pass (a caller seeding the global generator gets the method's noise)."""
    logits = []
    handle = case.head.register_forward_hook(lambda m, args, out: logits.append(out))
    try:
        e = case.lookup()
        loss = case.loss_from_embeds(e)
        if epsilon == 0 or not case.model.training:
            loss.backward()
            return loss
        z = torch.empty_like(e)
        z = z.uniform_(-epsilon, epsilon) if noise == "uniform" else z.normal_(0, epsilon)
        case.loss_from_embeds(case.lookup() + z * case.mask())
    finally:
        handle.remove()
    clean, noisy = (F.log_softmax(x, dim=-1) for x in logits)
    kl = F.kl_div(noisy, clean, log_target=True, reduction="sum")
    kl = kl + F.kl_div(clean, noisy, log_target=True, reduction="sum")
    (loss + kl_weight * kl / logits[0].shape[0]).backward()
    return loss


def relative_unit(case: Case, scope: str) -> Tensor:
    """What ``epsilon_unit="relative"`` measures lengths in, computed directly: token scope,
    the RMS L2 norm of the matrix rows of the batch's distinct non-padding ids (a scalar);
    example scope, each example's L2 norm of E[ids] over its non-padding positions (B, 1, 1).
    Absolute hyperparameters times this unit reproduce the relative method."""
    with torch.no_grad():
        if scope == "token":
            present = [int(v) for v in case.ids.unique() if int(v) != case.padding_idx]
            norms = torch.stack([case.weight[v].norm() for v in present])
            return norms.pow(2).mean().sqrt()
        e = case.lookup() * case.mask()
        return e.flatten(1).norm(dim=1).view(-1, 1, 1)


def awp(
    case: Case,
    adv_lr: float,
    adv_eps: float,
    start_step: int,
    param_regex: str,
    include_vectors: bool,
) -> Tensor:
    """Wu et al. 2020 as the Kaggle recipe writes it: w + adv_lr * g/||g|| * ||w|| clamped to
    [w - adv_eps|w|, w + adv_eps|w|] per chosen tensor, the weights swapped in by rebinding
    ``.data`` (not advnlp's copy), the two passes' gradients summed. A first call: plain if
    ``start_step`` > 0."""
    import re

    params = [p for p in case.model.parameters() if p.requires_grad]
    loss = case.closure()
    clean = torch.autograd.grad(loss, params, allow_unused=True)
    total = {p: g for p, g in zip(params, clean, strict=True)}
    if start_step == 0 and adv_lr > 0 and adv_eps > 0:
        saved = {}
        for name, p in case.model.named_parameters():
            g = total.get(p)
            if g is None or re.search(param_regex, name) is None:
                continue
            if p.dim() < 2 and not include_vectors or g.norm() == 0:
                continue
            w = p.data
            moved = w + adv_lr * g / g.norm() * w.norm()
            bound = adv_eps * w.abs()
            saved[p] = w
            p.data = torch.min(torch.max(moved, w - bound), w + bound)
        adversarial = torch.autograd.grad(case.closure(), params, allow_unused=True)
        for p, w in saved.items():
            p.data = w
        for p, g in zip(params, adversarial, strict=True):
            if g is not None:
                total[p] = g if total[p] is None else total[p] + g
    for p, g in total.items():
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g
    return loss


def smart(
    case: Case,
    epsilon: float,
    alpha: float,
    steps: int,
    init_std: float,
    kl_weight: float,
    symmetric: bool = True,
) -> Tensor:
    """Jiang et al. 2020, Algorithm 1's inner loop with per-example L2 norms over the
    non-padding positions and a real projection: delta_0 ~ N(0, init_std^2) (masked, drawn in
    one call of the output's shape after the clean pass, then projected), K steps
    delta <- Proj(delta + alpha * g / ||g||) (no floor: the exact unit vector) with g the
    gradient of D at the clean prediction fixed, and loss + kl_weight * D(clean, perturbed at
    delta_K). D: the symmetric KL
    (SMART), or KL(stop-gradient clean || perturbed) (VAT, ``symmetric=False``), summed and
    divided by the batch size. Plain in eval mode, at epsilon 0 or at kl_weight 0."""
    logits = []

    def divergence(clean: Tensor, perturbed: Tensor) -> Tensor:
        log_p, log_q = F.log_softmax(clean, dim=-1), F.log_softmax(perturbed, dim=-1)
        if symmetric:
            both = F.kl_div(log_q, log_p, log_target=True, reduction="sum")
            both = both + F.kl_div(log_p, log_q, log_target=True, reduction="sum")
        else:
            both = F.kl_div(log_q, log_p.detach(), log_target=True, reduction="sum")
        return both / clean.shape[0]

    handle = case.head.register_forward_hook(lambda m, args, out: logits.append(out))
    try:
        e = case.lookup()
        loss = case.loss_from_embeds(e)
        if epsilon == 0 or kl_weight == 0 or not case.model.training:
            loss.backward()
            return loss
        clean, mask = logits[0], case.mask()
        delta = _project_examples(torch.empty_like(e).normal_(0, init_std) * mask, epsilon)
        for _ in range(steps):
            d = delta.clone().requires_grad_()
            case.loss_from_embeds(case.lookup() + d)
            (g,) = torch.autograd.grad(divergence(clean.detach(), logits[-1]), d)
            g = g * mask
            unit = g / g.flatten(1).norm(dim=1).view(-1, 1, 1)  # the exact unit direction
            delta = _project_examples(delta + alpha * unit, epsilon)
        case.loss_from_embeds(case.lookup() + delta)
        regulariser = divergence(clean, logits[-1])
    finally:
        handle.remove()
    (loss + kl_weight * regulariser).backward()
    return loss


def unit(case: Case, scope: str, epsilon_unit: str) -> float | Tensor:
    """What lengths are measured in: 1, or the embedding's own size computed directly (the
    relative method equals the absolute one at epsilon x this unit)."""
    if epsilon_unit == "absolute":
        return 1.0
    size = relative_unit(case, scope)
    return float(size) if scope == "token" else size


# registry name -> the reference formula, called with every hyperparameter of the method
REFERENCE = {
    "none": lambda c: none(c),
    "fgm": lambda c, epsilon, scope, adversarial_only, epsilon_unit: fgm(
        c, epsilon * unit(c, scope, epsilon_unit), scope, adversarial_only
    ),
    "gp": lambda c, epsilon: gradient_penalty(c, epsilon)[0],
    "pgd": lambda c, epsilon, alpha, steps, scope, adversarial_only, epsilon_unit: pgd(
        c,
        *(x * unit(c, scope, epsilon_unit) for x in (epsilon, alpha)),
        steps,
        scope,
        adversarial_only,
    ),
    "freelb": lambda c, epsilon, alpha, steps, init_magnitude, epsilon_unit: freelb(
        c,
        *(x * unit(c, "example", epsilon_unit) for x in (epsilon, alpha)),
        steps,
        init_magnitude * unit(c, "example", epsilon_unit),
    ),
    "neftune": lambda c, alpha: neftune(c, alpha),
    "r3f": lambda c, epsilon, kl_weight, noise: r3f(c, epsilon, kl_weight, noise),
    # a first step, from an empty cache: plain (tests/test_fgm_free.py checks the second)
    "fgm_free": lambda c, epsilon: none(c),
    "awp": awp,
    "smart": smart,
    "vat": lambda c, **kwargs: smart(c, **kwargs, symmetric=False),
}


def assert_step_matches(case: Case, name: str, kwargs: dict) -> None:
    """advnlp's ``name`` at ``kwargs`` gives the reference's loss and gradients on ``case``
    (to 1e-5 relative), and some gradient is not zero."""
    import advnlp

    from .models import grads, zero

    torch.manual_seed(123)  # the random starts and noise: the same draws in both
    expected_loss = REFERENCE[name](case, **{**advnlp.hyperparameters(name), **kwargs})
    expected = grads(case.model)

    zero(case.model)
    adv = advnlp.build(name, case.model, **kwargs)
    torch.manual_seed(123)
    loss = adv.backward(case.closure)

    torch.testing.assert_close(loss, expected_loss.detach(), rtol=1e-5, atol=1e-8)
    actual = grads(case.model)
    for param, value in expected.items():
        torch.testing.assert_close(actual[param], value, rtol=1e-5, atol=1e-8, msg=param)
    assert any(v.abs().sum() > 0 for v in actual.values())


def assert_penalty_matches(case: Case) -> None:
    """The gradient penalty's term at epsilon 2 is the reference's, and not zero."""
    import advnlp

    from .models import zero

    _, expected_penalty = gradient_penalty(case, 2.0)
    zero(case.model)
    adv = advnlp.GradientPenalty(case.model, epsilon=2.0)
    adv.backward(case.closure)
    torch.testing.assert_close(adv.last_penalty, expected_penalty, rtol=1e-5, atol=0)
    assert adv.last_penalty > 0
