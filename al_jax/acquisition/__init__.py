"""Acquisition functions, registered by name (importing this package registers them all)."""

from al_jax.acquisition.base import (ACQUISITIONS, Acquisition, SelectContext,  # noqa: F401
                                     Selection, acquire, map_chunks, top_k)
from al_jax.acquisition import uncertainty  # noqa: F401
from al_jax.acquisition import tod  # noqa: F401
from al_jax.acquisition import critic  # noqa: F401
from al_jax.acquisition import pt4al  # noqa: F401
from al_jax.acquisition import crc  # noqa: F401
from al_jax.acquisition import bald, coreset, gradnorm, loss_pred  # noqa: F401
from al_jax.acquisition import adversarial  # noqa: F401,E402
from al_jax.acquisition import badge  # noqa: F401,E402
