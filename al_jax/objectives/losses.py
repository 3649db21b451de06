"""Loss terms that several objectives share: VAAL's and ARAL's β-VAE and sampler losses.

VAAL (Sinha et al. 2019; ARAL §3.1, Eqs. 1–4) and ARAL (§3.2, Eqs. 5, 6, 13) train the same
kinds of VAE and latent sampler, with the official VAAL solver's reductions.
"""

import jax.numpy as jnp
import optax

from al_jax.objectives.base import masked_mean

KL_REDUCTIONS = ("mean", "sum")


def bce_logits(logits: jnp.ndarray, target: float) -> jnp.ndarray:
  """Per-sample −[t log σ(l) + (1−t) log(1−σ(l))] (PyTorch's BCELoss on S's sigmoid output)."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target))


def gaussian_kl(mu: jnp.ndarray, logvar: jnp.ndarray) -> jnp.ndarray:
  """Per-sample KL(N(μ, σ²) ‖ N(0, I)), summed over latent dimensions."""
  return -0.5 * jnp.sum(1.0 + logvar - mu ** 2 - jnp.exp(logvar), -1)


def reduce_batch(v: jnp.ndarray, mask=None, reduction: str = "mean") -> jnp.ndarray:
  """Per-sample values → a batch mean or a batch sum (padding masked out either way)."""
  if reduction == "sum":
    return jnp.sum(v) if mask is None else jnp.sum(v * mask)
  return jnp.mean(v) if mask is None else masked_mean(v, mask)


def mse(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Per-sample mean squared error over pixels (PyTorch's MSELoss per sample)."""
  return jnp.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))
