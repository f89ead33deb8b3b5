"""The asymmetric metric loss against a pair-by-pair float64 loop, and its kind checked once,
by the config's loss."""
import math

import numpy as np
import pytest
import torch

from sfsc.config_checks import ConfigError
from sfsc.engine.defaults import check_config
from sfsc.modeling.losses import build_compat_loss
from sfsc.modeling.losses.asymmetric_loss import asymmetric_loss


def _unit(rows):
    return [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in rows]


def _dist(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def _reference(student, teacher, targets, kind, margin):
    """Budnik & Avrithis' losses written pair by pair: anchors from the student, the rest from
    the teacher."""
    s, t = _unit(student.tolist()), _unit(teacher.tolist())
    y = targets.tolist()
    n = len(y)
    if kind == "contrastive":
        pos = [_dist(s[i], t[j]) ** 2 for i in range(n) for j in range(n) if y[i] == y[j]]
        neg = [max(0.0, margin - _dist(s[i], t[j])) ** 2
               for i in range(n) for j in range(n) if y[i] != y[j]]
        return 0.5 * np.mean(pos) + 0.5 * (np.mean(neg) if neg else 0.0)
    terms = []
    for i in range(n):
        negatives = [_dist(s[i], t[j]) ** 2 for j in range(n) if y[j] != y[i]]
        if not negatives:
            continue
        hardest_pos = max(_dist(s[i], t[j]) ** 2 for j in range(n) if y[j] == y[i])
        terms.append(max(0.0, hardest_pos - min(negatives) + margin))
    return np.mean(terms)


@pytest.mark.parametrize("kind", ["contrastive", "triplet"])
@pytest.mark.parametrize("margin", [0.3, 0.7, 1.5])
def test_asymmetric_loss_matches_a_pair_by_pair_loop(kind, margin):
    g = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    targets = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4])
    got = asymmetric_loss(student, teacher, targets, kind=kind, margin=margin).item()
    assert got == pytest.approx(_reference(student, teacher, targets, kind, margin), abs=1e-5)
    assert got > 0  # random features leave every hinge active somewhere


def test_the_teacher_gets_no_gradient():
    student = torch.randn(6, 4, requires_grad=True)
    teacher = torch.randn(6, 4, requires_grad=True)
    asymmetric_loss(student, teacher, torch.tensor([0, 0, 1, 1, 2, 2]), "triplet").backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_an_unknown_kind_is_a_config_error(sfsc_cfg):
    sfsc_cfg.SFSC.COMPAT_LOSS = "asymmetric"
    sfsc_cfg.SFSC.ASYMMETRIC.TYPE = "triplett"
    with pytest.raises(ConfigError, match="SFSC.ASYMMETRIC.TYPE 'triplett' is not one of"):
        check_config(sfsc_cfg)
    sfsc_cfg.SFSC.ASYMMETRIC.TYPE = "triplet"
    assert build_compat_loss(sfsc_cfg).kind == "triplet"
