"""Learning Loss (Yoo & Kweon 2019), the training phase of LPLgrad (LPLgrad Eqs. 1–4).

The classifier is trained with cross-entropy while a side model, the loss-prediction module
(`al_jax.models.loss_net.LossNet`), learns to rank the samples of each mini-batch by their
cross-entropy from the classifier's intermediate features. Its parameters and optimiser state
live in `TrainState.aux["loss_net"]` (a side model, `al_jax.objectives.side`); `model_state` exposes it to acquisition functions as
`ModelState.aux["loss_net"]` / `aux_apply["loss_net"]` (LL4AL's `predicted_loss` scores with it,
LPLgrad's `entropy_gradnorm` ignores it).
"""

import functools

import flax
import jax
import jax.numpy as jnp

from al_jax import ALError, optim
from al_jax.models.loss_net import LossNet
from al_jax.objectives.base import OBJECTIVES, Objective, cross_entropy, masked_mean
from al_jax.objectives.side import SideModel
from al_jax.state import ModelState

PAIRINGS = ("reverse", "split")
TIES = ("negative", "ignore")


def pair_indices(batch: int, pairing: str):
  """The B//2 pairs of a mini-batch of B samples (LL4AL §3.3).

  "reverse" pairs sample i with B−1−i (the public code's `x - x.flip(0)`); "split" pairs i
  with B/2+i (the paper's "make B/2 pairs by splitting it"). Both are random pairings because
  the batch order is random. With an odd B the middle sample is left out.
  """
  half = batch // 2
  i = jnp.arange(half)
  if pairing == "reverse":
    return i, batch - 1 - i
  if pairing == "split":
    return i, batch - half + i
  raise ALError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")


def real_pairs(mask: jnp.ndarray, pairing: str):
  """`pair_indices` over the real samples of a masked batch: (i, j, valid) of B//2 slots.

  The public code pairs the samples of the batch it has, and its short last batch of an epoch
  has only the real ones (`x - x.flip(0)` on r samples pairs k with r−1−k). Here that batch is
  padded to B, so pairs are formed among the real samples in batch order (the k-th real
  with the (r−1−k)-th), not by position: by position, each real sample facing a padding slot
  would lose its ranking term. With every sample real this is `pair_indices` exactly.
  """
  batch = mask.shape[0]
  k = jnp.arange(batch // 2)
  order = jnp.argsort(mask <= 0, stable=True)  # real samples first, in batch order
  r = jnp.sum(mask > 0).astype(jnp.int32)
  half = r // 2
  if pairing == "reverse":
    a, b = k, r - 1 - k
  elif pairing == "split":
    a, b = k, r - half + k
  else:
    raise ALError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")
  valid = (k < half).astype(mask.dtype)
  return order[a], order[jnp.clip(b, 0, batch - 1)], valid


def ranking_loss(pred: jnp.ndarray, target: jnp.ndarray, mask: jnp.ndarray, margin: float = 1.0,
                 pairing: str = "reverse", ties: str = "negative") -> jnp.ndarray:
  """LL4AL Eq. 2 (LPLgrad Eq. 2): mean over pairs of max(0, −1(l_i, l_j)·(l̂_i − l̂_j) + ξ).

  Args:
    pred: predicted losses l̂ [B].
    target: true per-sample losses l [B]; gradients are stopped (public code: `.detach()`).
    mask: 1 for real samples, 0 for padding [B]; pairs are formed among the real samples
      (`real_pairs`), as the public code pairs a short last batch.
    margin: ξ (1.0 in LL4AL).
    pairing: "reverse" or "split", see `pair_indices`.
    ties: "negative" takes 1(l_i, l_j) = −1 when l_i = l_j (LL4AL's "+1 if l_i > l_j, −1
      otherwise", as the public code's `2·sign(clamp(·, min=0)) − 1`); "ignore" drops tied
      pairs.

  Returns:
    The scalar loss (0 when no pair is real).
  """
  i, j, valid = real_pairs(mask, pairing)
  if ties not in TIES:
    raise ALError(f"unknown ties rule {ties!r}; valid: {', '.join(TIES)}")
  target = jax.lax.stop_gradient(target)
  dt = target[i] - target[j]
  dp = pred[i] - pred[j]
  sign = jnp.where(dt > 0, 1.0, -1.0)
  if ties == "ignore":
    valid = valid * (dt != 0)
  per_pair = jax.nn.relu(margin - sign * dp)
  return jnp.sum(per_pair * valid) / jnp.maximum(jnp.sum(valid), 1.0)


@OBJECTIVES.register("loss_pred")
class LossPrediction(Objective):
  provides = ("loss_net",)
  """Cross-entropy + weight × loss-prediction (margin ranking) loss, LPLgrad Eq. 4.

  Args (beyond `Objective`'s):
    margin: ξ of the ranking loss (LL4AL: 1.0).
    weight: λ on the module's loss (LL4AL: 1.0; LPLgrad Eq. 4 adds the two losses).
    detach_epoch: from this epoch on (0-indexed) the module's loss no longer reaches the
      classifier's features (LL4AL §4.1: "after 120 epochs" of 200). The public code
      detaches when `epoch > 120`, i.e. from epoch 121: set 121 to reproduce it.
    hidden: width of the module's stage blocks (128).
    pairing: "reverse" (public code) or "split" (paper text).
    ties: "negative" (paper and public code) or "ignore".
    module_lr_decay: the module follows the classifier's learning-rate schedule (the
      reference code's MultiStepLR on both); False keeps it at `optim.lr` (some copies never
      step the module's scheduler).
  """
  name = "loss_pred"

  def __init__(self, model, prep, num_classes, optim_cfg, epochs, margin: float = 1.0,
               weight: float = 1.0, detach_epoch: int = 120, hidden: int = 128,
               pairing: str = "reverse", ties: str = "negative",
               module_lr_decay: bool = True, **kwargs):
    super().__init__(model, prep, num_classes, optim_cfg, epochs, **kwargs)
    if pairing not in PAIRINGS:
      raise ALError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")
    if ties not in TIES:
      raise ALError(f"unknown ties rule {ties!r}; valid: {', '.join(TIES)}")
    if margin < 0 or weight < 0 or hidden <= 0:
      raise ALError(f"loss_pred needs margin ≥ 0, weight ≥ 0, hidden > 0; got {margin}, "
                    f"{weight}, {hidden}")
    self.margin, self.weight = float(margin), float(weight)
    self.detach_epoch = int(detach_epoch)
    self.pairing, self.ties = pairing, ties
    self.module_lr_decay = bool(module_lr_decay)
    self.loss_net = LossNet(hidden=int(hidden))
    # The module gets its own optimiser with the classifier's settings (public code: two SGD
    # optimisers with identical lr, momentum and weight decay); the public code reuses both
    # models across cycles with fresh optimisers ("weights").
    self.side_models = {"loss_net": SideModel(
        optim.make_optimizer(optim_cfg),
        schedule="classifier" if self.module_lr_decay else "constant")}

  # --- side model -------------------------------------------------------------------------
  def predict_loss(self, variables, stages):
    """`aux_apply["loss_net"]`: predicted losses [B] from the classifier's stage maps."""
    return self.loss_net.apply(variables, stages)

  def init(self, rng, example_x):
    # The classifier gets the same key as under `supervised`, so for a seed both objectives
    # start from the same weights (paired comparison); the module gets a derived key.
    state = self.init_classifier(rng, example_x)
    k_mod = jax.random.fold_in(rng, 1)
    # One compiled initialisation of the module and its optimiser state (eager, every op
    # compiled separately: ~3.3 s of a run's first cycle on 2 cores, fashion_mnist).
    return state.replace(aux=self._jit_init_aux(k_mod, state.params, state.batch_stats,
                                                self.prep.eval(example_x[:1])))

  @functools.cached_property
  def _jit_init_aux(self):
    return jax.jit(self._init_aux)

  def _init_aux(self, k_mod, params, batch_stats, x):
    _, feats = self.apply_model({"params": params, "batch_stats": batch_stats}, x)
    if not feats.get("stages"):
      raise ALError("loss_pred needs a classifier with intermediate features['stages']")
    return {"loss_net": self.side_models["loss_net"].init(
        self.loss_net.init(k_mod, feats["stages"]))}

  def model_state(self, state):
    return ModelState(apply_fn=self.apply_model,
                      variables={"params": state.params, "batch_stats": state.batch_stats},
                      aux={"loss_net": {"params": state.aux["loss_net"]["params"]}},
                      aux_apply=flax.core.FrozenDict({"loss_net": self.predict_loss}))

  # --- training ---------------------------------------------------------------------------
  def train_step(self, state, labeled, unlabeled, rng):
    del unlabeled
    k_aug, k_drop = jax.random.split(rng)
    x = self.prep.train(k_aug, labeled["x"])
    mask = labeled["mask"]
    # LL4AL §4.1: after `detach_epoch` epochs the module's gradient stops at the features
    # (it keeps learning itself). `state.epoch` is data, so this never recompiles.
    detach = state.epoch >= self.detach_epoch

    def loss_fn(params, module_params):
      logits, feats, stats = self.forward_train(params, state.batch_stats, x, k_drop)
      ce = cross_entropy(logits, labeled["y"])
      stages = tuple(jnp.where(detach, jax.lax.stop_gradient(f), f) for f in feats["stages"])
      pred = self.loss_net.apply({"params": module_params}, stages)
      ce_loss = masked_mean(ce, mask)                                  # Eq. 1
      module_loss = ranking_loss(pred, ce, mask, self.margin, self.pairing, self.ties)  # Eq. 2
      total = ce_loss + self.weight * module_loss                      # Eq. 4
      return total, (logits, stats, ce_loss, module_loss)

    (total, (logits, stats, ce_loss, module_loss)), (grads, mgrads) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.params, state.aux["loss_net"]["params"])
    state = state.apply_gradients(grads=grads, batch_stats=stats)
    state = state.replace(aux={"loss_net": self.side_models["loss_net"].update(
        state.aux["loss_net"], mgrads)})
    acc = masked_mean((logits.argmax(-1) == labeled["y"]).astype(jnp.float32), mask)
    return state, {"loss": total, "ce_loss": ce_loss, "module_loss": module_loss,
                   "accuracy": acc}
