"""SFSC's config keys, added to FastReID's defaults by ``add_sfsc_config``."""
from __future__ import annotations

from typing import Tuple

from fastreid.config import CfgNode as CN


def add_sfsc_config(cfg: CN) -> None:
    """Add the ``SFSC`` section (and ``SEED``) to a FastReID config, in place."""
    _C = cfg

    _C.SEED = -1  # < 0: a random seed, logged and written to OUTPUT_DIR/seed.txt

    # How ShuffleNet v1's grouped 1x1 convs take a narrow width's weight: leading (the first
    # rows of the whole weight) | per_group (the first rows of each group); see
    # sfsc/modeling/switchable.py; leading chosen in benchmarks/shufflenet_grouping/. Other
    # backbones ignore it.
    _C.MODEL.BACKBONE.GROUP_SLICING = "leading"

    _C.SFSC = CN()
    # Crop ratios of the switchable sub-models, relative to the full (1.0x) network.
    _C.SFSC.WIDTHS = [0.25, 0.5, 0.75]
    # The width the original loss trains: 1.0 for SFSC / *-S; < 1.0 for a unified or one-to-one
    # model of a single width (then WIDTHS is empty or holds only that width).
    _C.SFSC.TRAIN_WIDTH = 1.0
    # Compatible loss of every sub-model: evidential | bct | asymmetric | none
    # (modeling/losses/compat.py registers them).
    _C.SFSC.COMPAT_LOSS = "evidential"
    _C.SFSC.COMPAT_WEIGHT = 1.0
    # How the per-task gradients (L_ori, L_c1 ... L_cm) become one update: pcgrad | sum, or one
    # of torchjd's Gramian weightings: mgda | imtl_g | aligned_mtl | upgrad | dualproj | cagrad
    # | fairgrad | gradvac | pcd (sfsc/engine/torchjd_weightings.py). Scale rule: a torchjd
    # weighting's weights are rescaled to sum to T (the number of tasks), as sum's are, so that
    # methods differ in how they share the step among the tasks, not in its total length (MGDA's
    # and UPGrad's own weights sum to 1: a learning rate T times smaller).
    _C.SFSC.AGGREGATION = "pcgrad"
    # The torchjd weightings' own parameters (read only by the weighting named above).
    _C.SFSC.WEIGHTING = CN()
    _C.SFSC.WEIGHTING.CAGRAD_C = 0.4  # CAGrad's radius c around the mean gradient (0: the mean)
    _C.SFSC.WEIGHTING.FAIRGRAD_ALPHA = 1.0  # FairGrad's α-fairness (1: proportional fairness)
    # PCD: the share of its own first-order progress each compatible task is guaranteed while
    # the step follows the full model's gradient (torchjd's default).
    _C.SFSC.WEIGHTING.PCD_TAU = 0.02
    # CR-MOGM's moving average of the weights over steps, w_k = EMA·w_{k-1} + (1 - EMA)·ŵ_k:
    # weights computed from one mini-batch's gradients are noisy. 0: each step's own weights.
    _C.SFSC.WEIGHTING.EMA = 0.0

    # In-place distillation (Slimmable / US-Nets): each sub-model's logits through the full
    # model's classifier also learn the full model's detached class posterior, KL at
    # TEMPERATURE (× TEMPERATURE²), times WEIGHT, added to that sub-model's compatible task.
    # The full model's logits are at hand (every sub-model's feature already goes through its
    # classifier), so it costs no extra forward pass. 0: off. Self-compatible training only.
    _C.SFSC.DISTILL = CN()
    _C.SFSC.DISTILL.WEIGHT = 0.0
    _C.SFSC.DISTILL.TEMPERATURE = 4.0
    # Compatible-loss warm-up: the compatible tasks' losses (compatible loss and distillation)
    # are scaled by a factor rising linearly from START_FACTOR at iteration 0 to 1 at ITERS,
    # so the full model trains alone, or nearly, before the sub-models pull on it (in case its
    # loss against a unified model comes from early interference). On top of COMPAT_WEIGHT.
    # ITERS 0: off.
    _C.SFSC.COMPAT_WARMUP = CN()
    _C.SFSC.COMPAT_WARMUP.ITERS = 0
    _C.SFSC.COMPAT_WARMUP.START_FACTOR = 0.0

    # The evidential loss's open choices (sfsc/modeling/losses/evidential_loss.py). Defaults:
    # the variant chosen by benchmarks/evidential_selection (the KL over the batch's classes).
    # The paper's literal form (configs/*/sfsc_paper_R18.yml): KL_TARGET kept, KL_NORM sum.
    _C.SFSC.EVIDENTIAL = CN()
    _C.SFSC.EVIDENTIAL.LAMBDA = 0.2  # KL weight λ
    _C.SFSC.EVIDENTIAL.ACTIVATION = "exp"  # evidence = exp | softplus | relu of the logits
    _C.SFSC.EVIDENTIAL.LOGIT_CLAMP = 10.0  # logits clamped to [-c, c]; one-sided gradient beyond
    _C.SFSC.EVIDENTIAL.KL_TARGET = "removed"  # removed (Sensoy's α̃) | kept (paper's Eq. 5)
    _C.SFSC.EVIDENTIAL.KL_NORM = "batch"  # sum | mean over classes | the batch's classes only
    _C.SFSC.EVIDENTIAL.PRIOR = 1.0  # Dirichlet prior per class (α = e + PRIOR; R-EDL's weight)
    # λ_t: constant | iters (linear over ANNEAL_ITERS) | epochs (Sensoy: min(1, epoch / N)).
    _C.SFSC.EVIDENTIAL.KL_SCHEDULE = "constant"
    _C.SFSC.EVIDENTIAL.ANNEAL_ITERS = 0
    _C.SFSC.EVIDENTIAL.ANNEAL_EPOCHS = 10

    _C.SFSC.ASYMMETRIC = CN()
    _C.SFSC.ASYMMETRIC.TYPE = "contrastive"  # contrastive | triplet
    _C.SFSC.ASYMMETRIC.MARGIN = 0.7

    _C.SFSC.PCGRAD = CN()
    _C.SFSC.PCGRAD.EPS = 1e-12

    # One-to-one compatibility: a frozen, separately trained full model (FastReID checkpoint).
    _C.SFSC.OLD_MODEL = CN()
    _C.SFSC.OLD_MODEL.WEIGHTS = ""
    _C.SFSC.OLD_MODEL.CONFIG = ""  # its config.yaml; empty: this config at TRAIN_WIDTH 1.0

    # Start every width from a dense FastReID checkpoint (Baseline + build_resnet_backbone, its
    # model_final.pth) when training starts (not on --resume); see modeling/fastreid_checkpoint.py.
    _C.SFSC.DENSE_INIT = CN()
    _C.SFSC.DENSE_INIT.WEIGHTS = ""
    _C.SFSC.DENSE_INIT.CLASSIFIER = True  # copy its classifier too when the identity count matches

    _C.SFSC.CHECKPOINT = CN()
    _C.SFSC.CHECKPOINT.STRICT = True  # refuse checkpoints that do not match the model key for key
    _C.SFSC.CHECKPOINT.ALLOW_PICKLE = False  # only for trusted legacy files

    _C.SFSC.DATA = CN()
    # Images that cannot be decoded (missing, empty, truncated): skip (warn and count) | fail.
    _C.SFSC.DATA.BAD_IMAGES = "skip"
    # The CustomReID dataset: a CSV file (path,pid,camid,split) or a folder laid out as
    # <split>/<pid>/<camid>/<image>; relative paths start at FASTREID_DATASETS.
    _C.SFSC.DATA.CUSTOM_PATH = ""
    # Seeds data order and augmentation by position in the sample stream: --resume continues
    # the exact batches of an uninterrupted run. Off: FastReID's own samplers and workers.
    _C.SFSC.DATA.RESUMABLE = True
    # torch.use_deterministic_algorithms: bit-for-bit repeatable runs (slower on CUDA).
    _C.SFSC.DETERMINISTIC = False

    _C.SFSC.LOG_PERIOD = 20
    # Steps with a non-finite loss or gradient are skipped; this many in a row stop training.
    _C.SFSC.MAX_NONFINITE_STEPS = 5

    # Mixed precision: float16 (CUDA, with GradScaler) or bfloat16 (CUDA or CPU, no scaler).
    _C.SOLVER.AMP.DTYPE = "float16"

    # Many-to-many evaluation.
    _C.TEST.COMPAT = CN()
    _C.TEST.COMPAT.CHUNK_SIZE = 1024  # queries per block: bounds evaluation memory
    _C.TEST.COMPAT.BACKEND = "auto"  # auto | faiss | torch


def model_widths(cfg: CN) -> Tuple[float, ...]:
    """All widths the switchable model holds (ascending): SFSC.WIDTHS and SFSC.TRAIN_WIDTH."""
    return tuple(sorted({float(w) for w in cfg.SFSC.WIDTHS} | {float(cfg.SFSC.TRAIN_WIDTH)}))
