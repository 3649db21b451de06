"""CrtCl's acquisition (CrtCl paper §III.E): the n samples with the lowest critic score.

The critic estimates how likely the classifier is correct on x, so the points it
trusts least are queried: score = −C_φ(F_θ(x)). The critic is the side model
`"critic"` of the `critic` / `critic_no_gen` objectives.
"""

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition


@ACQUISITIONS.register("critic")
class CriticScore(Acquisition):
  requires = ("critic",)
  """Lowest critic score first (§III.E steps 2–4)."""
  name = "critic"

  def score(self, state, x, rng):
    del rng
    if "critic" not in state.aux:
      raise ALError("the critic acquisition needs an objective with a critic "
                    "(critic, critic_no_gen)")
    logits, feats = state(x)
    return -state.aux_apply["critic"](state.aux["critic"], x, logits, feats)
