"""The CUDA paths: fp16 autocast with GradScaler("cuda"), the step and the float64 Gram matrix on
the GPU, and GPU evaluation, each against its CPU counterpart. Marked ``cuda``: they skip with a
reason without a CUDA device (tools/gpu_check.sh runs them on a GPU machine)."""
from itertools import repeat

import numpy as np
import pytest
import torch
from test_aggregation import _exact_gram, _near_orthogonal, _off_diagonal_signs

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation, gram_matrix
from sfsc.engine.task_step import TaskGradientTrainer
from sfsc.engine.trainer import amp_settings
from sfsc.evaluation import evaluate_compatibility

pytestmark = pytest.mark.cuda


def _batch(device):
    g = torch.Generator().manual_seed(0)
    return {"images": (torch.rand(8, 3, 32, 16, generator=g) * 255).to(device),
            "targets": (torch.arange(8) % 8).to(device)}


def _update(cfg, device, steps=1, amp=False):
    """(parameters before, after ``steps`` SFSC steps, trainer) of a seeded model on ``device``."""
    cfg.MODEL.DEVICE = device
    cfg.SOLVER.AMP.ENABLED = amp
    cfg.SOLVER.AMP.DTYPE = "float16"
    torch.manual_seed(0)
    model = build_model(cfg)
    before = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    dtype, scaler = amp_settings(cfg, torch.device(device))
    trainer = TaskGradientTrainer(model, repeat(_batch(device)), optimizer, None,
                                  build_aggregation(cfg, seed=0), dtype, 5, scaler)
    with EventStorage(0):
        for i in range(steps):
            trainer.iter = i
            trainer.run_step()
    after = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    return before, after, trainer


def _cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


def test_cuda_step_matches_the_cpu_step(sfsc_cfg):
    before, cpu, _ = _update(sfsc_cfg.clone(), "cpu")
    tf32 = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = False  # fp32 convolutions: the CPU's arithmetic
        before_gpu, gpu, trainer = _update(sfsc_cfg.clone(), "cuda")
        torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for cuDNN
        _, gpu_tf32, _ = _update(sfsc_cfg.clone(), "cuda")
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert torch.equal(before, before_gpu)  # the same initial weights
    assert trainer.task_grads.buffer.is_cuda
    # In fp32 the GPU step is the CPU step up to summation order (H200: cosine 1 - 7e-11).
    assert _cosine(cpu - before, gpu - before) > 0.99999
    # TF32 convolutions keep 10 mantissa bits: on this tiny, freshly initialised network the
    # update turns by a few degrees (H200: cosine 0.996), not more; GPUs without TF32 give 1.
    assert _cosine(cpu - before, gpu_tf32 - before) > 0.99


def test_fp16_gradscaler_steps_follow_the_fp32_step(sfsc_cfg):
    cfg = sfsc_cfg.clone()
    cfg.MODEL.DEVICE = "cuda"
    cfg.SOLVER.AMP.ENABLED = True
    cfg.SOLVER.AMP.DTYPE = "float16"
    dtype, scaler = amp_settings(cfg, torch.device("cuda"))
    assert dtype == torch.float16 and isinstance(scaler, torch.amp.GradScaler)
    before, fp32, _ = _update(sfsc_cfg.clone(), "cuda")
    _, fp16, trainer = _update(sfsc_cfg.clone(), "cuda", amp=True)
    assert trainer.skipped_total == 0 and torch.isfinite(fp16).all()
    assert trainer.grad_scaler.get_scale() > 1  # the losses were scaled
    assert _cosine(fp32 - before, fp16 - before) > 0.99
    _, _, trainer = _update(sfsc_cfg.clone(), "cuda", steps=3, amp=True)
    assert trainer.skipped_total == 0


def test_float64_gram_on_cuda_keeps_conflict_signs():
    x = _near_orthogonal()
    gram = gram_matrix(x.cuda())
    assert gram.is_cuda and gram.dtype == torch.float64
    assert _off_diagonal_signs(gram.cpu()) == _off_diagonal_signs(_exact_gram(x))


def test_cuda_evaluation_equals_cpu_evaluation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 64))
    q_pids, g_pids = rng.integers(0, 50, 300), rng.integers(0, 50, 2000)
    q_cams, g_cams = rng.integers(0, 6, 300), rng.integers(0, 6, 2000)
    feats = {w: (centres[q_pids] + rng.normal(scale=s, size=(300, 64)),
                 centres[g_pids] + rng.normal(scale=s, size=(2000, 64)))
             for w, s in ((0.5, 1.5), (1.0, 1.0))}
    queries = {w: q.astype(np.float32) for w, (q, _) in feats.items()}
    gallery = {w: g.astype(np.float32) for w, (_, g) in feats.items()}
    results = {device: evaluate_compatibility(queries, gallery, q_pids, q_cams, g_pids, g_cams,
                                              backend="torch", device=device).to_json()
               for device in ("cpu", "cuda")}
    for metric in ("mAP", "R1", "R5", "R10", "mINP"):
        assert np.allclose(results["cuda"][metric], results["cpu"][metric], atol=1e-3), metric
