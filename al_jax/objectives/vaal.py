"""VAAL (Sinha et al. 2019, summarised in ARAL §3.1, Eqs. 1–4): β-VAE + latent sampler.

The task classifier is trained on labeled data with cross-entropy only; a β-VAE learns a
latent space from labeled and unlabeled images, and a sampler S(z) learns to tell labeled
latents from unlabeled ones while the encoder learns to fool it. The acquisition `vaal`
queries the points S rates least likely to be labeled.

Each jitted step follows the official solver's iteration: one task step, `num_vae_steps`
VAE steps, `num_adv_steps` sampler steps (1 : 2 : 1). The VAE and sampler live in
`state.aux` with their own Adam optimisers. Helpers shared with ARAL live here too.
"""

from typing import Any, Dict, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from al_jax import ALError, optim
from al_jax.models import generative as gen_lib
from al_jax.objectives.base import OBJECTIVES, Objective, cross_entropy, masked_mean
from al_jax.state import ModelState


# --- losses shared with ARAL -------------------------------------------------------------
def bce_logits(logits: jnp.ndarray, target: float) -> jnp.ndarray:
  """Per-sample −[t log σ(l) + (1−t) log(1−σ(l))] (PyTorch's BCELoss on S's sigmoid output)."""
  return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target))


def gaussian_kl(mu: jnp.ndarray, logvar: jnp.ndarray) -> jnp.ndarray:
  """Per-sample KL(N(μ, σ²) ‖ N(0, I)), summed over latent dimensions."""
  return -0.5 * jnp.sum(1.0 + logvar - mu ** 2 - jnp.exp(logvar), -1)


KL_REDUCTIONS = ("mean", "sum")


def reduce_batch(v: jnp.ndarray, mask=None, reduction: str = "mean") -> jnp.ndarray:
  """Per-sample values → a batch mean or a batch sum (padding masked out either way)."""
  if reduction == "sum":
    return jnp.sum(v) if mask is None else jnp.sum(v * mask)
  return jnp.mean(v) if mask is None else masked_mean(v, mask)


def mse(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Per-sample mean squared error over pixels (PyTorch's MSELoss per sample)."""
  return jnp.mean((a - b) ** 2, axis=tuple(range(1, a.ndim)))


# --- side models: a module's variables + its optimiser state in `state.aux` ---------------
def adam(lr: float, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
  """Adam with an injectable learning rate (same factory as the classifier's optimiser)."""
  return optim.make_optimizer(ml_collections.ConfigDict(
      {"name": "adam", "lr": float(lr), "b1": float(b1), "b2": float(b2)}))


def init_side(variables: Dict[str, Any], tx: optax.GradientTransformation) -> Dict[str, Any]:
  params = variables["params"]
  return {"params": params, "batch_stats": variables.get("batch_stats", {}),
          "opt_state": tx.init(params)}


def update_side(side: Dict[str, Any], grads, tx: optax.GradientTransformation,
                batch_stats=None) -> Dict[str, Any]:
  updates, opt_state = tx.update(grads, side["opt_state"], side["params"])
  return {"params": optax.apply_updates(side["params"], updates),
          "batch_stats": side["batch_stats"] if batch_stats is None else batch_stats,
          "opt_state": opt_state}


def apply_train(module, params, batch_stats, *args, **kwargs):
  """Train-mode forward threading BatchNorm statistics: returns (output, new batch_stats)."""
  out, upd = module.apply({"params": params, "batch_stats": batch_stats}, *args, train=True,
                          mutable=["batch_stats"], **kwargs)
  return out, upd.get("batch_stats", batch_stats)


def as_tuple(v) -> tuple:
  return tuple(v) if isinstance(v, (list, tuple)) else (v,)


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
    self.tx_vae, self.tx_smp = adam(vae_lr), adam(sampler_lr)
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
    return {"vae": init_side(vae_vars, self.tx_vae), "sampler": init_side(smp_vars, self.tx_smp)}

  def warm_start(self, prev, fresh):
    """Keeps the classifier, VAE and sampler weights with fresh optimiser states."""
    aux = {k: dict(fresh.aux[k], params=prev.aux[k]["params"],
                   batch_stats=prev.aux[k]["batch_stats"]) for k in fresh.aux}
    return super().warm_start(prev, fresh).replace(aux=aux)

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
    aux = {"vae": {"params": state.aux["vae"]["params"],
                   "batch_stats": state.aux["vae"]["batch_stats"]},
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
      return update_side(vae, g, self.tx_vae, bs), jnp.stack([loss, trd, adv])

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
      return update_side(smp, g, self.tx_smp), loss

    smp, loss_smp = jax.lax.fori_loop(0, self.num_adv_steps, smp_step, (smp, jnp.zeros(())))

    state = state.replace(aux={"vae": vae, "sampler": smp})
    acc = masked_mean((logits.argmax(-1) == labeled["y"]).astype(jnp.float32), mask)
    return state, {"loss": loss_task, "accuracy": acc, "vae_loss": loss_vae,
                   "vae_transductive": trd, "vae_adversarial": adv, "sampler_loss": loss_smp}
