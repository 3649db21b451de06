"""CrtCl's correctness critic C_φ (CrtCl paper §III.C and §V.A).

Inputs: the classifier's last four feature maps, the input image and the output
probabilities. Each is globally average pooled (the probabilities already are a
vector), projected by a dense layer to `width` (128) with ReLU, the projections
are concatenated and one dense layer gives a scalar: the critic's estimate that
the classifier's prediction is correct (higher = more likely correct).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def global_average_pool(x: jax.Array) -> jax.Array:
  """[B,h,w,c] → [B,c]; [B,D] passes through."""
  return jnp.mean(x, axis=(1, 2)) if x.ndim == 4 else x


class Critic(nn.Module):
  """C_φ(F_θ(x)) → [B] unbounded scores (a WGAN critic, no final activation).

  Attributes:
    width: projection width of every input (paper: 128).
    normalize_inputs: divide each pooled input by its root mean square over features before
      its projection (not in the paper; False by default). With every weight clipped to
      [−c, c], an input's influence on C scales with its magnitude: pooled feature maps are
      O(1) per channel while the probabilities sum to 1, so this puts them on one scale.
  """
  width: int = 128
  normalize_inputs: bool = False

  @nn.compact
  def __call__(self, stages: Sequence[jax.Array], image: jax.Array,
               probs: jax.Array) -> jax.Array:
    inputs = [*stages, image, probs]
    # §V.A: GAP → linear → ReLU per input, concatenate, one linear layer to a scalar.
    pooled = [global_average_pool(f) for f in inputs]
    if self.normalize_inputs:
      pooled = [p * jax.lax.rsqrt(jnp.mean(jnp.square(p), -1, keepdims=True) + 1e-6)
                for p in pooled]
    h = [nn.relu(nn.Dense(self.width, name=f"proj_{i}")(p)) for i, p in enumerate(pooled)]
    return nn.Dense(1, name="out")(jnp.concatenate(h, axis=-1))[:, 0]
