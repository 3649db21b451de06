"""CrtCl: cross-entropy plus a WGAN correctness critic (CrtCl paper, §III.D, Alg. 1, Eqs. 1–5).

One `train_step` is one iteration of Alg. 1:

1. classifier forward on the labeled batch; θ ← θ − η∇L_CE (line 10), through the
   classifier's optimiser (the paper's SGD with momentum and weight decay);
2. critic step on the same forward's features, detached (lines 8–9, 11):
   L_CC = Σ_{incorrect} C − Σ_{correct} C (Eq. 4), AdamW (lr 1e-3) followed by
   weight clipping to [−c, c] (`optim.clip_params`, WGAN's 1-Lipschitz constraint);
3. while epoch < E' (Alg. 1's 1-indexed epochs: E' − 1 epochs with L_CG): classifier forward
   on an unlabeled batch, the generator loss L_CG = −γ · mean_{unlabeled} C(F(x)) (Eq. 5 with
   Eq. 1's reduction: the classifier's cross-entropy is a mean over its batch, so γ weighs the
   critic score of an average unlabeled sample against the cross-entropy of an average labeled
   one) and the θ update of line 14 (`generator_step` says how it is applied, each gradient
   once). L_CG reaches the classifier only through its output probabilities (§V.A: "only
   backpropagate to the last layer of the generator"): the feature maps the critic reads are
   detached.

The critic (params + optimiser state) lives in `state.aux["critic"]` (a side model,
`al_jax.objectives.side`, kept whole across warm-started cycles); `model_state`
exposes it as the side model `"critic"` with apply function
`critic_score(params, x, logits, features) -> [B]` for the `critic` acquisition.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from al_jax import ALError
from al_jax import numerics, optim
from al_jax.models.critic import Critic
from al_jax.objectives.base import OBJECTIVES, Objective, TrainState, cross_entropy, masked_mean
from al_jax.objectives.side import SideModel
from al_jax.state import ModelState

REDUCTIONS = ("sum", "mean")
GENERATOR_STEPS = ("sequential", "joint", "optimizer")


def critic_inputs(feats, x, logits, num_stages: int = 4):
  """(last `num_stages` feature maps, input image, probabilities): CrtCl §V.A."""
  return tuple(feats["stages"][-num_stages:]), x, jax.nn.softmax(logits.astype(numerics.float_dtype()))


def wasserstein_critic_loss(c, correct, mask, reduction: str = "sum"):
  """Eq. 4: Σ_{incorrect} C − Σ_{correct} C ("mean": the per-set means of Eq. 3)."""
  inc = mask * (1.0 - correct)
  cor = mask * correct
  if reduction == "sum":
    return jnp.sum(c * inc) - jnp.sum(c * cor)
  return (jnp.sum(c * inc) / jnp.maximum(jnp.sum(inc), 1.0)
          - jnp.sum(c * cor) / jnp.maximum(jnp.sum(cor), 1.0))


@OBJECTIVES.register("critic")
class CriticLoss(Objective):
  provides = ("critic",)
  """CrtCl's objective: CE + critic trained with L_CC + generator loss L_CG until epoch E'.

  Args (beyond `Objective`'s):
    gamma: γ, weight of L_CG per unlabeled sample (paper: 0.04 CIFAR-10/100, 0.02 SVHN).
    stop_fraction: E' as a fraction of the epochs per cycle (paper: 130 of 200 = 0.65); L_CG
      runs while the 1-indexed epoch is < E' (Alg. 1 line 12), i.e. E' − 1 epochs.
    clip: c, critic weights stay in [−c, c] (the paper gives no c). Default 0.1: at WGAN's
      0.01 (Arjovsky et al. 2017) the critic's slope in the probabilities is so small that
      L_CG leaves θ bit-identical after ~200 steps (digits, cpu preset: ‖∇L_CG‖/‖∇L_CE‖
      ~1e-8); 0.1 is the smallest of {0.01, 0.1, 1} at which L_CG moves θ beyond float32
      rounding through most of its epochs, while at 1.0 γ·∇L_CG outgrows ∇L_CE up to ~70×
      and the box no longer bounds a 128-wide layer's Lipschitz constant near 1 (BUILD_NOTES
      "CrtCl"; the `gcg_ratio` metric logs the ratio).
    critic_lr: AdamW learning rate of the critic (paper: 1e-3).
    critic_weight_decay: AdamW weight decay (PyTorch's AdamW default 0.01).
    width: critic projection width (paper: 128).
    num_stages: how many of the last feature maps the critic reads (paper: 4).
    reduction: L_CC, "sum" (Eq. 4 as written) or "mean" (per-set means, Eq. 3).
    generator_step: how line 14's θ ← θ − η∇L_CG is applied, each gradient once:
      "sequential" (default; Alg. 1 as written: after the CE step, a plain gradient step on
      L_CG at the classifier's current learning rate, without the optimiser's momentum or
      weight decay), "joint" (one optimiser step on ∇L_CE + ∇L_CG, both at the pre-step θ,
      L_CG with the updated critic) or "optimizer" (a second step through the classifier's
      optimiser, which re-applies its momentum buffer and weight decay: the behaviour of
      earlier al_jax versions, kept for comparison).
    generator: backpropagate L_CG into the classifier (False: §V.E.2 ablation, the
      critic is trained but never trains the classifier).
    normalize_inputs: scale each critic input to unit RMS (`al_jax.models.critic.Critic`;
      not in the paper, off by default).
  """
  name = "critic"
  uses_unlabeled = True

  def __init__(self, model, prep, num_classes, optim_cfg, epochs, gamma: float = 0.04,
               stop_fraction: float = 0.65, clip: float = 0.1, critic_lr: float = 1e-3,
               critic_weight_decay: float = 0.01, width: int = 128, num_stages: int = 4,
               reduction: str = "sum", generator_step: str = "sequential",
               generator: bool = True, normalize_inputs: bool = False, **kwargs):
    super().__init__(model, prep, num_classes, optim_cfg, epochs, **kwargs)
    if reduction not in REDUCTIONS:
      raise ALError(f"unknown critic reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
    if generator_step not in GENERATOR_STEPS:
      raise ALError(f"unknown critic generator_step {generator_step!r}; valid: "
                    f"{', '.join(GENERATOR_STEPS)}")
    if clip <= 0:
      raise ALError(f"critic clip bound must be positive, got {clip}")
    if not 0.0 <= stop_fraction <= 1.0:
      raise ALError(f"stop_fraction must be in [0, 1], got {stop_fraction}")
    self.gamma = float(gamma)
    self.stop_epoch = int(round(stop_fraction * epochs))  # E' (paper: 130 of 200)
    self.clip = float(clip)
    self.num_stages = int(num_stages)
    self.reduction = reduction
    self.generator_step = generator_step
    self.generator = bool(generator)
    self.uses_unlabeled = self.generator
    self.critic = Critic(width=width, normalize_inputs=bool(normalize_inputs))
    critic_cfg = ml_collections.ConfigDict(dict(
        name="adamw", lr=float(critic_lr), weight_decay=float(critic_weight_decay),
        b1=0.9, b2=0.999))
    # Clipping comes last in the chain: it rewrites the AdamW update so the new weights
    # land in [−c, c] (CrtCl §III.D, WGAN Alg. 1 line 7).
    self.side_models = {"critic": SideModel(
        optim.make_optimizer(critic_cfg, extra=(optim.clip_params(self.clip),)), warm="all")}

  def generator_active(self, epoch: jnp.ndarray) -> jnp.ndarray:
    """Alg. 1 line 12, `if epoch < E'` with epochs counted from 1 (`epoch` is 0-indexed)."""
    return epoch + 1 < self.stop_epoch

  # --- state ------------------------------------------------------------------------------
  def init(self, rng, example_x):
    k_cls, k_critic = jax.random.split(rng)
    state = self.init_classifier(k_cls, example_x)
    # One compiled initialisation of the critic and its optimiser state (eager, every op
    # compiled separately: ~3.8 s of a run's first cycle on 2 cores, fashion_mnist).
    return state.replace(aux=self._jit_init_aux(k_critic, state.params, state.batch_stats,
                                                self.prep.eval(example_x[:1])))

  @functools.cached_property
  def _jit_init_aux(self):
    return jax.jit(self._init_aux)

  def _init_aux(self, k_critic, params, batch_stats, x):
    logits, feats = self.model.apply({"params": params, "batch_stats": batch_stats}, x)
    variables = self.critic.init(k_critic, *critic_inputs(feats, x, logits, self.num_stages))
    # Start inside the box too (WGAN's reference code clamps before every critic update).
    variables = jax.tree_util.tree_map(lambda p: jnp.clip(p, -self.clip, self.clip), variables)
    return {"critic": self.side_models["critic"].init(variables)}

  def critic_score(self, variables, x, logits, feats):
    """C_φ(F_θ(x)) [B] for a preprocessed batch and the classifier's outputs on it."""
    return self.critic.apply(variables, *critic_inputs(feats, x, logits, self.num_stages))

  def model_state(self, state) -> ModelState:
    return ModelState(apply_fn=self.apply_model,
                      variables={"params": state.params, "batch_stats": state.batch_stats},
                      aux={"critic": {"params": state.aux["critic"]["params"]}},
                      aux_apply=flax.core.FrozenDict({"critic": self.critic_score}))

  # --- the step ---------------------------------------------------------------------------
  def generator_loss(self, params, batch_stats, critic_params, xu, rng):
    """Eq. 5, L_CG = −γ · mean_{unlabeled} C(F(x)); returns (loss, new batch_stats).

    `critic_params` are the critic's parameters (`state.aux["critic"]["params"]`).

    A mean, as Eq. 1's cross-entropy (`masked_mean`), so that γ is a per-sample weight. The
    feature maps are detached, so the gradient reaches θ only through the output
    probabilities (§V.A); the image carries no θ dependence.
    """
    u_logits, u_feats, u_stats = self.forward_train(params, batch_stats, xu, rng)
    stages, img, probs = critic_inputs(u_feats, xu, u_logits, self.num_stages)
    c_u = self.critic.apply({"params": critic_params}, jax.lax.stop_gradient(stages), img,
                            probs)
    return -self.gamma * jnp.mean(c_u), u_stats

  def train_step(self, state: TrainState, labeled, unlabeled, rng):
    k_aug, k_drop, k_uaug, k_udrop = jax.random.split(rng, 4)
    x = self.prep.train(k_aug, labeled["x"])
    y, mask = labeled["y"], labeled["mask"]

    # Alg. 1 lines 6–7: the classifier's cross-entropy (Eq. 1, mean over the batch).
    def ce_fn(params):
      logits, feats, stats = self.forward_train(params, state.batch_stats, x, k_drop)
      return masked_mean(cross_entropy(logits, y), mask), (logits, feats, stats)

    (ce, (logits, feats, stats)), g_ce = jax.value_and_grad(ce_fn, has_aux=True)(state.params)

    # Lines 8–9, 11: critic step on the same (detached) features, Eq. 4.
    correct = (logits.argmax(-1) == y).astype(logits.dtype)
    inputs = jax.lax.stop_gradient(critic_inputs(feats, x, logits, self.num_stages))
    crit = state.aux["critic"]

    def cc_fn(cparams):
      c = self.critic.apply({"params": cparams}, *inputs)
      return wasserstein_critic_loss(c, correct, mask, self.reduction), c

    (l_cc, c), cg = jax.value_and_grad(cc_fn, has_aux=True)(crit["params"])
    crit = self.side_models["critic"].update(crit, cg)
    cparams = crit["params"]
    n_cor = jnp.sum(mask * correct)
    n_inc = jnp.sum(mask * (1.0 - correct))
    gap = (jnp.sum(c * mask * correct) / jnp.maximum(n_cor, 1.0)
           - jnp.sum(c * mask * (1.0 - correct)) / jnp.maximum(n_inc, 1.0))
    metrics = {"loss": ce, "accuracy": masked_mean(correct, mask), "critic_loss": l_cc,
               "critic_gap": gap}

    def finish(s, grads, batch_stats):
      s = s.apply_gradients(grads=grads, batch_stats=batch_stats)
      return s.replace(aux={"critic": crit})

    # Line 10: the cross-entropy step of θ.
    after_ce = finish(state, g_ce, stats)
    if not self.generator:
      return after_ce, metrics
    if unlabeled is None:
      raise ALError("the critic objective with generator=True needs unlabeled batches")

    # Lines 12–14: the generator loss on unlabeled data until E' (Eq. 5), through the
    # probabilities only; the updated critic is held fixed.
    xu = self.prep.train(k_uaug, unlabeled["x"])
    gen_grad = jax.value_and_grad(self.generator_loss, has_aux=True)
    if self.generator_step == "joint":
      # One optimiser step on ∇(L_CE + L_CG), both at the pre-step θ.
      (l_cg, u_stats), g_cg = gen_grad(state.params, stats, cparams, xu, k_udrop)
      stepped = finish(state, jax.tree_util.tree_map(jnp.add, g_ce, g_cg), u_stats)
    else:
      (l_cg, u_stats), g_cg = gen_grad(after_ce.params, after_ce.batch_stats, cparams, xu,
                                       k_udrop)
      if self.generator_step == "sequential":
        # θ ← θ − η∇L_CG at the classifier's current learning rate, nothing else.
        lr = after_ce.opt_state.hyperparams["learning_rate"]
        stepped = after_ce.replace(
            params=jax.tree_util.tree_map(lambda p, g: p - lr.astype(p.dtype) * g,
                                          after_ce.params, g_cg),
            batch_stats=u_stats)
      else:  # "optimizer": a second pass through the classifier's optimiser
        stepped = after_ce.apply_gradients(grads=g_cg, batch_stats=u_stats)
    # A select between the generator step and the CE-only state, not `lax.cond`: with the step
    # inside a conditional XLA:CPU took 61 s per ResNet-18 step of 32 (2.2 s with the select)
    # and 0.193 s per small-CNN step (0.018 s); the select costs one generator pass after E'.
    on = self.generator_active(state.epoch)
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(on, a, b), stepped, after_ce)
    metrics["gen_loss"] = jnp.where(on, l_cg, 0.0)
    # ‖∇_θ L_CG‖ / ‖∇_θ L_CE‖ of this step's two gradients (0 after E'): at WGAN's c = 0.01
    # the critic's slope in the probabilities is tiny and L_CG falls below float32 rounding
    # of θ (BUILD_NOTES "CrtCl"); logged so every run shows how much L_CG weighs.
    metrics["gcg_ratio"] = jnp.where(
        on, optax.tree.norm(g_cg) / jnp.maximum(optax.tree.norm(g_ce), 1e-30), 0.0)
    return new, metrics


@OBJECTIVES.register("critic_no_gen")
class CriticNoGenerator(CriticLoss):
  """§V.E.2 ablation: the critic is trained alongside, but L_CG never reaches the classifier."""
  name = "critic_no_gen"
  uses_unlabeled = False

  def __init__(self, *args, generator: bool = False, **kwargs):
    if generator:
      raise ALError("critic_no_gen never backpropagates L_CG; use the 'critic' objective")
    super().__init__(*args, generator=False, **kwargs)
