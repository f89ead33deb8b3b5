"""The per-task gradient buffer (T × P) and the update vector are allocated once and reused."""
from itertools import repeat

import torch

from fastreid.modeling.meta_arch import build_model
from fastreid.utils.events import EventStorage
from sfsc.engine.aggregation import build_aggregation
from sfsc.engine.task_step import TaskGradientTrainer


def _batch(n=8, classes=8):
    g = torch.Generator().manual_seed(0)
    return {"images": torch.rand(n, 3, 32, 16, generator=g) * 255,
            "targets": torch.arange(n) % classes}


def test_buffers_are_reused_across_steps(sfsc_cfg):
    sfsc_cfg.SFSC.WIDTHS = [0.5]
    torch.manual_seed(0)
    model = build_model(sfsc_cfg)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    trainer = TaskGradientTrainer(model, repeat(_batch()), optimizer, None,
                                  build_aggregation(sfsc_cfg))
    seen = []
    with EventStorage(0) as storage:
        for i in range(2):
            trainer.iter = storage.iter = i
            if i == 1:
                optimizer.zero_grad(set_to_none=True)  # as FastReID hooks may do
            trainer.run_step()
            tg = trainer.task_grads
            seen.append((id(tg), tg.buffer.data_ptr(), tg.flat.data_ptr()))
            start, end = tg.flat.data_ptr(), tg.flat.data_ptr() + tg.flat.numel() * 4
            # The optimizer reads views of the update vector: no per-step .grad tensors.
            assert all(start <= p.grad.data_ptr() < end for p in tg.params)
    assert seen[0] == seen[1]
    assert tg.buffer.shape == (tg.num_tasks, tg.numel + 1)
    assert tg.numel == sum(p.numel() for p in model.parameters() if p.requires_grad)
