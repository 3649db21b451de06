"""Side models: networks an objective keeps beside the classifier, in one `TrainState.aux` layout.

Every entry `state.aux[name]` is a dict
  {"params": ..., "batch_stats": ... ({} without BatchNorm)[, "opt_state": ...][, "step": ...]}
described by a `SideModel` in the objective's `side_models`:

* a trained side model (LL4AL's loss module, CrtCl's critic, TOD-code's second head, VAAL's
  VAE and sampler, ARAL's encoder, generator and sampler) has an optimiser `tx`, so its entry
  holds `opt_state`; its learning rate follows `schedule` (injected once per epoch by
  `Objective.start_epoch`, as the classifier's, so the jitted step never recompiles);
* an EMA copy (Mean Teacher's teacher, TOD's baseline model, FixMatch's evaluation model) has
  `tx=None`: the objective's step averages it with `al_jax.ema.ema_update`.

`Objective.warm_start` keeps what `warm` names from the previous cycle; the rest is fresh.
"""

import dataclasses
from typing import Any, Dict, Optional

import ml_collections
import optax

from al_jax import ALError, optim

SCHEDULES = ("constant", "classifier", "relative")
WARM = ("weights", "all", "none")


@dataclasses.dataclass(frozen=True)
class SideModel:
  """How one side model is optimised and carried across cycles.

  Attributes:
    tx: its optimiser (`optim.make_optimizer`, learning rate injectable), None for an EMA copy.
    schedule: its per-epoch learning rate — "constant" (its own rate throughout),
      "classifier" (the classifier's rate of the epoch: a module with the classifier's
      optimiser settings) or "relative" (`lr` × the classifier schedule's factor of the epoch).
    lr: its base learning rate ("relative" only).
    warm: what a warm start keeps from the previous cycle — "weights" (params and BatchNorm
      statistics, with a fresh optimiser: LL4AL's public code), "all" (also the optimiser
      state and the EMA step count) or "none" (a fresh side model).
  """
  tx: Optional[optax.GradientTransformation] = None
  schedule: str = "constant"
  lr: Optional[float] = None
  warm: str = "weights"

  def __post_init__(self):
    if self.schedule not in SCHEDULES:
      raise ALError(f"unknown side-model schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
    if self.warm not in WARM:
      raise ALError(f"unknown side-model warm start {self.warm!r}; valid: {', '.join(WARM)}")
    if self.tx is None and self.schedule != "constant":
      raise ALError("an EMA copy (tx=None) has no learning rate to schedule")
    if self.schedule == "relative" and self.lr is None:
      raise ALError("a 'relative' side-model schedule needs its base lr")

  def init(self, variables: Dict[str, Any], **extra) -> Dict[str, Any]:
    """The entry for a module's `variables` ({"params"[, "batch_stats"]}); `extra` adds fields
    (an EMA's step count)."""
    params = variables["params"]
    side = {"params": params, "batch_stats": variables.get("batch_stats", {})}
    if self.tx is not None:
      side["opt_state"] = self.tx.init(params)
    return {**side, **extra}

  def update(self, side: Dict[str, Any], grads, batch_stats=None) -> Dict[str, Any]:
    """One optimiser step on `grads`; `batch_stats` replaces the statistics when given."""
    updates, opt_state = self.tx.update(grads, side["opt_state"], side["params"])
    return {**side, "params": optax.apply_updates(side["params"], updates),
            "batch_stats": side["batch_stats"] if batch_stats is None else batch_stats,
            "opt_state": opt_state}

  def start_epoch(self, side: Dict[str, Any], classifier_lr: float,
                  classifier_base_lr: float) -> Dict[str, Any]:
    """The epoch's learning rate injected into the optimiser state (host side)."""
    if self.schedule == "constant":
      return side
    if self.schedule == "classifier":
      lr = classifier_lr
    else:
      lr = self.lr * (classifier_lr / classifier_base_lr)
    return {**side, "opt_state": optim.set_learning_rate(side["opt_state"], lr)}

  def warm_start(self, prev: Dict[str, Any], fresh: Dict[str, Any]) -> Dict[str, Any]:
    if self.warm == "all":
      return prev
    if self.warm == "weights":
      return {**fresh, "params": prev["params"], "batch_stats": prev["batch_stats"]}
    return fresh

  @staticmethod
  def variables(side: Dict[str, Any]) -> Dict[str, Any]:
    """{"params", "batch_stats"} of an entry: what its module's `apply` takes."""
    return {"params": side["params"], "batch_stats": side["batch_stats"]}


def adam(lr: float, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
  """Adam with an injectable learning rate (same factory as the classifier's optimiser)."""
  return optim.make_optimizer(ml_collections.ConfigDict(
      {"name": "adam", "lr": float(lr), "b1": float(b1), "b2": float(b2)}))


def apply_train(module, params, batch_stats, *args, **kwargs):
  """Train-mode forward threading BatchNorm statistics: returns (output, new batch_stats)."""
  out, upd = module.apply({"params": params, "batch_stats": batch_stats}, *args, train=True,
                          mutable=["batch_stats"], **kwargs)
  return out, upd.get("batch_stats", batch_stats)
