"""Training objectives, registered by name (importing this package registers them all)."""

from al_jax.objectives.base import OBJECTIVES, Objective, TrainState  # noqa: F401
from al_jax.objectives import supervised  # noqa: F401
from al_jax.objectives import tod  # noqa: F401
from al_jax.objectives import critic  # noqa: F401
from al_jax.objectives import mean_teacher  # noqa: F401
from al_jax.objectives import fixmatch  # noqa: F401
from al_jax.objectives import loss_pred  # noqa: F401
from al_jax.objectives import vaal  # noqa: F401,E402
from al_jax.objectives import aral  # noqa: F401,E402
