"""Functions of a classifier's logits that several modules share.

TOD (Huang et al., ICCV 2021) compares the outputs f(x) of two models in its acquisition
(the cyclic output discrepancy, Eq. 5; EMAOD, §5.4) and in its objective's unsupervised
loss (Eq. 7); both read f from here so that they agree on what f is. The predictive entropy
is max-entropy sampling's score (Settles 2009) and the loss whose gradient norm LPLgrad and
Ent-GradNorm score (LPLgrad Eq. 7).
"""

import jax
import jax.numpy as jnp

from al_jax import ALError, numerics

OUTPUTS = ("softmax", "logits")


def entropy(logits: jnp.ndarray) -> jnp.ndarray:
  """Shannon entropy of softmax(logits) [B] (nats), stable for saturated logits."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  return -jnp.sum(jnp.exp(logp) * logp, -1)


def tod_output(logits: jnp.ndarray, output: str) -> jnp.ndarray:
  """f(x) of TOD's Eqs. 1, 5 and 7: class probabilities or raw logits [B, K]."""
  logits = logits.astype(numerics.float_dtype())
  if output == "softmax":
    return jax.nn.softmax(logits)
  if output == "logits":
    return logits
  raise ALError(f"unknown TOD output {output!r}; valid: {', '.join(OUTPUTS)}")
