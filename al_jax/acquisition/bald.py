"""BALD with MC dropout (Houlsby et al. 2011; Gal, Islam & Ghahramani 2017, Eq. 3).

Mutual information between the label and the weights, estimated from T stochastic forward
passes with dropout on and BatchNorm in inference mode (`state(x, dropout=True)`):

  I[y; ω | x] ≈ H[(1/T) Σ_t p_t] − (1/T) Σ_t H[p_t].
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition


def mutual_information(log_probs: jnp.ndarray) -> jnp.ndarray:
  """BALD score [B] from log-probabilities [T, B, C] of T dropout draws."""
  p = jnp.exp(log_probs)
  mean_p = jnp.mean(p, axis=0)
  predictive_entropy = -jnp.sum(xlogy(mean_p, mean_p), axis=-1)
  # 0 · log 0 = 0 (a saturated draw), as in xlogy.
  plogp = jnp.where(p > 0, p * log_probs, 0.0)
  expected_entropy = -jnp.mean(jnp.sum(plogp, axis=-1), axis=0)
  return predictive_entropy - expected_entropy


@ACQUISITIONS.register("bald")
class BALD(Acquisition):
  """Largest mutual information first.

  The model needs dropout (`model.kwargs.dropout_rate > 0`): small_cnn and mlp have it by
  default; ResNet/WRN only when configured (their reference networks have none).

  Args:
    num_samples: T, the number of dropout draws (Gal et al. 2017 use T = 20).
  """
  # Scores sample dropout masks: the model needs dropout (checked when a run is configured).
  stochastic_forward = True
  name = "bald"

  def __init__(self, num_samples: int = 20, **kwargs):
    super().__init__(**kwargs)
    if num_samples < 2:
      raise ALError(f"bald needs num_samples ≥ 2, got {num_samples}")
    self.num_samples = int(num_samples)

  def score(self, state, x, rng):
    def draw(key):
      logits = state(x, train=False, dropout=True, rngs={"dropout": key})[0]
      return jax.nn.log_softmax(logits.astype(jnp.float32))
    # Draws in turn (lax.map) so memory stays at one forward pass.
    log_probs = jax.lax.map(draw, jax.random.split(rng, self.num_samples))
    return mutual_information(log_probs)
