"""VAAL (Sinha et al. 2019, summarised in ARAL §3.1, Eqs. 1–4): β-VAE + latent sampler.

The task classifier is trained on labeled data with cross-entropy only; a β-VAE learns a
latent space from labeled and unlabeled images, and a sampler S(z) learns to tell labeled
latents from unlabeled ones while the encoder learns to fool it. The acquisition `vaal`
queries the points S rates least likely to be labeled.

Each jitted step follows the official solver's iteration: one task step, `num_vae_steps`
VAE steps, `num_adv_steps` sampler steps (1 : 2 : 1). The VAE and sampler are side models
(`al_jax.objectives.side`) in `state.aux` with their own Adam optimisers at constant rates;
a warm start keeps their weights. The loss terms shared with ARAL are in
`al_jax.objectives.losses`.
"""

from typing import Sequence

import flax
import jax
import jax.numpy as jnp

from al_jax import ALError
from al_jax.models import generative as gen_lib
from al_jax.objectives.base import OBJECTIVES, Objective, as_tuple, cross_entropy, masked_mean
from al_jax.objectives.losses import (KL_REDUCTIONS, bce_logits, gaussian_kl, mse,
                                      reduce_batch)
from al_jax.objectives.side import SideModel, adam, apply_train
from al_jax.state import ModelState


@OBJECTIVES.register("vaal")
class VAAL(Objective):
  provides = ("vae", "sampler")
  """Supervised task model + VAAL's β-VAE and sampler trained on labeled ∪ unlabeled data.

  Args (beyond `Objective`'s; defaults are the official code's, sinhasam/vaal, except the
  VAE widths, which are CPU-sized here and set to the official ones by the paper preset):
    latent_dim: d_z (32).
    vae_widths: encoder channels (official: 128, 256, 512, 1024); the decoder mirrors them.
    vae_kernel: conv kernel (4).
    sampler_hidden: sampler hidden widths (512 × 4).
    beta: β of the β-VAE (1).
    adversary_param: λ of the encoder's adversarial term (1).
    vae_lr, sampler_lr: Adam learning rates (5e-4).
    num_vae_steps, num_adv_steps: VAE and sampler steps per task step (2, 1).
    kl_reduction: "sum" — β·KL summed over the batch and the latent dimensions while the MSE
      is a per-pixel mean, as the official solver's `vae_loss` (KL ≈ B× the per-sample
      weight); "mean" — KL averaged over the batch (the per-sample β-VAE ELBO).
  """
  name = "vaal"
  uses_unlabeled = True

  def __init__(self, model, prep, num_classes, optim_cfg, epochs, latent_dim: int = 32,
               vae_widths: Sequence[int] = (32, 64), vae_kernel: int = 4,
               sampler_hidden: Sequence[int] = (512, 512, 512, 512), beta: float = 1.0,
               adversary_param: float = 1.0, vae_lr: float = 5e-4, sampler_lr: float = 5e-4,
               num_vae_steps: int = 2, num_adv_steps: int = 1, kl_reduction: str = "sum",
               **kwargs):
    super().__init__(model, prep, num_classes, optim_cfg, epochs, **kwargs)
    if kl_reduction not in KL_REDUCTIONS:
      raise ALError(f"vaal kl_reduction must be one of {KL_REDUCTIONS}, got {kl_reduction!r}")
    self.kl_reduction = kl_reduction
    if num_vae_steps < 1 or num_adv_steps < 1:
      raise ALError(f"vaal needs num_vae_steps, num_adv_steps >= 1, got "
                    f"{num_vae_steps}, {num_adv_steps}")
    self.latent_dim, self.vae_widths = int(latent_dim), as_tuple(vae_widths)
    self.vae_kernel, self.beta, self.adv = int(vae_kernel), float(beta), float(adversary_param)
    self.num_vae_steps, self.num_adv_steps = int(num_vae_steps), int(num_adv_steps)
    self.sampler = gen_lib.Sampler(as_tuple(sampler_hidden))
    self.side_models = {"vae": SideModel(adam(vae_lr)), "sampler": SideModel(adam(sampler_lr))}
    self.vae = None  # built in `init`, when the image shape is known
    self._jit_init_aux = jax.jit(self._init_aux)

  def init(self, rng, example_x):
    state = self.init_classifier(rng, example_x)
    x = self.prep.eval(example_x[:1])
    self.vae = gen_lib.VAE(tuple(x.shape[1:]), self.latent_dim, self.vae_widths, self.vae_kernel)
    # One compiled initialisation (eager Flax init compiles every initialiser op separately).
    return state.replace(aux=self._jit_init_aux(rng, x))

  def _init_aux(self, rng, x):
    k_vae, k_smp = jax.random.split(jax.random.fold_in(rng, 1))
    vae_vars = self.vae.init(k_vae, x, k_vae)
    smp_vars = self.sampler.init(k_smp, jnp.zeros((1, self.latent_dim)))
    return {"vae": self.side_models["vae"].init(vae_vars),
            "sampler": self.side_models["sampler"].init(smp_vars)}

  # --- side-model apply functions (exposed to acquisitions through ModelState.aux_apply) ---
  def vae_mean(self, variables, x, train: bool = False):
    """μ(x) of the VAE encoder (the sampler's input, official sampler.py): inference mode, or
    with `train` BatchNorm on the batch's own statistics (dropped), as the official code,
    which never calls `vae.eval()` (acquisition `vaal`, `vae_train_mode`)."""
    if train:
      return apply_train(self.vae, variables["params"], variables["batch_stats"], x,
                         method=gen_lib.VAE.encode)[0][0]
    return self.vae.apply(variables, x, method=gen_lib.VAE.encode)[0]

  def sampler_logit(self, variables, z):
    """S's logit: S(z) = sigmoid(logit) = P(labeled)."""
    return self.sampler.apply(variables, z)

  def model_state(self, state):
    aux = {"vae": SideModel.variables(state.aux["vae"]),
           "sampler": {"params": state.aux["sampler"]["params"]}}
    return ModelState(apply_fn=self.apply_model,
                      variables={"params": state.params, "batch_stats": state.batch_stats},
                      aux=aux, aux_apply=flax.core.FrozenDict(
                          {"vae": self.vae_mean, "sampler": self.sampler_logit}))

  # --- the step ----------------------------------------------------------------------------
  def train_step(self, state, labeled, unlabeled, rng):
    k_aug, k_drop, k_vae = jax.random.split(rng, 3)
    mask = labeled["mask"]

    # Task model: cross-entropy on labeled data only (VAAL trains it separately, §3.1).
    x_task = self.prep.train(k_aug, labeled["x"])

    def task_loss(params):
      logits, _, stats = self.forward_train(params, state.batch_stats, x_task, k_drop)
      return masked_mean(cross_entropy(logits, labeled["y"]), mask), (logits, stats)

    (loss_task, (logits, stats)), grads = jax.value_and_grad(task_loss, has_aux=True)(
        state.params)
    state = state.apply_gradients(grads=grads, batch_stats=stats)

    # β-VAE + adversarial encoder (Eqs. 1–3) and sampler (Eq. 4) on un-augmented images, as the
    # official code (its transforms only normalise).
    x_l, x_u = self.prep.eval(labeled["x"]), self.prep.eval(unlabeled["x"])
    vae, smp = state.aux["vae"], state.aux["sampler"]

    def vae_loss(params, batch_stats, key):
      k_l, k_u = jax.random.split(key)
      # Separate forwards for labeled and unlabeled batches, as the official solver.
      (rec_l, _, mu_l, lv_l), bs = apply_train(self.vae, params, batch_stats, x_l, k_l)
      (rec_u, _, mu_u, lv_u), bs = apply_train(self.vae, params, bs, x_u, k_u)
      # Eq. 1: reconstruction (MSE) + β·KL for both sets; KL reduced as `kl_reduction`.
      kl = lambda mu, lv, m=None: reduce_batch(gaussian_kl(mu, lv), m, self.kl_reduction)
      trd = (masked_mean(mse(rec_l, x_l), mask) + jnp.mean(mse(rec_u, x_u))
             + self.beta * (kl(mu_l, lv_l, mask) + kl(mu_u, lv_u)))
      # Eq. 2: the encoder wants S to call both labeled and unlabeled latents "labeled".
      s_p = smp["params"]
      adv = (masked_mean(bce_logits(self.sampler.apply({"params": s_p}, mu_l), 1.0), mask)
             + jnp.mean(bce_logits(self.sampler.apply({"params": s_p}, mu_u), 1.0)))
      return trd + self.adv * adv, (bs, trd, adv)

    def vae_step(i, carry):
      vae, _ = carry
      (loss, (bs, trd, adv)), g = jax.value_and_grad(vae_loss, has_aux=True)(
          vae["params"], vae["batch_stats"], jax.random.fold_in(k_vae, i))
      return self.side_models["vae"].update(vae, g, bs), jnp.stack([loss, trd, adv])

    # Unrolled (num_vae_steps is a small static count, 2 in the official solver): inside a
    # `lax.fori_loop` body XLA:CPU ran the VAE's convolutions 6.6× slower (fashion_mnist cpu
    # preset, 2 cores: 0.76 s vs 0.115 s per VAAL step), at the price of compiling the update
    # num_vae_steps times.
    carry = (vae, jnp.zeros(3))
    for i in range(self.num_vae_steps):
      carry = vae_step(i, carry)
    vae, (loss_vae, trd, adv) = carry

    # Sampler (Eq. 4) on the VAE means; the VAE runs in train mode without gradients, as the
    # official solver (`torch.no_grad()` on a module in train mode); its statistics are dropped.
    (mu_l, _), _ = apply_train(self.vae, vae["params"], vae["batch_stats"], x_l,
                               method=gen_lib.VAE.encode)
    (mu_u, _), _ = apply_train(self.vae, vae["params"], vae["batch_stats"], x_u,
                               method=gen_lib.VAE.encode)
    mu_l, mu_u = jax.lax.stop_gradient(mu_l), jax.lax.stop_gradient(mu_u)

    def smp_loss(params):
      s = lambda z: self.sampler.apply({"params": params}, z)
      return (masked_mean(bce_logits(s(mu_l), 1.0), mask)
              + jnp.mean(bce_logits(s(mu_u), 0.0)))

    def smp_step(_, carry):
      smp, _ = carry
      loss, g = jax.value_and_grad(smp_loss)(smp["params"])
      return self.side_models["sampler"].update(smp, g), loss

    smp, loss_smp = jax.lax.fori_loop(0, self.num_adv_steps, smp_step, (smp, jnp.zeros(())))

    state = state.replace(aux={"vae": vae, "sampler": smp})
    acc = masked_mean((logits.argmax(-1) == labeled["y"]).astype(jnp.float32), mask)
    return state, {"loss": loss_task, "accuracy": acc, "vae_loss": loss_vae,
                   "vae_transductive": trd, "vae_adversarial": adv, "sampler_loss": loss_smp}
