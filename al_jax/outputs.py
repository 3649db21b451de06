"""Functions of a classifier's logits that several modules share.

TOD (Huang et al., ICCV 2021) compares the outputs f(x) of two models in its acquisition
(the cyclic output discrepancy, Eq. 5; EMAOD, §5.4) and in its objective's unsupervised
loss (Eq. 7); both read f from here so that they agree on what f is.
"""

import jax
import jax.numpy as jnp

from al_jax import ALError, numerics

OUTPUTS = ("softmax", "logits")


def tod_output(logits: jnp.ndarray, output: str) -> jnp.ndarray:
  """f(x) of TOD's Eqs. 1, 5 and 7: class probabilities or raw logits [B, K]."""
  logits = logits.astype(numerics.float_dtype())
  if output == "softmax":
    return jax.nn.softmax(logits)
  if output == "logits":
    return logits
  raise ALError(f"unknown TOD output {output!r}; valid: {', '.join(OUTPUTS)}")
