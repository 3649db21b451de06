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
  """
  width: int = 128

  @nn.compact
  def __call__(self, stages: Sequence[jax.Array], image: jax.Array,
               probs: jax.Array) -> jax.Array:
    inputs = [*stages, image, probs]
    # §V.A: GAP → linear → ReLU per input, concatenate, one linear layer to a scalar.
    h = [nn.relu(nn.Dense(self.width, name=f"proj_{i}")(global_average_pool(f)))
         for i, f in enumerate(inputs)]
    return nn.Dense(1, name="out")(jnp.concatenate(h, axis=-1))[:, 0]
