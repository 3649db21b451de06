"""A cycle's health: silent failures that would otherwise draw a curve that looks like a result.

A non-finite loss already stops a run (al_jax.loop). Two failures leave every number finite:

* `train_acc_at_chance`: the classifier never fit its own labeled batches. The objectives
  report `accuracy`, the masked training accuracy of each step's labeled batch; the flag is
  raised when its per-epoch mean stays at or below chance at every epoch, where "at chance"
  is 1/C plus `CHANCE_Z` binomial standard errors of a chance-level classifier on the
  cycle's n labeled points, sqrt((1/C)(1 − 1/C)/n) (so 20 labels of 10 classes must reach
  30%, 1000 labels 12.8%).
* `side_loss_diverged:<key>`: a side model's loss (the loss-prediction module, the critic,
  the VAE, the sampler, ARAL's encoder-generator — keys in `SIDE_LOSSES`) ended the cycle
  non-finite or above `DIVERGE_FACTOR` times its first non-zero epoch mean in absolute
  value. Side models train alongside the classifier and feed the acquisition (LL4AL's
  predicted losses, VAAL's / ARAL's sampler scores), so a diverged one makes the selection
  arbitrary while the classifier's accuracy looks normal. The critic's loss (CrtCl Eq. 4,
  Σ_incorrect C − Σ_correct C under weight clipping) is judged on finiteness alone: once the
  classifier fits its labeled batches no prediction is incorrect, the loss is −Σ C and falls
  to the clip box by design, so its size says nothing about the critic (its first epoch's
  mean is near 0, correct and incorrect terms cancelling, so the 10× rule fired in every
  CrtCl cycle 0).

Pure functions over the per-epoch metric means (one dict per epoch, as the loop logs them).
The flags are recorded in the results row's `health` field and shown by experiments.report
and the reproduction ledger; they never change what the run does.
"""

import math
from typing import Dict, List, Sequence

# Per-epoch metric keys that are a side model's training loss (al_jax/objectives/*).
SIDE_LOSSES = ("module_loss", "critic_loss", "gen_loss", "vae_loss", "sampler_loss", "eg_loss")
# Side losses unbounded below by design: only a non-finite value is a divergence.
FINITENESS_ONLY = ("critic_loss",)
DIVERGE_FACTOR = 10.0
CHANCE_Z = 3.0

TRAIN_AT_CHANCE = "train_acc_at_chance"
SIDE_DIVERGED = "side_loss_diverged"


def chance_accuracy(num_classes: int, num_labeled: int) -> float:
  """The training accuracy at or below which a cycle counts as at chance."""
  p = 1.0 / num_classes
  return p + CHANCE_Z * math.sqrt(p * (1.0 - p) / max(1, num_labeled))


def train_at_chance(epoch_means: Sequence[Dict[str, float]], num_classes: int,
                    num_labeled: int) -> bool:
  accs = [m["accuracy"] for m in epoch_means if "accuracy" in m]
  return bool(accs) and max(accs) <= chance_accuracy(num_classes, num_labeled)


def diverged_side_losses(epoch_means: Sequence[Dict[str, float]]) -> List[str]:
  """The side-model loss keys that diverged over the cycle's epochs."""
  out = []
  for key in SIDE_LOSSES:
    values = [m[key] for m in epoch_means if key in m]
    if not values:
      continue
    last = values[-1]
    # The reference is the first epoch where the side model trained (e.g. the critic's
    # generator loss is 0 until its generator switches on).
    ref = next((abs(v) for v in values if math.isfinite(v) and v != 0.0), None)
    grew = key not in FINITENESS_ONLY and ref is not None and abs(last) > DIVERGE_FACTOR * ref
    if not math.isfinite(last) or grew:
      out.append(key)
  return out


def current(recorded: Sequence[str]) -> List[str]:
  """A row's recorded flags that today's rules raise: runs recorded before the critic's loss
  was judged on finiteness alone carry `side_loss_diverged:critic_loss` from the size rule
  (a finished run's critic loss is finite: a non-finite one makes the classifier's loss
  non-finite and stops the run)."""
  retired = {f"{SIDE_DIVERGED}:{k}" for k in FINITENESS_ONLY}
  return [f for f in recorded if f not in retired]


def flags(epoch_means: Sequence[Dict[str, float]], num_classes: int,
          num_labeled: int) -> List[str]:
  """The cycle's health flags (empty when healthy)."""
  out = [TRAIN_AT_CHANCE] if train_at_chance(epoch_means, num_classes, num_labeled) else []
  return out + [f"{SIDE_DIVERGED}:{k}" for k in diverged_side_losses(epoch_means)]
