"""SFSCTrainer: FastReID's DefaultTrainer with the task-gradient step and many-to-many testing."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import torch

from fastreid.engine import hooks
from fastreid.engine.defaults import DefaultTrainer
from fastreid.engine.train_loop import TrainerBase
from fastreid.evaluation.testing import print_csv_format
from fastreid.modeling.meta_arch import build_model
from fastreid.utils import comm
from fastreid.utils.logger import setup_logger

from ..data import loaders
from ..evaluation.compatibility_evaluator import evaluate_compatibility
from ..evaluation.feature_extraction import extract_features
from ..fastreid.checkpoint import SFSCCheckpointer
from ..modeling.backbones.pretrained import check_pretrained
from ..modeling.fastreid_checkpoint import init_from_dense, read_dense_state
from .aggregation import build_aggregation
from .task_step import TaskGradientTrainer

logger = logging.getLogger(__name__)

__all__ = ["SFSCTrainer", "amp_settings", "broadcast_model_state", "training_precision"]


def broadcast_model_state(model: torch.nn.Module, src: int = 0) -> None:
    """Copy process ``src``'s parameters and buffers to every process (a no-op alone).

    Without DistributedDataParallel nothing else makes the starting weights identical; from
    then on every process applies the same all-reduced update, and the step averages the
    BatchNorm running statistics (``average_running_stats``). Modules kept outside the module
    tree (a frozen old model) are loaded from the same file by every process.
    """
    if comm.get_world_size() > 1:
        for tensor in list(model.parameters()) + list(model.buffers()):
            torch.distributed.broadcast(tensor.data, src=src)


def training_precision(amp_enabled: bool, amp_dtype: str, device_type: str) -> str:
    """The precision training runs in: "fp32", or SOLVER.AMP.DTYPE where ``device_type``
    ("cpu" | "cuda") supports it (float16 autocast needs CUDA)."""
    if not amp_enabled or (device_type != "cuda" and amp_dtype != "bfloat16"):
        return "fp32"
    return amp_dtype


def amp_settings(cfg, device: torch.device):
    """(autocast dtype or None, GradScaler or None) for SOLVER.AMP on ``device``."""
    if not cfg.SOLVER.AMP.ENABLED:
        return None, None
    precision = training_precision(True, cfg.SOLVER.AMP.DTYPE, device.type)
    if precision != "fp32":
        dtype = getattr(torch, precision)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        return dtype, scaler
    logger.warning("SOLVER.AMP.ENABLED with float16 needs CUDA; training in fp32 "
                   "(set SOLVER.AMP.DTYPE bfloat16 for mixed precision on CPU).")
    return None, None


class SFSCTrainer(DefaultTrainer):
    """Trains a switchable model: every sub-model on every batch, one update per step.

    The model is not wrapped in DistributedDataParallel: the step all-reduces the per-task
    gradients itself (one collective for all tasks) before aggregating them, and averages the
    BatchNorm running statistics (a second one) so that every process evaluates and saves
    the same model.
    """

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("fastreid").isEnabledFor(logging.INFO):
            setup_logger()
        check_pretrained(cfg)  # a missing weights file fails before the dataset is built
        data_loader = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader.dataset.num_classes)
        model = self.build_model(cfg)
        optimizer, param_wrapper = self.build_optimizer(cfg, model)
        broadcast_model_state(model)
        amp_dtype, scaler = amp_settings(cfg, model.device)
        seed = cfg.SEED if cfg.SEED >= 0 else 0
        self._trainer = TaskGradientTrainer(
            model, data_loader, optimizer, param_wrapper, build_aggregation(cfg, seed),
            amp_dtype, cfg.SFSC.MAX_NONFINITE_STEPS, scaler)
        self.iters_per_epoch = max(1, len(data_loader.dataset) // cfg.SOLVER.IMS_PER_BATCH)
        model.iters_per_epoch = self.iters_per_epoch  # epoch-based KL weight schedules
        self.scheduler = self.build_lr_scheduler(cfg, optimizer, self.iters_per_epoch)
        self.checkpointer = SFSCCheckpointer(
            model, cfg.OUTPUT_DIR, save_to_disk=comm.is_main_process(),
            allow_pickle=cfg.SFSC.CHECKPOINT.ALLOW_PICKLE, strict=cfg.SFSC.CHECKPOINT.STRICT,
            optimizer=optimizer, task_step=self._trainer, **self.scheduler)
        self.start_epoch = 0
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self.max_iter = self.max_epoch * self.iters_per_epoch
        self.warmup_iters = cfg.SOLVER.WARMUP_ITERS
        self.delay_epochs = cfg.SOLVER.DELAY_EPOCHS
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        ret = super().build_hooks()
        for hook in ret:
            if isinstance(hook, hooks.PeriodicWriter):  # FastReID hard-codes 200 iterations
                hook._period = self.cfg.SFSC.LOG_PERIOD
        return ret

    def resume_or_load(self, resume: bool = True) -> None:
        """FastReID's resume, plus the data stream's position and the best metric so far."""
        super().resume_or_load(resume)
        if not (resume and self.checkpointer.has_checkpoint()):
            dense = self.cfg.SFSC.DENSE_INIT
            if dense.WEIGHTS:  # every process reads the same file: no broadcast needed
                init_from_dense(self.checkpointer.model, read_dense_state(
                    dense.WEIGHTS, self.cfg.SFSC.CHECKPOINT.ALLOW_PICKLE), dense.WEIGHTS,
                    classifier=dense.CLASSIFIER)
            return
        best = os.path.join(self.cfg.OUTPUT_DIR, "model_best.pth")
        if os.path.isfile(best):
            metric = float(torch.load(best, map_location="cpu", weights_only=True)["metric"])
            for hook in self._hooks:
                if isinstance(hook, hooks.PeriodicCheckpointer):
                    hook.best_metric = metric
            logger.info(f"Best metric so far: {metric:.4f} (model_best.pth)")
        self._seek_data(self.start_epoch * self.iters_per_epoch)

    def _seek_data(self, iteration: int) -> None:
        """Restart the train loader at the batch of ``iteration`` (when SFSC.DATA.RESUMABLE)."""
        loader = self._trainer.data_loader
        sampler = loaders.positioned_sampler(loader)
        if sampler is None or iteration == 0:
            return
        if self._trainer._data_loader_iter is loader:  # DataLoaderX on CUDA: its own thread
            loader._shutdown_background_thread()
        sampler.start = iteration * loader.batch_sampler.batch_size
        self._trainer._data_loader_iter = iter(loader)
        logger.info(f"Data stream resumed at iteration {iteration} (sample {sampler.start})")

    @classmethod
    def build_train_loader(cls, cfg):
        """FastReID's train loader with dataset checks, image screening and resumable data."""
        return loaders.build_train_loader(cfg)

    @classmethod
    def build_model(cls, cfg):
        model = build_model(cfg)
        logger.info(f"Model:\n{model}")
        n = sum(p.numel() for p in model.parameters())
        logger.info(f"Switchable model: widths {list(model.widths)}, {n:,} parameters")
        return model

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """FastReID's test loader with DATALOADER.NUM_WORKERS (FastReID always starts 4)."""
        return loaders.build_test_loader(cfg, dataset_name)

    @classmethod
    def test(cls, cfg, model):
        """Many-to-many evaluation on every DATASETS.TESTS set.

        Returns FastReID's result dict for the widest model (Rank-1, mAP, mINP, metric, ...)
        plus every cell of the matrix as ``<metric>/q<w>_g<w>``; writes compatibility.json.
        """
        results = OrderedDict()
        widths = list(getattr(model, "widths", (1.0,)))
        for dataset_name in cfg.DATASETS.TESTS:
            data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
            feats, pids, camids = extract_features(model, data_loader, widths,
                                                   flip=cfg.TEST.FLIP.ENABLED)
            if not comm.is_main_process():
                results[dataset_name] = {}
                continue
            result = evaluate_compatibility(
                {w: f[:num_query] for w, f in feats.items()},
                {w: f[num_query:] for w, f in feats.items()},
                pids[:num_query].numpy(), camids[:num_query].numpy(),
                pids[num_query:].numpy(), camids[num_query:].numpy(),
                metric=cfg.TEST.METRIC, chunk_size=cfg.TEST.COMPAT.CHUNK_SIZE,
                backend=cfg.TEST.COMPAT.BACKEND)
            logger.info(f"Compatibility on {dataset_name}:\n{result.tables()}")
            if cfg.OUTPUT_DIR:
                name = "compatibility.json" if len(cfg.DATASETS.TESTS) == 1 \
                    else f"compatibility_{dataset_name}.json"
                result.write(cfg.OUTPUT_DIR, name)
            results[dataset_name] = result.fastreid_results()
            summary = OrderedDict((k, v) for k, v in results[dataset_name].items() if "/" not in k)
            print_csv_format(OrderedDict(dataset=dataset_name, **summary))
        return results[cfg.DATASETS.TESTS[0]] if len(results) == 1 else results
