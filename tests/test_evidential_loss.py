"""The evidential compatible loss against independent computations, and the α̃ behaviour."""
import importlib.util
import json
import math
import os

import pytest
import torch
from torch.distributions import Dirichlet, kl_divergence

from sfsc.modeling.losses import dirichlet_kl_to_uniform, dirichlet_strength, evidential_loss


def test_bayes_risk_cross_entropy_matches_monte_carlo():
    # Eq. 4: E_{p ~ Dir(α)}[-log p_y] = ψ(S) − ψ(α_y)
    torch.manual_seed(0)
    logits = torch.randn(3, 6) * 2
    targets = torch.tensor([0, 3, 5])
    alpha = dirichlet_strength(logits).double()
    samples = Dirichlet(alpha).sample((200_000,))  # (M, N, C)
    mc = -samples.gather(2, targets[None, :, None].expand(samples.shape[0], -1, 1)).log()
    mc = mc.squeeze(2).mean(0)
    closed = torch.digamma(alpha.sum(1)) - torch.digamma(alpha[torch.arange(3), targets])
    assert torch.allclose(mc, closed, rtol=5e-3)
    terms = evidential_loss(logits, targets, lam=0.0)
    assert math.isclose(terms["loss"].item(), closed.mean().item(), rel_tol=1e-5)


def test_kl_matches_torch_distributions():
    torch.manual_seed(1)
    alpha = torch.rand(4, 751, dtype=torch.float64) * 20 + 1
    ours = dirichlet_kl_to_uniform(alpha)
    reference = kl_divergence(Dirichlet(alpha), Dirichlet(torch.ones_like(alpha)))
    assert torch.allclose(ours, reference, rtol=1e-9, atol=1e-7)


def test_target_evidence_is_removed_from_the_kl():
    # A confident, correct prediction: with α̃ the KL only sees the other classes' evidence.
    num_classes = 751
    logits = torch.full((1, num_classes), -10.0)  # exp(-10): (almost) no wrong-class evidence
    logits[0, 7] = 8.0
    logits = logits.requires_grad_()
    target = torch.tensor([7])
    tilde = evidential_loss(logits, target, lam=1.0)
    literal = evidential_loss(logits, target, lam=1.0, remove_target_evidence=False)
    assert tilde["kl"] < 1e-3  # no wrong-class evidence, nothing to penalise
    assert literal["kl"] > 10 * (tilde["ace"] + 1)  # the literal Eq. 5 swamps the risk term
    # The tilded loss never pushes the correct class's evidence down; the literal one does.
    (g_tilde,) = torch.autograd.grad(tilde["loss"], logits)
    (g_literal,) = torch.autograd.grad(literal["loss"], logits)
    assert g_tilde[0, 7] < 0 < g_literal[0, 7]


def test_kl_magnitudes_for_751_identities():
    # A partly trained state: the right class leads, the others hold a little evidence.
    torch.manual_seed(2)
    logits = torch.randn(64, 751) - 4.0
    targets = torch.randint(0, 751, (64,))
    logits[torch.arange(64), targets] = 4.0
    tilde = evidential_loss(logits, targets, lam=0.2)
    literal = evidential_loss(logits, targets, lam=0.2, remove_target_evidence=False)
    assert literal["kl"] > 20 * tilde["kl"]
    assert 0.2 * literal["kl"] > literal["ace"]  # untilded: the regulariser dominates
    assert 0.2 * tilde["kl"] < tilde["ace"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_finite_and_fp32_for_extreme_logits(dtype):
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype, requires_grad=True)
    terms = evidential_loss(logits, torch.tensor([0, 2]))
    assert terms["loss"].dtype == torch.float32
    assert torch.isfinite(terms["loss"])
    (grad,) = torch.autograd.grad(terms["loss"], logits)
    assert torch.isfinite(grad.float()).all()


def test_uncertainty_is_high_without_evidence():
    low = evidential_loss(torch.full((2, 10), -10.0), torch.tensor([0, 1]))["uncertainty"]
    high_evidence = torch.full((2, 10), -10.0)
    high_evidence[:, 0] = 10.0
    high = evidential_loss(high_evidence, torch.tensor([0, 0]))["uncertainty"]
    assert low > 0.99 and high < 0.01


def _probe_tool():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        "evidential_probe", os.path.join(root, "tools", "evidential_probe.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_kl_weight_stalls_a_many_class_probe(capsys):
    """With 256 weakly separated classes, λ = 0.2 keeps the evidence flat (u ≈ 0.5) and the probe
    underfits, while the Bayes-risk term alone (λ = 0) fits: the KL term, not L_ace, stalls it."""
    tool = _probe_tool()
    tool.main(["--classes", "256", "--separation", "0.3", "--lambdas", "0", "0.2",
               "--steps", "300"])
    rows = {r["lambda"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert rows[0.0]["accuracy"] > 95 and rows[0.0]["uncertainty"] < 0.1
    assert rows[0.2]["accuracy"] < 75 and rows[0.2]["uncertainty"] > 0.4
    few = tool.probe(32, 0.2, 0.3, steps=300)  # few classes: λ = 0.2 fits too
    assert few["accuracy"] > 95
