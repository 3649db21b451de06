"""Floating-point policy: float32 compute, float64 under `jax.enable_x64` (reference runs).

al_jax computes its training steps in `float_dtype()`: float32, or float64 when x64 is
enabled, so any objective's step can be rerun in float64 and compared
(tests/test_float64_steps.py checks every objective this way). Acquisition scores (entropy,
margin, least confidence, BALD, EGL, core-set; BADGE excepted) and the evaluation metrics
cast to float32 and have no float64 rerun. Random numbers are always drawn in float32 / int32 and then cast, so the
float64 rerun sees exactly the same augmentations, dropout masks and noise as the float32 run
(a float64 draw from the same key would be a different number).
"""

import jax
import jax.numpy as jnp
import numpy as np


def float_dtype():
  """float32, or float64 inside `jax.enable_x64(True)` (read at trace time)."""
  return jax.dtypes.canonicalize_dtype(jnp.float64)


def normal(key: jax.Array, shape, dtype=None) -> jax.Array:
  """N(0, 1) draws made in float32, cast to `dtype` (default `float_dtype()`)."""
  return jax.random.normal(key, shape, jnp.float32).astype(dtype or float_dtype())


def uniform(key: jax.Array, shape=(), minval=0.0, maxval=1.0, dtype=None) -> jax.Array:
  """U[minval, maxval) draws made in float32, cast to `dtype` (default `float_dtype()`)."""
  u = jax.random.uniform(key, shape, jnp.float32)
  dtype = dtype or float_dtype()
  return (minval + u.astype(dtype) * (jnp.asarray(maxval, dtype) - minval)).astype(dtype)


def bernoulli(key: jax.Array, p=0.5, shape=None) -> jax.Array:
  """Boolean draws with probability `p`, compared in float32."""
  return jax.random.bernoulli(key, np.float32(p), shape)


def randint(key: jax.Array, shape, minval, maxval) -> jax.Array:
  """Integers in [minval, maxval), drawn as int32."""
  return jax.random.randint(key, shape, minval, maxval, jnp.int32)
