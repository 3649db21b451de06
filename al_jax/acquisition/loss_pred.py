"""LL4AL's acquisition (Yoo & Kweon 2019 §3.1): the highest predicted loss first.

Scores with the loss-prediction module that the `loss_pred` objective trains and exposes as
`ModelState.aux["loss_net"]` / `aux_apply["loss_net"]`, applied to the classifier's stage
features in inference mode.
"""

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition


@ACQUISITIONS.register("predicted_loss")
class PredictedLoss(Acquisition):
  requires = ("loss_net",)
  """l̂(x) from the loss-prediction module, higher = query first."""
  name = "predicted_loss"

  def score(self, state, x, rng):
    del rng
    if "loss_net" not in state.aux or "loss_net" not in state.aux_apply:
      raise ALError("acquisition 'predicted_loss' needs a loss-prediction module: use the "
                    "'loss_pred' objective (e.g. --method=ll4al)")
    _, feats = state(x)
    return state.aux_apply["loss_net"](state.aux["loss_net"], feats["stages"])
