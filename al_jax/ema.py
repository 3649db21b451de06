"""Exponential moving averages of parameter pytrees: the one EMA every objective uses.

Mean Teacher's teacher (Tarvainen & Valpola 2017, Eq. 1 of §3), TOD's baseline model
(Huang et al. 2021, Eq. 6) and FixMatch's evaluation model (Sohn et al. 2020, §4; kekmodel's
`ModelEMA`) all keep w̃ ← α·w̃ + (1 − α)·w. The arithmetic order is fixed here (decay times the
average first), so every objective's average is bit-identical to the others' for the same
inputs; `optax.incremental_update` computes new·(1 − α) + old·α instead, which may differ in
the last bit of float32.
"""

import jax
import jax.numpy as jnp


def ema_update(ema, new, decay):
  """w̃ ← decay·w̃ + (1 − decay)·w, leaf by leaf (`decay` a float or a scalar array)."""
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, new)


def warmup_decay(t: jnp.ndarray, alpha) -> jnp.ndarray:
  """min(1 − 1/(t + 1), α) after t updates (t ≥ 1): the true average of the iterates until the
  exponential one weighs more (Mean Teacher's `update_ema_variables`, reused by the TOD code
  and by Oliver et al.'s `moving_average`)."""
  return jnp.minimum(1.0 - 1.0 / (t.astype(jnp.float32) + 1.0), alpha)


def copy(tree):
  """A fresh copy of every leaf (an EMA starts at the weights; donation never aliases them)."""
  return jax.tree_util.tree_map(jnp.copy, tree)
