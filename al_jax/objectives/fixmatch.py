"""FixMatch (Sohn et al. 2020), CRC's SSL objective for CIFAR-10/100 (Tables 5–6).

Settings follow FixMatch's paper and the PyTorch code CRC used (kekmodel/FixMatch-pytorch):
weak view = the dataset's flip + crop, strong view = flip + crop + RandAugmentMC(2, 10) +
Cutout (`al_jax.data.randaugment`, on device); pseudo-label = argmax of the weak view's
softmax (T = 1) kept where its probability ≥ 0.95; loss = CE(labeled) + λ_u · mean over the
unlabeled batch of masked CE(strong, pseudo-label), λ_u = 1; μ = unlabeled/labeled batch
ratio (the preset sets `train.unlabeled_batch_size` = μ · `train.batch_size`, μ = 7);
learning rate × cos(7πk / 16K) over optimiser steps k with a horizon K in one of kekmodel's
two readings (`cosine_steps`): the early version CRC used (footnote 2, commit 8ca226e:
`total_steps = epochs * iteration`, K = the run's epochs × steps per epoch, default) or the
later `--total-steps` (commit e5422ac: K = 2^20 whatever the run's length); evaluation with an
EMA of the weights (decay 0.999).

EMA parameters (and BatchNorm statistics) live in `state.aux["ema"]` (an EMA copy,
`al_jax.objectives.side`, re-copied from the fresh model at a warm start); `model_state`
returns the EMA model, as kekmodel evaluates `ema_model` (`--use-ema`).
"""

import math

import jax
import jax.numpy as jnp

from al_jax import ALError, numerics, optim
from al_jax import ema as ema_lib
from al_jax.data import randaugment
from al_jax.objectives.base import OBJECTIVES, Objective, cross_entropy, masked_mean
from al_jax.objectives.side import SideModel
from al_jax.state import ModelState


def unlabeled_loss(l_weak, l_strong, threshold: float, temperature: float = 1.0):
  """FixMatch's L_u (Sohn et al. 2020, Eq. 4): (1/μB) Σ 1(max q ≥ τ) CE(strong, argmax q).

  q = softmax(weak logits / T), without gradient; the strong view is trained towards the weak
  view's pseudo-label; the mean runs over the whole unlabeled batch (masked points count as 0).
  Returns (loss, per-sample mask).
  """
  probs = jax.nn.softmax(jax.lax.stop_gradient(l_weak) / temperature)
  conf, pseudo = probs.max(-1), probs.argmax(-1)
  mask = (conf >= threshold).astype(l_strong.dtype)
  return jnp.mean(cross_entropy(l_strong, pseudo) * mask), mask


@OBJECTIVES.register("fixmatch")
class FixMatch(Objective):
  """Args (beyond `Objective`'s):
    threshold: pseudo-label confidence threshold τ (0.95).
    lambda_u: unlabeled loss weight (1).
    temperature: softmax temperature of the pseudo-label (1: hard labels from argmax).
    ema_decay: decay of the evaluation EMA (0.999).
    ema_batch_stats: also average the BatchNorm statistics into the EMA model (True: the
      early kekmodel version CRC used for its active-SSL tables, §4.3.2 footnote); False
      copies the student's statistics (the later version, used for §4.3.1).
    cosine_7_16: multiply the learning rate by FixMatch's cos(7πk / 16K).
    cosine_steps: K in optimiser steps, k = the step (kekmodel's `get_cosine_schedule_with_
      warmup`, stepped every iteration). −1 (default): K = `epochs` × `steps_per_epoch`, the
      early kekmodel version CRC names for Tables 4–6 (train.py at 8ca226e: `total_steps =
      args.epochs * args.iteration`), so a cycle ends at cos(7π/16) ≈ 0.195 of the base rate.
      > 0: that K (FixMatch §4 and kekmodel's later `--total-steps`, e5422ac: 2^20; a cycle
      that stops before K keeps a higher rate: CRC's 350 epochs × 1,024 steps end at
      cos(7π·358,400 / 16·2^20) ≈ 0.89). 0: K = the cycle's `train.epochs`, k = the epoch.
    steps_per_epoch: optimiser steps per epoch for `cosine_steps=-1`; must equal the loop's
      (`train.min_steps_per_epoch` when it exceeds the labeled batches, as in the paper
      presets). Default 1,024: the early version's `iteration = k_img // batch_size` =
      65,536 // 64.
    randaugment_n, randaugment_m: RandAugmentMC(n, m).
    cutout: Cutout square side as a fraction of the image side (0.5 = 16 px on 32×32).
  """
  name = "fixmatch"
  uses_unlabeled = True

  def __init__(self, model, prep, num_classes, optim_cfg, epochs, threshold: float = 0.95,
               lambda_u: float = 1.0, temperature: float = 1.0, ema_decay: float = 0.999,
               ema_batch_stats: bool = True, cosine_7_16: bool = True, cosine_steps: int = -1,
               steps_per_epoch: int = 1024, randaugment_n: int = 2, randaugment_m: int = 10, cutout: float = 0.5,
               **kwargs):
    super().__init__(model, prep, num_classes, optim_cfg, epochs, **kwargs)
    self.threshold = float(threshold)
    self.lambda_u = float(lambda_u)
    self.temperature = float(temperature)
    self.ema_decay = float(ema_decay)
    self.ema_batch_stats = bool(ema_batch_stats)
    self.cosine_7_16 = bool(cosine_7_16)
    if cosine_steps < -1:
      raise ALError(f"fixmatch cosine_steps must be -1 (epochs × steps_per_epoch), 0 (per "
                    f"epoch) or a positive number of steps, got {cosine_steps}")
    if cosine_steps == -1:
      if steps_per_epoch <= 0:
        raise ALError(f"fixmatch steps_per_epoch must be positive, got {steps_per_epoch}")
      cosine_steps = int(epochs) * int(steps_per_epoch)  # early kekmodel: epochs * iteration
    self.cosine_steps = int(cosine_steps)
    self.ra = (int(randaugment_n), int(randaugment_m), float(cutout))
    self.side_models = {"ema": SideModel(warm="none")}

  def init(self, rng, example_x):
    state = self.init_classifier(rng, example_x)
    return state.replace(aux={"ema": self.side_models["ema"].init(ema_lib.copy(
        {"params": state.params, "batch_stats": state.batch_stats}))})

  def start_epoch(self, state, epoch):
    state = super().start_epoch(state, epoch)
    if not self.cosine_7_16 or self.cosine_steps:
      return state  # per-step factor: `_step_factor` in the step
    # cos(7π·epoch / 16·epochs): the schedule stepped per epoch over the cycle.
    lr = optim.lr_at_epoch(self.optim_cfg, epoch, self.epochs)
    lr *= optim.cosine_7_16(epoch, self.epochs)
    return state.replace(opt_state=optim.set_learning_rate(state.opt_state, lr))

  def step_factor(self, step):
    """cos(7πk / 16K) at optimiser step k (clipped at 0 past K: kekmodel's `max(0, ·)`)."""
    k = step.astype(numerics.float_dtype())
    return jnp.maximum(0.0, jnp.cos(7.0 * math.pi * k / (16.0 * self.cosine_steps)))

  def model_state(self, state):
    ema = state.aux["ema"]
    stats = ema["batch_stats"] if self.ema_batch_stats else state.batch_stats
    return ModelState(apply_fn=self.apply_model,
                      variables={"params": ema["params"], "batch_stats": stats})

  def train_step(self, state, labeled, unlabeled, rng):
    k_l, k_w, k_s, k_drop = jax.random.split(rng, 4)
    n_l, n_u = labeled["x"].shape[0], unlabeled["x"].shape[0]
    x = jnp.concatenate([self.prep.train(k_l, labeled["x"]),
                         self.prep.train(k_w, unlabeled["x"]),
                         randaugment.strong_view(k_s, unlabeled["x"], self.prep, *self.ra)], 0)

    def loss_fn(params):
      # One forward over labeled + weak + strong: BatchNorm sees all three, as kekmodel's
      # interleaved batch.
      logits, _, stats = self.forward_train(params, state.batch_stats, x, k_drop)
      l_x, l_w, l_s = logits[:n_l], logits[n_l:n_l + n_u], logits[n_l + n_u:]
      ce = masked_mean(cross_entropy(l_x, labeled["y"]), labeled["mask"])
      lu, mask = unlabeled_loss(l_w, l_s, self.threshold, self.temperature)
      return ce + self.lambda_u * lu, (l_x, stats, ce, lu, jnp.mean(mask))

    (loss, (logits, stats, ce, lu, rate)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    if self.cosine_7_16 and self.cosine_steps:
      # The epoch's rate (from `config.optim`) × the per-step factor for this update only;
      # the stored rate stays the epoch's.
      base = state.opt_state.hyperparams["learning_rate"]
      state = state.replace(opt_state=optim.set_learning_rate(
          state.opt_state, base * self.step_factor(state.step)))
      state = state.apply_gradients(grads=grads, batch_stats=stats)
      state = state.replace(opt_state=optim.set_learning_rate(state.opt_state, base))
    else:
      state = state.apply_gradients(grads=grads, batch_stats=stats)
    ema = state.aux["ema"]
    ema = {"params": ema_lib.ema_update(ema["params"], state.params, self.ema_decay),
           "batch_stats": (ema_lib.ema_update(ema["batch_stats"], stats, self.ema_decay)
                           if self.ema_batch_stats else stats)}
    state = state.replace(aux={**state.aux, "ema": ema})
    acc = masked_mean((logits.argmax(-1) == labeled["y"]).astype(jnp.float32), labeled["mask"])
    return state, {"loss": loss, "ce": ce, "unlabeled_loss": lu, "mask_rate": rate,
                   "accuracy": acc}
