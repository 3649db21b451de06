"""Mean Teacher (Tarvainen & Valpola 2017), CRC's SSL objective for SVHN (Table 4).

Settings follow the PyTorch re-implementation of Oliver et al. 2018 that CRC used
(perrying/realistic-ssl-evaluation-pytorch, `config.py` `mt_config` and `lib/algs/mean_teacher.py`):
consistency = squared distance between the student's and the EMA teacher's softmax outputs
(mean over classes) on unlabeled data, coefficient 8 with the sigmoid ramp-up
exp(−5(1 − t)²) over 200,000 iterations, teacher EMA decay min(1 − 1/(step + 1), 0.95),
Adam lr 4e-4 (set by the preset). Noise comes from augmentation: student and teacher see
independent augmentations of the same images (the reference applies its transform inside
each forward pass), plus optional Gaussian input noise.

The teacher's parameters live in `state.aux["teacher"]["params"]` (an EMA copy,
`al_jax.objectives.side`); evaluation and acquisition
use the student, as the reference code evaluates `model`, not the teacher.
"""

import jax
import jax.numpy as jnp

from al_jax import ema as ema_lib
from al_jax import numerics
from al_jax.objectives.base import OBJECTIVES, Objective, cross_entropy, masked_mean
from al_jax.objectives.side import SideModel


def sigmoid_rampup(step: jnp.ndarray, length: float) -> jnp.ndarray:
  """exp(−5 (1 − min(step / length, 1))²) (Laine & Aila 2017; the reference's ramp-up)."""
  if length <= 0:
    return jnp.ones((), jnp.float32)
  t = jnp.minimum(step.astype(jnp.float32) / length, 1.0)
  return jnp.exp(-5.0 * (1.0 - t) ** 2)


@OBJECTIVES.register("mean_teacher")
class MeanTeacher(Objective):
  """Cross-entropy on labeled data + ramped consistency to an EMA teacher on unlabeled data.

  Args (beyond `Objective`'s):
    ema_decay: teacher EMA decay cap (0.95, Oliver et al.'s `mt_config`).
    consistency: maximum consistency coefficient (8).
    rampup_steps: sigmoid ramp-up length in optimiser steps (200,000 of 500,000).
    noise_std: Gaussian noise added to the normalised inputs of student and teacher
      (0: the reference's SVHN setting; 0.15 is its CIFAR-10 setting).
  """
  name = "mean_teacher"
  uses_unlabeled = True

  def __init__(self, model, prep, num_classes, optim_cfg, epochs, ema_decay: float = 0.95,
               consistency: float = 8.0, rampup_steps: float = 200000,
               noise_std: float = 0.0, **kwargs):
    super().__init__(model, prep, num_classes, optim_cfg, epochs, **kwargs)
    self.ema_decay = float(ema_decay)
    self.consistency = float(consistency)
    self.rampup_steps = float(rampup_steps)
    self.noise_std = float(noise_std)
    # The teacher reads the student's BatchNorm statistics, so it keeps none of its own; a
    # warm start re-copies it from the fresh student.
    self.side_models = {"teacher": SideModel(warm="none")}

  def init(self, rng, example_x):
    state = self.init_classifier(rng, example_x)
    return state.replace(aux={"teacher": self.side_models["teacher"].init(
        {"params": ema_lib.copy(state.params)})})

  def _view(self, key, x):
    k_aug, k_noise = jax.random.split(key)
    x = self.prep.train(k_aug, x)
    if self.noise_std:
      x = x + self.noise_std * numerics.normal(k_noise, x.shape, x.dtype)
    return x

  def train_step(self, state, labeled, unlabeled, rng):
    k_s, k_t, k_drop_s, k_drop_t = jax.random.split(rng, 4)
    n_l = labeled["x"].shape[0]
    x_raw = jnp.concatenate([labeled["x"], unlabeled["x"]], 0)
    x_student = self._view(k_s, x_raw)
    x_teacher = self._view(k_t, x_raw)  # an independent draw of the same augmentation
    # Teacher: train-mode forward (batch statistics, dropout) as the reference's teacher,
    # which is kept in train mode; its BatchNorm running averages are never read.
    t_logits, _, _ = self.forward_train(state.aux["teacher"]["params"], state.batch_stats,
                                        x_teacher, k_drop_t)
    t_prob = jax.lax.stop_gradient(jax.nn.softmax(t_logits[n_l:]))
    step = state.step + 1
    weight = self.consistency * sigmoid_rampup(step, self.rampup_steps)

    def loss_fn(params):
      logits, _, stats = self.forward_train(params, state.batch_stats, x_student, k_drop_s)
      ce = masked_mean(cross_entropy(logits[:n_l], labeled["y"]), labeled["mask"])
      cons = jnp.mean(jnp.mean((jax.nn.softmax(logits[n_l:]) - t_prob) ** 2, -1))
      return ce + weight * cons, (logits[:n_l], stats, ce, cons)

    (loss, (logits, stats, ce, cons)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=stats)
    # Reference `moving_average`: decay = min(1 − 1/(global_step + 1), ema_factor).
    decay = ema_lib.warmup_decay(step, self.ema_decay)
    teacher = dict(state.aux["teacher"],
                   params=ema_lib.ema_update(state.aux["teacher"]["params"], state.params, decay))
    state = state.replace(aux={**state.aux, "teacher": teacher})
    acc = masked_mean((logits.argmax(-1) == labeled["y"]).astype(jnp.float32), labeled["mask"])
    return state, {"loss": loss, "ce": ce, "consistency": cons, "accuracy": acc}
