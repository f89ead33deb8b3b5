from .asymmetric_loss import asymmetric_loss  # noqa: F401
from .bct_loss import bct_loss  # noqa: F401
from .compat import (  # noqa: F401
    COMPAT_LOSSES,
    CompatLoss,
    build_compat_loss,
    compat_loss_names,
    register_compat_loss,
)
from .compat_warmup import CompatWarmup  # noqa: F401
from .distillation import InplaceDistillation, distillation_kl  # noqa: F401
from .evidential_loss import (  # noqa: F401
    clamp_forward,
    dirichlet_kl_to_uniform,
    dirichlet_strength,
    evidence,
    evidential_loss,
)
