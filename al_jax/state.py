"""The trained state that evaluation and acquisition functions see.

Objectives own their full training state (optimiser states, side models, EMA
copies). What leaves an objective after training is a `ModelState`: the
classifier's apply function and variables, plus the variables of any side
model an acquisition function may need (loss predictor, critic, sampler), and,
when the loop provides it, the previous cycle's classifier variables (TOD's
cyclic output discrepancy, Eq. 5). Acquisition functions never see optimiser
state or labels of unlabeled points.
"""

from typing import Any, Callable, Optional

import flax
import jax.numpy as jnp


@flax.struct.dataclass
class ModelState:
  """Classifier (+ side models) ready for inference.

  Attributes:
    apply_fn: `apply_fn(variables, x, train=False, dropout=None)` → `(logits, features)`,
      with `features` a dict holding at least `"embedding"` ([B, D] penultimate
      features) and `"stages"` (tuple of intermediate feature maps).
    variables: `{"params": ..., "batch_stats": ...}` of the classifier.
    aux: dict of side-model variables keyed by name (may be empty).
    aux_apply: FrozenDict name → apply function for the side models in `aux`.
    prev_variables: classifier variables at the end of the previous cycle, or None.
  """
  apply_fn: Callable = flax.struct.field(pytree_node=False)
  variables: Any
  aux: Any = flax.struct.field(default_factory=dict)
  aux_apply: Any = flax.struct.field(pytree_node=False, default=flax.core.FrozenDict())
  prev_variables: Optional[Any] = None

  def __call__(self, x: jnp.ndarray, train: bool = False, dropout=None, rngs=None):
    """Inference forward pass (BatchNorm in inference mode unless train=True)."""
    return self.apply_fn(self.variables, x, train=train, dropout=dropout, rngs=rngs)
