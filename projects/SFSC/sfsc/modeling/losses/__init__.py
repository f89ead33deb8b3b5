from .asymmetric_loss import asymmetric_loss  # noqa: F401
from .bct_loss import bct_loss  # noqa: F401
from .evidential_loss import dirichlet_kl_to_uniform, dirichlet_strength, evidential_loss  # noqa: F401
