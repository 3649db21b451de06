"""LL4AL's loss-prediction module (Yoo & Kweon 2019, Fig. 2; LPLgrad's auxiliary model w_aux).

Not a classifier, so it is not in the `MODELS` registry: the `loss_pred` objective builds it
around whatever classifier the config names, from that classifier's `features["stages"]`.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import numerics


class LossNet(nn.Module):
  """Per stage: global average pool → Dense(hidden) → ReLU; concatenate → Dense(1).

  LL4AL §3.2 / LPLgrad §III-B: one block per feature stage of the target model; the
  public code uses `interm_dim=128` for every block.

  Attributes:
    hidden: width of every stage block (128 in LL4AL).
  """
  hidden: int = 128

  @nn.compact
  def __call__(self, stages: Sequence[jax.Array]) -> jax.Array:
    """Maps the classifier's stage maps ([B,h,w,c] each) to predicted losses [B]."""
    blocks = []
    for k, f in enumerate(stages):
      pooled = jnp.mean(f.astype(numerics.float_dtype()), axis=(1, 2))
      blocks.append(nn.relu(nn.Dense(self.hidden, name=f"stage{k}")(pooled)))
    return nn.Dense(1, name="out")(jnp.concatenate(blocks, axis=-1))[:, 0]
