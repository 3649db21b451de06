"""Behaviour that the other tests left unpinned: each test here fails under a named row of
`experiments/mutants.py` (schedules, EMA rates, reductions, views, defaults and the config's
route into the code), so the mutant table can show every row killed.

Each takes one step (or builds one preprocessing) on a tiny fixed batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from al_jax import loop, optim
from al_jax.acquisition import crc as crc_lib
from al_jax.data import randaugment as ra
from al_jax.objectives import fixmatch as fixmatch_lib
from al_jax.objectives import tod as tod_lib
from experiments.configs import get_config
from tests.conftest import (ARAL_TINY, FIXED_VIEWS, VAAL_TINY, cheap_strong_view,
                            tiny_config)

quiet = lambda s: None
# Deterministic train-mode forwards: no augmentation, no dropout.
_FIXED = FIXED_VIEWS


def _learner(method, **overrides):
  return loop.ActiveLearner(tiny_config(method, **{**_FIXED, **overrides}), log=quiet)


def _batches(learner, n=16, n_u=32):
  lab = {"x": learner.x_dev[:n], "y": jnp.asarray(learner.y_train[:n]),
         "mask": jnp.ones(n, jnp.float32)}
  return lab, {"x": learner.x_dev[n:n + n_u]}


def _flat(tree):
  return np.asarray(ravel_pytree(tree)[0])


def _copy(tree):
  return jax.tree_util.tree_map(jnp.copy, tree)


def _train_logits(obj, variables, x):
  """Train-mode (batch statistics) logits of a preprocessed batch."""
  return obj.model.apply(variables, x, train=True, mutable=["batch_stats"])[0][0]


# --- TOD §4.3, Eq. 7 --------------------------------------------------------------------------
def _tod_with_other_teacher(**overrides):
  learner = _learner("tod", **overrides)
  obj = learner.objective
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  other = obj.init(jax.random.PRNGKey(7), learner.x_train[:1])
  state = state.replace(aux=dict(state.aux, ema=dict(state.aux["ema"], params=other.params,
                                                      batch_stats=other.batch_stats)))
  lab, unl = _batches(learner)
  return learner, obj, state, dict(lab, mask=jnp.zeros_like(lab["mask"])), unl


def _tod_eq7(obj, state, x_u):
  s = tod_lib.tod_output(_train_logits(obj, {"params": state.params,
                                             "batch_stats": state.batch_stats}, x_u), "softmax")
  ema = state.aux["ema"]
  t = tod_lib.tod_output(_train_logits(obj, {"params": ema["params"],
                                             "batch_stats": ema["batch_stats"]}, x_u), "softmax")
  return float(jnp.mean(jnp.sum((s - t) ** 2, -1)))


def test_tod_eq7_scale_sum_over_classes_mean_over_batch_times_lambda():
  lam = 0.5
  learner, obj, state, lab, unl = _tod_with_other_teacher(**{"objective_kwargs.lam": lam})
  want = _tod_eq7(obj, state, obj.prep.eval(unl["x"]))
  _, m = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
  np.testing.assert_allclose(float(m["unsup"]), want, rtol=1e-4)
  # No labeled term (mask 0): the optimised loss is λ · Eq. 7.
  assert float(m["ce"]) == 0.0
  np.testing.assert_allclose(float(m["loss"]), lam * want, rtol=1e-4)


def test_tod_code_variant_is_main_tods_four_mses_of_raw_logits(monkeypatch):
  """`variant="code"` (siyuhuang/TOD main_TOD.py, train_epoch): WEIGHT·(res_loss +
  consistency_loss), res_loss = MSE(scores, cons_scores) + MSE(u_scores, cons_u_scores),
  consistency_loss = MSE(cons_scores, ema_scores) + MSE(cons_u_scores, ema_u_scores), each
  `F.mse_loss` a mean over batch and classes of raw logits; the labeled pair only over the real
  (unpadded) rows. Recomputed from deterministic train-mode forwards; each of the four terms is a
  sizeable share of the total, so dropping, summing or unmasking one moves the value. Under
  plain SGD the step's update of the classifier and of the second head is −lr × the gradient of
  that loss, so no term loses a path (the heads' outputs reach the backbone's embedding)."""
  lam, lr = 0.5, 0.1
  monkeypatch.setattr(optim, "_chain", lambda name, learning_rate, *a, **k: optax.sgd(learning_rate))
  learner, obj, state, lab, unl = _tod_with_other_teacher(**{"objective_kwargs.variant": "code",
                                                            "objective_kwargs.lam": lam,
                                                            "optim.lr": lr})
  mask = jnp.asarray(np.arange(16) < 12, jnp.float32)  # 4 padded rows
  lab = dict(lab, mask=mask)
  x, xu = obj.prep.eval(lab["x"]), obj.prep.eval(unl["x"])
  ema = state.aux["ema"]
  train_fwd = lambda v, z: obj.model.apply(v, z, train=True, mutable=["batch_stats"])[0]
  teacher = {"params": ema["params"], "batch_stats": ema["batch_stats"]}
  t_l, t_u = train_fwd(teacher, x)[0], train_fwd(teacher, xu)[0]
  mse_l = lambda a, b: jnp.sum(mask * jnp.mean(jnp.square(a - b), -1)) / jnp.sum(mask)
  mse_u = lambda a, b: jnp.mean(jnp.square(a - b))

  def loss(params, head_params):
    """(CE + λ·Σ terms, the four terms) from the student, its second head and the teacher."""
    v = {"params": params, "batch_stats": state.batch_stats}
    (s_l, f_l), (s_u, f_u) = train_fwd(v, x), train_fwd(v, xu)
    c_l = obj.cons_head.apply({"params": head_params}, f_l["embedding"])
    c_u = obj.cons_head.apply({"params": head_params}, f_u["embedding"])
    terms = {"res_labeled": mse_l(s_l, c_l), "res_unlabeled": mse_u(s_u, c_u),
             "cons_labeled": mse_l(c_l, t_l), "cons_unlabeled": mse_u(c_u, t_u)}
    ce = jnp.sum(mask * optax.softmax_cross_entropy_with_integer_labels(s_l, lab["y"]))
    return ce / jnp.sum(mask) + lam * sum(terms.values()), terms

  head = state.aux["cons_head"]["params"]
  (_, terms), (g, g_head) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
      state.params, head)
  terms = {k: float(v) for k, v in terms.items()}
  want = sum(terms.values())
  assert all(v > 0.02 * want for v in terms.values()), terms
  new, out = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
  np.testing.assert_allclose(float(out["unsup"]), want, rtol=1e-4)
  np.testing.assert_allclose(float(out["loss"]), float(out["ce"]) + lam * want, rtol=1e-4)
  for before, after, grad in ((state.params, new.params, g),
                              (head, new.aux["cons_head"]["params"], g_head)):
    np.testing.assert_allclose(_flat(after) - _flat(before), -lr * _flat(grad),
                               rtol=2e-3, atol=1e-6)

def test_tod_unlabeled_batch_gets_the_training_augmentation():
  """main_TOD.py's unlabeled loader uses the training transform: Eq. 7 is taken on a
  cropped view, not on the evaluation view."""
  learner, obj, state, lab, unl = _tod_with_other_teacher(**{"train.augment": True,
                                                            "train.crop_pad": 2})
  seen = []
  prep = obj.prep

  class Spy:  # records the batch sizes the training augmentation is applied to
    def __getattr__(self, name):
      return getattr(prep, name)

    def train(self, key, x):
      seen.append(x.shape[0])
      return prep.train(key, x)

  obj.prep = Spy()
  try:
    _, m = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
  finally:
    obj.prep = prep
  assert sorted(seen) == [len(lab["y"]), len(unl["x"])]
  assert abs(float(m["unsup"]) - _tod_eq7(obj, state, prep.eval(unl["x"]))) > 1e-6


# --- LPLgrad / LL4AL ------------------------------------------------------------------------
def test_cpu_preset_lplgrad_module_lr_stays_constant():
  """LPLgrad's public code never steps the module's scheduler; LL4AL's does."""
  assert get_config("lplgrad", "digits", "cpu").objective_kwargs.module_lr_decay is False
  assert get_config("ll4al", "digits", "cpu").objective_kwargs.module_lr_decay is True
  learner = _learner("lplgrad")
  assert learner.objective.module_lr_decay is False


@pytest.mark.parametrize("method", ["ll4al", "lplgrad", "ent_gradnorm"])
def test_loop_run_continues_the_model_across_cycles(method, monkeypatch):
  """The loop (not only `train`) hands cycle 0's final state to cycle 1 (warm start)."""
  learner = _learner(method, **{"al.cycles": 2, "train.epochs": 1})
  assert learner.config.train.warm_start
  obj = learner.objective
  ends, starts = [], []
  train = learner.train
  monkeypatch.setattr(learner, "train", lambda *a, **k: (
      lambda s: (ends.append(jax.tree_util.tree_map(np.asarray, s)), s)[1])(train(*a, **k)))
  start_epoch = obj.start_epoch
  monkeypatch.setattr(obj, "start_epoch", lambda s, e: (
      starts.append(jax.tree_util.tree_map(np.asarray, s)) if e == 0 else None,
      start_epoch(s, e))[1])
  learner.run()
  assert len(ends) == 2 and len(starts) == 2
  np.testing.assert_array_equal(_flat(starts[1].params), _flat(ends[0].params))
  if method != "ent_gradnorm":  # the loss module continues too
    np.testing.assert_array_equal(_flat(starts[1].aux["loss_net"]["params"]),
                                  _flat(ends[0].aux["loss_net"]["params"]))


# --- CRC §3.3 ------------------------------------------------------------------------------
def test_crc_default_kernel_is_the_last_layer():
  assert crc_lib.CRC().layers == "last"
  learner = loop.ActiveLearner(tiny_config("crc"), log=quiet)
  assert learner.acquisition.layers == "last"


# --- Mean Teacher -----------------------------------------------------------------------------
def _mt(**overrides):
  learner = _learner("crc", **{"objective_kwargs.noise_std": 0.0, **overrides})
  obj = learner.objective
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  lab, unl = _batches(learner)
  return learner, obj, state, lab, unl


def _mt_consistency(obj, params, batch_stats, teacher, x_all, n_l):
  s = jax.nn.softmax(_train_logits(obj, {"params": params, "batch_stats": batch_stats}, x_all))
  t = jax.nn.softmax(_train_logits(obj, {"params": teacher, "batch_stats": batch_stats}, x_all))
  return float(jnp.mean(jnp.mean((s[n_l:] - t[n_l:]) ** 2, -1)))


def _with_teacher(state, teacher_params):
  """The state with Mean Teacher's teacher (its side-model entry) set to `teacher_params`."""
  return state.replace(aux=dict(state.aux, teacher=dict(state.aux["teacher"],
                                                        params=teacher_params)))


def test_mean_teacher_consistency_weight_is_ramped_up():
  """Laine & Aila's ramp-up: at step 1 of R the weight is 8·exp(−5(1 − 1/R)²), not 8."""
  _, obj, state, lab, unl = _mt(**{"objective_kwargs.rampup_steps": 100,
                                   "objective_kwargs.consistency": 8.0})
  state = _with_teacher(state, obj.init(jax.random.PRNGKey(7), lab["x"][:1]).params)
  _, m = jax.jit(obj.train_step)(state, lab, unl, jax.random.PRNGKey(1))
  weight = (float(m["loss"]) - float(m["ce"])) / float(m["consistency"])
  np.testing.assert_allclose(weight, 8.0 * np.exp(-5.0 * (1 - 1 / 100) ** 2), rtol=1e-3)


def test_mean_teacher_ema_decay_is_capped_after_step_1():
  """decay = min(1 − 1/(t + 1), 0.95): at t = 100 the cap 0.95 holds (not 0.990)."""
  _, obj, state, lab, unl = _mt(**{"objective_kwargs.ema_decay": 0.95})
  state = state.replace(step=jnp.asarray(99, jnp.int32))
  t0 = _copy(state.aux["teacher"]["params"])
  new, _ = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
  want = jax.tree_util.tree_map(lambda a, b: 0.95 * a + 0.05 * b, t0, new.params)
  np.testing.assert_allclose(_flat(new.aux["teacher"]["params"]), _flat(want), rtol=1e-6,
                             atol=1e-7)


def test_mean_teacher_consistency_is_the_softmax_mse():
  """The consistency is the squared distance of softmax outputs, mean over classes and over
  the unlabeled batch; and the student's and teacher's views are independent draws."""
  _, obj, state, lab, unl = _mt()
  teacher = obj.init(jax.random.PRNGKey(7), lab["x"][:1]).params
  x_all = obj.prep.eval(jnp.concatenate([lab["x"], unl["x"]]))
  want = _mt_consistency(obj, state.params, state.batch_stats, teacher, x_all, 16)
  _, m = jax.jit(obj.train_step)(_with_teacher(state, teacher), lab, unl,
                                 jax.random.PRNGKey(1))
  np.testing.assert_allclose(float(m["consistency"]), want, rtol=1e-4)
  # Same weights for student and teacher: only independent augmentations separate them.
  _, obj, state, lab, unl = _mt(**{"train.augment": True, "train.crop_pad": 2})
  _, m = jax.jit(obj.train_step)(state, lab, unl, jax.random.PRNGKey(1))
  assert float(m["consistency"]) > 1e-6


def test_mean_teacher_consistency_pulls_the_student_to_the_teacher():
  _, obj, state, lab, unl = _mt(**{"objective_kwargs.rampup_steps": 0})
  teacher = obj.init(jax.random.PRNGKey(7), lab["x"][:1]).params
  state = _with_teacher(state, teacher)
  lab = dict(lab, mask=jnp.zeros_like(lab["mask"]))  # consistency alone moves the student
  x_all = obj.prep.eval(jnp.concatenate([lab["x"], unl["x"]]))
  before = _mt_consistency(obj, state.params, state.batch_stats, teacher, x_all, 16)
  new, _ = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
  after = _mt_consistency(obj, new.params, state.batch_stats, teacher, x_all, 16)
  assert after < before, (before, after)


# --- FixMatch -------------------------------------------------------------------------------
def _fixmatch(monkeypatch, strong=None, **overrides):
  # A cheap strong view (RandAugment is checked on its own below and in test_ssl.py).
  if strong is None:
    cheap_strong_view(monkeypatch)
  else:
    monkeypatch.setattr(ra, "strong_view", strong)
  learner = _learner("crc_fixmatch", **{"objective_kwargs.threshold": 0.0, **overrides})
  obj = learner.objective
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  lab, unl = _batches(learner)
  return obj, state, lab, unl


def test_fixmatch_update_uses_the_per_step_cosine_factor(monkeypatch):
  """The update at step k is lr·cos(7πk/16K) (not only the stored rate): with K = 8, step 4
  moves the weights by cos(7π/32) ≈ 0.77 of the K = 2^20 step from the same state."""
  obj, state, lab, unl = _fixmatch(monkeypatch, **{"objective_kwargs.cosine_steps": 8})
  state = state.replace(step=jnp.asarray(4, jnp.int32))
  p0 = _flat(state.params)
  moved = {}
  for k in (8, 2 ** 20):
    obj.cosine_steps = k  # a new jit traces with this K
    new, _ = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
    moved[k] = np.linalg.norm(_flat(new.params) - p0)
  want = np.cos(7 * np.pi * 4 / (16 * 8)) / np.cos(7 * np.pi * 4 / (16 * 2 ** 20))
  np.testing.assert_allclose(moved[8] / moved[2 ** 20], want, rtol=1e-3)


def test_fixmatch_pseudo_labels_come_from_the_weak_view(monkeypatch):
  """In the concatenated batch the weak view gives the pseudo-label and the strong view is
  trained on it: with blank strong images, L_u's strong logits are one repeated row; and the
  optimised loss is L_s + λ_u·L_u."""
  seen = {}
  real = fixmatch_lib.unlabeled_loss

  def spy(l_weak, l_strong, *a):
    jax.debug.callback(lambda w, s: seen.update(w=np.asarray(w), s=np.asarray(s)),
                       l_weak, l_strong)
    return real(l_weak, l_strong, *a)

  monkeypatch.setattr(fixmatch_lib, "unlabeled_loss", spy)
  blank = lambda k, x, prep, *a: prep.eval(jnp.zeros_like(x))
  obj, state, lab, unl = _fixmatch(monkeypatch, strong=blank,
                                   **{"objective_kwargs.lambda_u": 0.5})
  _, m = jax.jit(obj.train_step)(state, lab, unl, jax.random.PRNGKey(1))
  jax.effects_barrier()
  np.testing.assert_allclose(seen["s"], np.broadcast_to(seen["s"][:1], seen["s"].shape),
                             rtol=1e-5, atol=1e-6)
  assert np.ptp(seen["w"], axis=0).max() > 1e-3  # real digits: the weak rows differ
  np.testing.assert_allclose(float(m["loss"]),
                             float(m["ce"]) + 0.5 * float(m["unlabeled_loss"]), rtol=1e-5)


def test_fixmatch_ema_averages_batchnorm_statistics(monkeypatch):
  """The early kekmodel version CRC used averages the BN statistics into the EMA model."""
  obj, state, lab, unl = _fixmatch(monkeypatch)
  assert obj.ema_batch_stats
  old = _copy(state.aux["ema"]["batch_stats"])
  new, _ = jax.jit(obj.train_step)(_copy(state), lab, unl, jax.random.PRNGKey(1))
  d = obj.ema_decay
  want = jax.tree_util.tree_map(lambda e, s: d * e + (1 - d) * s, old, new.batch_stats)
  np.testing.assert_allclose(_flat(new.aux["ema"]["batch_stats"]), _flat(want), rtol=1e-5,
                             atol=1e-7)
  assert np.abs(_flat(new.aux["ema"]["batch_stats"]) - _flat(new.batch_stats)).max() > 1e-6


def test_randaugment_magnitude_range_and_apply_probability(monkeypatch):
  """RandAugmentMC: magnitude v ~ randint(1, m) (1..m−1), each op applied with p = 1/2.
  Every op is replaced by one that writes 1000 + v, so the output shows v or no change."""
  monkeypatch.setattr(ra, "OPS", tuple(
      (lambda img, v, key: jnp.full_like(img, 1000.0) + v) for _ in range(len(ra.OPS))))
  x = jnp.zeros((2000, 2, 2, 1))
  out = np.asarray(ra.rand_augment(jax.random.PRNGKey(0), x, 1, 10, 0.0))[:, 0, 0, 0]
  applied = out > 0
  assert 0.45 < applied.mean() < 0.55, applied.mean()
  assert set(np.unique(out[applied] - 1000).astype(int)) == set(range(1, 10))


# --- VAAL -------------------------------------------------------------------------------------
def _vaal_learner(**overrides):
  # The VAE and sampler see `prep.eval` images under keys of their own, so the task model's
  # augmentation and dropout (not fixed here) leave every VAAL quantity below unchanged; the
  # step is then the one the generative behaviour tests compile (VAAL_TINY).
  return loop.ActiveLearner(tiny_config("vaal", **{**VAAL_TINY, **overrides}), log=quiet)


def test_vaal_kl_is_summed_over_the_batch():
  """The official vae_loss adds β·KL summed over the batch to a per-pixel MSE: doubling the
  batch (each image twice) doubles the KL part of the transductive loss, with β = 1 and the
  VAE learning (lr > 0)."""
  learner = _vaal_learner()
  obj = learner.objective
  assert obj.kl_reduction == "sum" and obj.beta > 0
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  lab, unl = _batches(learner, n=16, n_u=16)
  step = jax.jit(obj.train_step)
  _, m1 = step(_copy(state), lab, unl, jax.random.PRNGKey(1))
  two = lambda d: {k: jnp.concatenate([v, v]) for k, v in d.items()}
  _, m2 = step(_copy(state), two(lab), two(unl), jax.random.PRNGKey(1))
  t1, t2 = float(m1["vae_transductive"]), float(m2["vae_transductive"])
  # Sum: t2 − t1 ≈ the KL part of t1 (most of it at init: 349 → 695); mean: t2 ≈ t1.
  assert t2 - t1 > 0.5 * t1, (t1, t2)


def test_vaal_vae_losses_are_eqs_1_and_2():
  """One VAE step per train step, so the metrics are evaluated at the initial VAE.
  Eq. 1: MSE(x̂, x) + β·KL at the same VAE and keys grows with β (a dropped β would not), and
  VAE steps lower the reconstruction error (a flipped MSE would raise it). Eq. 2: the encoder's
  λ·[BCE(S(μ_L), 1) + BCE(S(μ_U), 1)], recomputed from the initial VAE's train-mode means
  and the initial sampler (both targets 1)."""
  from al_jax.models import generative as gen_lib
  from al_jax.objectives.losses import bce_logits
  from al_jax.objectives.side import apply_train
  trd = {}
  for beta in (1.0, 0.0):  # β = 0 last: its learner is reused below
    learner = _vaal_learner(**{"objective_kwargs.beta": beta})
    obj = learner.objective
    state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
    lab, unl = _batches(learner, n=16, n_u=16)
    step = jax.jit(obj.train_step)
    _, m = step(_copy(state), lab, unl, jax.random.PRNGKey(1))
    trd[beta] = float(m["vae_transductive"])
  assert trd[1.0] - trd[0.0] > 0.5, trd  # the summed KL (hundreds at init)
  vae, smp = state.aux["vae"], state.aux["sampler"]["params"]
  def s_of(x):
    (mu, _), _ = apply_train(obj.vae, vae["params"], vae["batch_stats"], obj.prep.eval(x),
                             method=gen_lib.VAE.encode)
    return obj.sampler.apply({"params": smp}, mu)
  want = float(jnp.mean(bce_logits(s_of(lab["x"]), 1.0))
               + jnp.mean(bce_logits(s_of(unl["x"]), 1.0)))
  np.testing.assert_allclose(float(m["vae_adversarial"]), want, rtol=1e-5)
  wrong = float(jnp.mean(bce_logits(s_of(lab["x"]), 0.0))
                + jnp.mean(bce_logits(s_of(unl["x"]), 1.0)))
  assert abs(wrong - want) > 1e-3  # the check can tell the labeled target
  rec = []
  for i in range(15):
    state, m = step(state, lab, unl, jax.random.PRNGKey(i))
    rec.append(float(m["vae_transductive"]))  # β = 0: the reconstruction error alone
  assert min(rec) > 0 and rec[-1] < 0.9 * rec[0], rec  # a positive error that falls


# --- ARAL -------------------------------------------------------------------------------------
def _aral(**overrides):
  learner = loop.ActiveLearner(tiny_config("aral", "digits", **{**ARAL_TINY, **overrides}),
                               log=quiet)
  obj = learner.objective
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  lab, unl = _batches(learner)
  b = jax.jit(obj.prepare)(state, lab, unl, jax.random.PRNGKey(1))
  return learner, obj, state, b


def test_aral_encoder_term_lowers_d_on_real_pairs():
  """Eq. 10 with BiGAN's sign: E alone (λ_trd = λ_adv = 0: no VAE or sampler term reaches E)
  moves its real pairs (x, E(x, y), y) towards 'fake' for the fixed D: D's real-pair logits
  fall. The printed sign would raise them."""
  _, obj, state, b = _aral(**{"objective_kwargs.lambda_trd": 0.0,
                              "objective_kwargs.lambda_adv": 0.0,
                              "objective_kwargs.fm_weight": 0.0})
  new, _ = jax.jit(obj.eg_phase)(state, b)

  @jax.jit  # one program for both calls (eagerly, every op of the forward compiles alone)
  def real_logit_fn(enc):  # E's effect only: the old G, the old D
    f = obj.eg_forward({"enc": enc, "gen": state.aux["gen"]["params"]}, state, b)
    return jnp.mean(jnp.concatenate(f["d_real"]))

  real_logit = lambda enc: float(real_logit_fn(enc))

  before, after = real_logit(state.aux["enc"]["params"]), real_logit(new.aux["enc"]["params"])
  assert after < before - 1e-4, (before, after)


def test_aral_conditions_unlabeled_images_on_the_classifier_argmax():
  """§3.2: an unlabeled image's label input is ŷ = argmax C(x) of the current classifier."""
  _, obj, state, b = _aral()
  logits = obj.model_state(state)(b["x_u"])[0]
  y_hat = np.asarray(jnp.argmax(logits, -1))
  assert len(np.unique(y_hat)) > 1  # an untrained C still spreads its labels
  np.testing.assert_array_equal(np.asarray(b["y_u"]), np.eye(obj.num_classes)[y_hat])


# --- config → augmentation ------------------------------------------------------------------
def test_config_crop_and_flip_reach_preprocess():
  """`train.crop_pad` and `train.flip` decide what `Preprocess.train` does to a batch."""
  x = loop.ActiveLearner(tiny_config("random"), log=quiet).x_dev[:64]
  key = jax.random.PRNGKey(3)

  def views(method, **overrides):
    prep = loop.ActiveLearner(tiny_config(method, **overrides), log=quiet).prep
    return np.asarray(prep.train(key, x)), np.asarray(prep.eval(x))

  # CrtCl's cpu preset: crop_pad 0 on digits (never flipped) → the evaluation view.
  got, plain = views("crtcl")
  np.testing.assert_array_equal(got, plain)
  # flip "on", no crops: every image is itself or its mirror, and both occur.
  got, plain = views("random", **{"train.flip": "on", "train.crop_pad": 0})
  same = np.all(got == plain, axis=(1, 2, 3))
  mirror = np.all(got == plain[:, :, ::-1, :], axis=(1, 2, 3))
  assert np.all(same | mirror) and same.sum() > 8 and (mirror & ~same).sum() > 8
  # The dataset's default (digits: 1-pixel crops, no flips) moves some images.
  got, plain = views("random")
  assert not np.all(got == plain)


# --- PT4AL ------------------------------------------------------------------------------------
def test_pt4al_scores_least_confidence():
  """PT4AL samples within a batch by top-1 confidence, the least confident first: its score is
  1 − max p (fixed logits, exact values)."""
  from al_jax.acquisition import pt4al
  from al_jax.state import ModelState
  logits = jnp.log(jnp.array([[0.5, 0.5, 1e-12], [1.0, 1e-12, 1e-12], [0.6, 0.3, 0.1]]))
  fake = ModelState(apply_fn=lambda v, x, **kw: (logits, {}), variables={})
  np.testing.assert_allclose(pt4al._least_confidence(fake, jnp.zeros((3, 1)), None),
                             [0.5, 0.0, 0.4], atol=1e-5)


def test_aral_d_step_calls_generated_pairs_fake():
  """Eq. 8's −log(1 − D(G(z, y), z, y)): one D step (GAN terms only) lowers D's logit on
  generated pairs (the real-vs-fake gap alone also rises when D calls everything real)."""
  _, obj, state, b = _aral(**{"objective_kwargs.lambda_cls": 0.0})

  def fake_logit(st):
    xs, zs, ys = obj.d_inputs(st, b)
    d_g = obj._disc(st.params, st.batch_stats, xs, zs, ys, b["keys"][11])[0][2][1]
    return float(jnp.mean(d_g))

  before = fake_logit(state)
  after = fake_logit(jax.jit(obj.d_phase)(state, b)[0])
  assert after < before - 1e-4, (before, after)
