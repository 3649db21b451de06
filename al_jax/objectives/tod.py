"""TOD's semi-supervised objective (Huang et al., ICCV 2021, §4.3, Eqs. 6–9).

Cross-entropy on labeled data plus λ · mean ‖f(x;w) − f(x;w̃)‖² on unlabeled
batches, where w̃ is an exponential moving average of w (a Mean-Teacher-style
"baseline model", Eq. 6). The EMA variables live in `state.aux["ema"]` (an EMA copy,
`al_jax.objectives.side`, with its update count `"step"`) and are exposed to acquisition functions as the side model `"ema"` (EMAOD, §5.4).

Two variants (BUILD_NOTES.md, "TOD"):

* `variant="paper"` (default): Eq. 7 on unlabeled batches, f = `output`
  (softmax by default), squared L2 norm over classes, mean over the batch.
* `variant="code"`: the public code (siyuhuang/TOD, main_TOD.py): a second
  linear head c(x) on the embedding; loss weight · [MSE(logits, c) +
  MSE(c, EMA logits)] on the labeled and the unlabeled batch, MSE averaged over
  batch and classes of the raw logits. The second head has its own optimiser
  state in `state.aux["cons_head"]` (same optimiser settings, so the pair
  updates exactly as one optimiser over both parameter sets would).
"""

from typing import Dict

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import ALError
from al_jax import ema as ema_lib
from al_jax.objectives.base import OBJECTIVES, Objective, TrainState, cross_entropy, masked_mean
from al_jax.objectives.side import SideModel
from al_jax.outputs import OUTPUTS, tod_output
from al_jax.state import ModelState

VARIANTS = ("paper", "code")


def ema_decay_at(step: jnp.ndarray, alpha: float, warmup: bool) -> jnp.ndarray:
  """EMA decay after `step` updates (step ≥ 1).

  With `warmup`, min(1 − 1/(t+1), α): the true average of the iterates until the
  exponential one weighs more (Mean Teacher's `update_ema_variables`, reused by
  the TOD code); otherwise the constant α of Eq. 6.
  """
  alpha = jnp.asarray(alpha, jnp.float32)
  if not warmup:
    return alpha
  return ema_lib.warmup_decay(step, alpha)


@OBJECTIVES.register("tod_ema")
class TodEMA(Objective):
  provides = ("ema",)
  """TOD's overall objective L_S + λ·L_U (Eq. 9) with an EMA baseline model (Eq. 6).

  Args (beyond `Objective`'s):
    lam: λ, weight of the unsupervised term (paper: 0.05; the code's per-dataset
      weights are 0.02 CIFAR-10, 0.05 CIFAR-100, 0.005 SVHN).
    ema_decay: α (paper: 0.999).
    ema_warmup: decay min(1 − 1/(t+1), α) as Mean Teacher and the TOD code.
    output: f in Eq. 7, "softmax" or "logits" (paper variant only).
    variant: "paper" or "code" (module docstring).
  """
  name = "tod_ema"
  uses_unlabeled = True

  def __init__(self, model, prep, num_classes, optim_cfg, epochs, lam: float = 0.05,
               ema_decay: float = 0.999, ema_warmup: bool = True, output: str = "softmax",
               variant: str = "paper", **kwargs):
    super().__init__(model, prep, num_classes, optim_cfg, epochs, **kwargs)
    if output not in OUTPUTS:
      raise ALError(f"unknown TOD output {output!r}; valid: {', '.join(OUTPUTS)}")
    if variant not in VARIANTS:
      raise ALError(f"unknown TOD variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if not 0.0 <= ema_decay < 1.0:
      raise ALError(f"ema_decay must be in [0, 1), got {ema_decay}")
    if lam < 0:
      raise ALError(f"lam must be non-negative, got {lam}")
    self.lam = float(lam)
    self.ema_decay = float(ema_decay)
    self.ema_warmup = bool(ema_warmup)
    self.output = output
    self.variant = variant
    self.cons_head = nn.Dense(num_classes, name="cons_head")
    # main_TOD.py builds the backbone and the EMA model once per trial and keeps its global
    # step across cycles ("all"); only the optimisers and their schedules are re-created each
    # cycle. The second head is part of the backbone in the code ("weights"), with the
    # classifier's optimiser settings and schedule.
    self.side_models = {"ema": SideModel(warm="all")}
    if variant == "code":
      self.side_models["cons_head"] = SideModel(self.tx, schedule="classifier")

  # --- state ------------------------------------------------------------------------------
  def init(self, rng, example_x):
    k_cls, k_head = jax.random.split(rng)
    state = self.init_classifier(k_cls, example_x)
    # w̃ starts at w (Mean Teacher); it is a copy, so donation never aliases the two.
    # The EMA's `step` counts its updates over the whole run (main_TOD.py's global `iters`):
    # the warm-up min(1 − 1/(t+1), α) runs once per run, not once per cycle.
    aux = {"ema": self.side_models["ema"].init(
        ema_lib.copy({"params": state.params, "batch_stats": state.batch_stats}),
        step=jnp.zeros((), jnp.int32))}
    if self.variant == "code":
      _, feats = self.model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                  self.prep.eval(example_x[:1]))
      aux["cons_head"] = self.side_models["cons_head"].init(
          self.cons_head.init(k_head, feats["embedding"]))
    return state.replace(aux=aux)

  def model_state(self, state) -> ModelState:
    return ModelState(apply_fn=self.apply_model,
                      variables={"params": state.params, "batch_stats": state.batch_stats},
                      aux={"ema": SideModel.variables(state.aux["ema"])},
                      aux_apply=flax.core.FrozenDict({"ema": self.apply_model}))

  # --- the step ---------------------------------------------------------------------------
  def _teacher(self, ema, x, rng):
    """EMA model forward in train mode (BatchNorm batch statistics), as `ema.train()` in the
    TOD code and Mean Teacher; its running statistics come from these passes. No gradient."""
    (logits, feats), upd = self.model.apply(ema, x, train=True, rngs={"dropout": rng},
                                            mutable=["batch_stats"])
    return jax.lax.stop_gradient(logits), upd["batch_stats"]

  def train_step(self, state: TrainState, labeled: Dict[str, jnp.ndarray],
                 unlabeled: Dict[str, jnp.ndarray], rng):
    if unlabeled is None:
      raise ALError("tod_ema needs unlabeled batches")
    k_aug, k_drop, k_uaug, k_udrop, k_t1, k_t2 = jax.random.split(rng, 6)
    # Unlabeled batches get the training augmentation too (the code's `extra` loader).
    x = self.prep.train(k_aug, labeled["x"])
    xu = self.prep.train(k_uaug, unlabeled["x"])
    y, mask = labeled["y"], labeled["mask"]
    ema = state.aux["ema"]
    ema_vars = {"params": ema["params"], "batch_stats": ema["batch_stats"]}
    code = self.variant == "code"
    if code:
      t_lab, t_stats = self._teacher(ema_vars, x, k_t1)
      t_unl, t_stats = self._teacher({"params": ema["params"], "batch_stats": t_stats}, xu, k_t2)
    else:
      t_unl, t_stats = self._teacher(ema_vars, xu, k_t2)
      t_out = tod_output(t_unl, self.output)

    def loss_fn(params, head):
      # Labeled and unlabeled batches go through separate forward passes (as the code).
      logits, feats, stats = self.forward_train(params, state.batch_stats, x, k_drop)
      ce = masked_mean(cross_entropy(logits, y), mask)
      u_logits, u_feats, stats = self.forward_train(params, stats, xu, k_udrop)
      if code:
        c_lab = self.cons_head.apply({"params": head}, feats["embedding"])
        c_unl = self.cons_head.apply({"params": head}, u_feats["embedding"])
        mse_l = lambda a, b: masked_mean(jnp.mean(jnp.square(a - b), -1), mask)
        mse_u = lambda a, b: jnp.mean(jnp.square(a - b))
        unsup = (mse_l(logits, c_lab) + mse_u(u_logits, c_unl)             # res_loss
                 + mse_l(c_lab, t_lab) + mse_u(c_unl, t_unl))               # consistency_loss
      else:
        # Eq. 7: squared L2 distance to the EMA model's output, mean over the batch.
        unsup = jnp.mean(jnp.sum(jnp.square(tod_output(u_logits, self.output) - t_out), -1))
      return ce + self.lam * unsup, (ce, unsup, logits, stats)

    head = state.aux["cons_head"]["params"] if code else {}
    (loss, (ce, unsup, logits, stats)), (g, g_head) = jax.value_and_grad(
        loss_fn, argnums=(0, 1), has_aux=True)(state.params, head)
    state = state.apply_gradients(grads=g, batch_stats=stats)
    aux = dict(state.aux)
    if code:
      aux["cons_head"] = self.side_models["cons_head"].update(aux["cons_head"], g_head)
    # Eq. 6 after the optimiser step; BatchNorm statistics of the EMA model come from its own
    # train-mode passes (the code averages `parameters()` only). The warm-up counts steps over
    # the run (the EMA's `step`), as the code's global `iters`.
    ema_step = ema["step"] + 1
    decay = ema_decay_at(ema_step, self.ema_decay, self.ema_warmup)
    aux["ema"] = {"params": ema_lib.ema_update(ema["params"], state.params, decay),
                  "batch_stats": t_stats, "step": ema_step}
    state = state.replace(aux=aux)
    acc = masked_mean((logits.argmax(-1) == y).astype(jnp.float32), mask)
    return state, {"loss": loss, "ce": ce, "unsup": unsup, "accuracy": acc}
