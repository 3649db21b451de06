"""Behavioural tests of the generative and SSL objectives: each checks what a loss term is for
(the direction it moves a model), so a flipped target, sign or label fails here even where the
losses stay finite and the parameters move.

ARAL (§3.2, Alg. 1): S separates labeled from unlabeled latents; E fools S (λ_adv); a D step
raises D(real) − D(fake) and an E/G step lowers it; each phase updates only its own module;
Eq. 9 trains C on generated images with the labels that generated them; c_r/f can tell
matched (x, z) pairs from shuffled ones. VAAL: the same sampler and encoder directions.
FixMatch: only confident unlabeled points contribute, through the strong view, towards the
weak view's pseudo-label. Mean Teacher: `tests/test_ssl.py` checks the teacher is the EMA of the
updated student.
"""

import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from al_jax import ALError, loop, optim
from al_jax.models import generative as gen_lib
from al_jax.objectives.fixmatch import unlabeled_loss
from tests.conftest import (ARAL_TINY, FIXED_VIEWS, VAAL_TINY, cheap_strong_view,
                            tiny_config)

quiet = lambda s: None


@functools.lru_cache(maxsize=None)
def _digits_learner(method, items=()):
  return loop.ActiveLearner(tiny_config(method, "digits", **dict(items)), log=quiet)


def _batches(learner, n=16, split_classes=False):
  """A labeled and an unlabeled batch; `split_classes`: labeled = digits 0, unlabeled = 1,
  so latents of the two sets are separable."""
  y = learner.y_train
  if split_classes:
    il, iu = np.flatnonzero(y == 0)[:n], np.flatnonzero(y == 1)[:n]
  else:
    il, iu = np.arange(n), np.arange(n, 2 * n)
  lab = {"x": learner.x_dev[il], "y": jnp.asarray(y[il]), "mask": jnp.ones(n)}
  return lab, {"x": learner.x_dev[iu]}


def _aral(split_classes=False, **overrides):
  learner = _digits_learner("aral", tuple(sorted({**ARAL_TINY, **overrides}.items())))
  obj = learner.objective
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  lab, unl = _batches(learner, split_classes=split_classes)
  b = jax.jit(obj.prepare)(state, lab, unl, jax.random.PRNGKey(1))
  return obj, state, b


def _changed(a, b):
  return any(bool(jnp.any(x != y)) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                  jax.tree_util.tree_leaves(b)))


def _sampler_prob(obj, state, b):
  mu_l, _, mu_u, _ = obj.latents(state, b)
  s = lambda z: jax.nn.sigmoid(obj.sampler_logit({"params": state.aux["smp"]["params"]}, z))
  return float(jnp.mean(s(mu_l))), float(jnp.mean(s(mu_u)))


# --- ARAL ------------------------------------------------------------------------------------
def test_aral_sampler_learns_labeled_high_unlabeled_low():
  """Eq. 13: S(μ_L) → 1, S(μ_U) → 0 on separable latents (labeled 0s, unlabeled 1s)."""
  obj, state, b = _aral(split_classes=True, **{"objective_kwargs.sampler_lr": 1e-2})
  step = jax.jit(obj.s_phase)
  for _ in range(40):
    state, _ = step(state, b)
  p_l, p_u = _sampler_prob(obj, state, b)
  assert p_l > 0.6 and p_u < 0.4, (p_l, p_u)


def test_aral_encoder_adversarial_term_fools_the_sampler():
  """Eq. 5's λ_adv term: E moves its latents so that S calls them labeled (S(μ_U) rises)."""
  obj, state, b = _aral(split_classes=True, **{
      "objective_kwargs.lambda_trd": 0.0, "objective_kwargs.lambda_gan": 0.0,
      "objective_kwargs.fm_weight": 0.0, "objective_kwargs.lambda_adv": 1.0,
      "objective_kwargs.sampler_lr": 1e-2})
  s_step, eg_step = jax.jit(obj.s_phase), jax.jit(obj.eg_phase)
  for _ in range(30):  # a sampler that separates the sets first
    state, _ = s_step(state, b)
  before_l, before = _sampler_prob(obj, state, b)
  for _ in range(10):
    state, _ = eg_step(state, b)
  after_l, after = _sampler_prob(obj, state, b)
  assert after > before + 0.05, (before, after)
  assert after_l > before_l, (before_l, after_l)  # the labeled half also wants "labeled"


def test_aral_no_active_learning_drops_the_sampler_and_the_encoders_adversarial_term():
  """§4.3 "no active learning": S is never trained and E's update ignores S (no λ_adv term);
  `aral_no_al` pairs that objective with random sampling."""
  from al_jax.methods import METHODS
  from al_jax.objectives import OBJECTIVES
  assert METHODS["aral_no_al"][:2] == ("aral_no_al", "random")
  assert OBJECTIVES.get("aral_no_al").__mro__[1].__name__ == "ARAL"
  heavy = {"objective_kwargs.lambda_trd": 0.0, "objective_kwargs.lambda_gan": 0.0,
           "objective_kwargs.fm_weight": 0.0, "objective_kwargs.lambda_adv": 1.0}
  on, state, b = _aral(split_classes=True, **heavy)
  off, state_off, b_off = _aral(split_classes=True, **heavy, **{"objective_kwargs.sampler": False})
  assert on.use_sampler and not off.use_sampler
  step = jax.jit(off.train_step)
  lab, unl = _batches(_digits_learner("aral", tuple(sorted(
      {**ARAL_TINY, **heavy, "objective_kwargs.sampler": False}.items()))), split_classes=True)
  s = state_off
  for i in range(3):
    s, m = step(s, lab, unl, jax.random.PRNGKey(i))
    assert float(m["vae_adversarial"]) == 0.0 and "sampler_loss" not in m
  assert not _changed(state_off.aux["smp"], s.aux["smp"])
  assert _changed(state_off.aux["enc"], s.aux["enc"])
  # With only λ_adv on, E's gradient comes from S alone: the full model moves E, the ablation
  # does not (the same step of the full model has a non-zero adversarial term).
  moved_on, m_on = jax.jit(on.eg_phase)(state, b)
  moved_off, m_off = jax.jit(off.eg_phase)(state_off, b_off)
  assert float(m_on["vae_adversarial"]) > 0 and float(m_off["vae_adversarial"]) == 0.0
  assert _changed(state.aux["enc"]["params"], moved_on.aux["enc"]["params"])
  assert not _changed(state_off.aux["enc"]["params"], moved_off.aux["enc"]["params"])


def _d_gap(obj, state, b):
  """Mean real/fake logit of D's real pairs (labeled, unlabeled) minus its generated pairs,
  on the inputs of D's phase."""
  xs, zs, ys = obj.d_inputs(state, b)
  (_, d_l, _), (_, d_u, _), (_, d_g, _) = obj._disc(
      state.params, state.batch_stats, xs, zs, ys, b["keys"][11])[0]
  return float(jnp.mean(jnp.concatenate([d_l, d_u])) - jnp.mean(d_g))


def _eg_gap(obj, state, b):
  """The same gap on the inputs of E/G's phase (real pairs (x, E(x)), fakes (G(z), z))."""
  eg = {k: state.aux[k]["params"] for k in ("enc", "gen")}
  f = obj.eg_forward(eg, state, b)
  return float(jnp.mean(jnp.concatenate(f["d_real"])) - jnp.mean(f["d_fake"]))


def test_aral_one_d_step_raises_and_one_eg_step_lowers_the_real_fake_gap():
  """Eq. 8: D pushes real pairs up and generated pairs down; Eqs. 7 and 10 (BiGAN sign): G
  pushes its pairs up and E pushes real pairs down. Only the GAN terms are on."""
  obj, state, b = _aral(**{"objective_kwargs.lambda_cls": 0.0, "objective_kwargs.lambda_trd": 0.0,
                           "objective_kwargs.lambda_adv": 0.0, "objective_kwargs.fm_weight": 0.0})
  before = _d_gap(obj, state, b)
  after = _d_gap(obj, jax.jit(obj.d_phase)(state, b)[0], b)
  assert after > before + 1e-3, (before, after)
  before = _eg_gap(obj, state, b)
  after = _eg_gap(obj, jax.jit(obj.eg_phase)(state, b)[0], b)
  assert after < before - 1e-3, (before, after)


def test_aral_each_phase_updates_only_its_own_modules():
  """Alg. 1: lines 10–12 update E and G, 14–16 D (classifier + c_r/f), 17–19 S."""
  obj, state, b = _aral()
  owners = {"eg_phase": {"enc", "gen"}, "d_phase": {"params"}, "s_phase": {"smp"}}
  for phase, own in owners.items():
    new, _ = jax.jit(getattr(obj, phase))(state, b)
    moved = {k for k in ("enc", "gen", "smp") if _changed(state.aux[k], new.aux[k])}
    if _changed(state.params, new.params):
      moved.add("params")
    assert moved == own, (phase, moved)
    assert not _changed(state.batch_stats, new.batch_stats)  # noisy_mlp: no BatchNorm


@pytest.mark.parametrize("term,metric,extra", [
    ("objective_kwargs.fm_weight", "feature_matching", {}),
    # β = 0: the reconstruction error alone (a falling KL could hide its sign).
    ("objective_kwargs.lambda_trd", "vae_transductive", {"objective_kwargs.beta": 0.0})])
def test_aral_eg_steps_lower_feature_matching_and_the_transductive_loss(term, metric, extra):
  """E/G's phase with one term on: feature matching (‖E D̃(x_U) − E D̃(G)‖², Salimans et al.
  2016) and Eq. 5's class-conditional reconstruction error are positive and fall under E/G's
  steps (a flipped sign would raise them)."""
  off = {k: 0.0 for k in ("objective_kwargs.fm_weight", "objective_kwargs.lambda_trd",
                          "objective_kwargs.lambda_adv", "objective_kwargs.lambda_gan")}
  obj, state, b = _aral(**{**off, term: 1.0, **extra})
  step = jax.jit(obj.eg_phase)
  vals = []
  for _ in range(15):
    state, m = step(state, b)
    vals.append(float(m[metric]))
  assert min(vals) > 0 and vals[-1] < 0.8 * vals[0], vals


def test_aral_d_steps_fit_the_labeled_batch():
  """Eq. 9's first term: the labeled cross-entropy, which trains the classifier the harness
  scores. With the GAN term off, D's steps drive it down (a sign flip would drive it up)."""
  obj, state, b = _aral(**{"objective_kwargs.lambda_gan": 0.0})
  step = jax.jit(obj.d_phase)
  losses = []
  for _ in range(25):
    state, m = step(state, b)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.5 * losses[0], losses
  assert float(m["accuracy"]) >= 0.9


def test_aral_generated_images_are_classified_as_the_label_that_generated_them():
  """Eq. 9: CE(C(G(z, y)), y). Only that term on (no GAN term, labeled batch masked out): D's
  steps teach C the generating labels of its generated batch."""
  obj, state, b = _aral(**{"objective_kwargs.lambda_gan": 0.0})
  b = dict(b, mask=jnp.zeros_like(b["mask"]))
  xs, _, ys = obj.d_inputs(state, b)
  x_g, y_g = xs[2], jnp.argmax(ys[2], -1)
  step = jax.jit(obj.d_phase)
  for _ in range(40):
    state, _ = step(state, b)
  pred = jnp.argmax(obj.model.apply({"params": state.params["cls"]}, x_g)[0], -1)
  assert float(jnp.mean(pred == y_g)) >= 0.9


@pytest.mark.parametrize("joint", ["bilinear", "mlp"])
def test_real_fake_head_tells_matched_from_shuffled_pairs(joint):
  """c_r/f with an x–z interaction learns whether z belongs to x (z = A·h + noise); a head
  linear in [h, z, y] gives the same mean logit for matched and shuffled pairs, whatever its
  weights, so it cannot (BiGAN needs the joint judgement)."""
  k = jax.random.split(jax.random.PRNGKey(0), 4)
  n, dh, dz = 256, 16, 8
  h = jax.random.normal(k[0], (n, dh))
  z = h @ jax.random.normal(k[1], (dh, dz)) / 4 + 0.1 * jax.random.normal(k[2], (n, dz))
  y = jax.nn.one_hot(jnp.arange(n) % 3, 3)
  perm = jax.random.permutation(k[3], n)
  hh, zz, yy = (jnp.concatenate([h, h]), jnp.concatenate([z, z[perm]]),
                jnp.concatenate([y, y]))
  target = jnp.concatenate([jnp.ones(n), jnp.zeros(n)])

  linear = gen_lib.RealFakeHead(joint="none")
  p = linear.init(jax.random.PRNGKey(1), h, z, y)
  out = linear.apply(p, hh, zz, yy)
  np.testing.assert_allclose(jnp.mean(out[:n]), jnp.mean(out[n:]), atol=1e-5)

  head = gen_lib.RealFakeHead(joint=joint, hidden=64)
  params = head.init(jax.random.PRNGKey(1), h, z, y)
  tx = optax.adam(1e-2)
  opt = tx.init(params)
  loss = lambda p: jnp.mean(optax.sigmoid_binary_cross_entropy(head.apply(p, hh, zz, yy),
                                                               target))

  @jax.jit
  def step(params, opt):
    g = jax.grad(loss)(params)
    upd, opt = tx.update(g, opt)
    return optax.apply_updates(params, upd), opt

  for _ in range(200):
    params, opt = step(params, opt)
  acc = jnp.mean((head.apply(params, hh, zz, yy) > 0) == (target > 0))
  assert float(acc) > 0.9


def test_aral_default_head_judges_x_and_z_jointly_and_no_encoder_drops_z():
  obj, state, b = _aral()
  assert obj.rf_head.joint == "mlp" and "joint_hidden" in state.params["rf"]
  # D's output on real pairs changes when the latents are shuffled across images.
  xs, zs, ys = obj.d_inputs(state, b)
  run = lambda z: obj._disc(state.params, state.batch_stats, xs, z, ys, b["keys"][11])[0][1][1]
  d_matched = run(zs)
  d_shuffled = run((zs[0], zs[1][::-1], zs[2]))
  assert float(jnp.max(jnp.abs(d_matched - d_shuffled))) > 1e-3
  # §4.3 "no encoder": no E, no S, and D has no z input.
  learner = _digits_learner("aral_no_encoder", tuple(sorted(ARAL_TINY.items())))
  ne = learner.objective
  s = ne.init(jax.random.PRNGKey(0), learner.x_train[:1])
  assert set(s.aux) == {"gen"} and set(s.params["rf"]) == {"linear", "projection"}
  assert s.params["rf"]["linear"]["kernel"].shape[0] == 32 + 10  # [D̃(x), y]
  assert not ne.model_state(s).aux


# --- VAAL ------------------------------------------------------------------------------------
def _vaal_learner(**overrides):
  return _digits_learner("vaal", tuple(sorted({**VAAL_TINY, **overrides}.items())))


def _vaal(vae_lr=None, sampler_lr=None, **overrides):
  learner = _vaal_learner(**overrides)
  obj = learner.objective
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  aux = dict(state.aux)
  for name, lr in (("vae", vae_lr), ("sampler", sampler_lr)):
    if lr is not None:  # on the state: one compiled init for every rate (VAAL_TINY)
      aux[name] = dict(aux[name], opt_state=optim.set_learning_rate(aux[name]["opt_state"], lr))
  state = state.replace(aux=aux)
  lab, unl = _batches(learner, split_classes=True)
  ms = lambda st: obj.model_state(st)

  def probs(st):
    m = ms(st)
    s = lambda x: jnp.mean(jax.nn.sigmoid(m.aux_apply["sampler"](
        m.aux["sampler"], m.aux_apply["vae"](m.aux["vae"], obj.prep.eval(x)))))
    return float(s(lab["x"])), float(s(unl["x"]))

  step = jax.jit(obj.train_step)
  return obj, state, step, lab, unl, probs


def test_vaal_sampler_learns_labeled_high_unlabeled_low():
  """Eq. 4 with a frozen VAE (learning rate 0): S(μ_L) → 1, S(μ_U) → 0."""
  obj, state, step, lab, unl, probs = _vaal(vae_lr=0.0, sampler_lr=2e-3)
  for i in range(30):
    state, _ = step(state, lab, unl, jax.random.PRNGKey(i))
  p_l, p_u = probs(state)
  assert p_l > 0.6 and p_u < 0.4, (p_l, p_u)


def test_vaal_encoder_fools_a_frozen_sampler():
  """Eqs. 2–3 with a frozen sampler (learning rate 0): the VAE raises S(μ_U) (0.45 → 0.67 in 20
  steps). β = 0, so the batch-summed KL does not swamp the adversarial term's direction."""
  obj, state, step, lab, unl, probs = _vaal(sampler_lr=0.0, **{"objective_kwargs.beta": 0.0})
  _, before = probs(state)
  for i in range(20):  # one VAE update per step (VAAL_TINY)
    state, _ = step(state, lab, unl, jax.random.PRNGKey(i))
  _, after = probs(state)
  assert after > before + 0.1, (before, after)


# --- FixMatch --------------------------------------------------------------------------------
def test_fixmatch_only_confident_points_train_the_strong_view_on_the_pseudo_label():
  """L_u = (1/μB) Σ 1(max q_w ≥ τ) CE(p_s, argmax q_w): no gradient through the weak view,
  none from unconfident points, and the strong view's gradient points at the pseudo-label."""
  tau = 0.95
  l_w = jnp.array([[8.0, 0.0, 0.0],     # confident, pseudo-label 0
                   [0.0, 0.0, 9.0],     # confident, pseudo-label 2
                   [1.0, 0.5, 0.0],     # unconfident
                   [0.0, 2.0, 0.0]])    # unconfident (max prob 0.79)
  l_s = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [2.0, 0.0, 0.0]])
  (loss, mask), (g_w, g_s) = jax.value_and_grad(
      lambda w, s: unlabeled_loss(w, s, tau), argnums=(0, 1), has_aux=True)(l_w, l_s)
  np.testing.assert_array_equal(mask, [1.0, 1.0, 0.0, 0.0])
  pseudo = jnp.array([0, 2])
  want = jnp.sum(optax.softmax_cross_entropy_with_integer_labels(l_s[:2], pseudo)) / 4
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_array_equal(g_w, 0.0)
  np.testing.assert_array_equal(g_s[2:], 0.0)
  want_g = (jax.nn.softmax(l_s[:2]) - jax.nn.one_hot(pseudo, 3)) / 4
  np.testing.assert_allclose(g_s[:2], want_g, rtol=1e-5, atol=1e-7)


def _fixmatch_learner(monkeypatch, items):
  """The K tests below are about the factor and the rate, not the views: they run FixMatch's
  step with the pinned behaviour tests' fixed views, cheap strong view and batches (16
  labeled, 32 unlabeled), so the K = 2^20 step is the program those tests compile."""
  cheap_strong_view(monkeypatch)
  return _digits_learner("crc_fixmatch", tuple(sorted({**FIXED_VIEWS, **items}.items())))


def test_fixmatch_cosine_horizon_is_in_steps(monkeypatch):
  """cos(7πk/16K) with K in optimiser steps: the paper presets' K = 2^20 leaves a CRC cycle's
  last step (350 × 1,024) at ≈ 0.89 of the base rate."""
  learner = _fixmatch_learner(monkeypatch, {"objective_kwargs.cosine_steps": 2 ** 20,
                                            "objective_kwargs.threshold": 0.0})
  obj = learner.objective
  k = 350 * 1024
  np.testing.assert_allclose(float(obj.step_factor(jnp.asarray(k))),
                             np.cos(7 * np.pi * k / (16 * 2 ** 20)), rtol=1e-6)
  assert float(obj.step_factor(jnp.asarray(k))) > 0.88
  assert float(obj.step_factor(jnp.asarray(2 ** 21))) == 0.0
  # In the step: the update at step k uses base × factor(k); the stored rate stays the base.
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  state = state.replace(step=jnp.asarray(k, jnp.int32))
  lab, _ = _batches(learner)
  new, _ = jax.jit(obj.train_step)(state, lab, {"x": learner.x_dev[16:48]},
                                   jax.random.PRNGKey(0))
  assert float(new.opt_state.hyperparams["learning_rate"]) == pytest.approx(1e-3)


@pytest.mark.parametrize("reading", ["epochs", "total_steps"])
def test_fixmatch_cosine_horizon_readings_at_the_end_of_a_cycle(reading, monkeypatch):
  """kekmodel's two horizons for a CRC cycle of 350 epochs × 1,024 steps: the early version
  (K = epochs × iteration, CRC footnote 2; the default) ends at cos(7π/16) ≈ 0.195 of the base
  rate, the later `--total-steps` 2^20 at ≈ 0.89; the last update is scaled by that factor."""
  k_end = 350 * 1024
  items = {"train.epochs": 350, "objective_kwargs.threshold": 0.0}
  if reading == "epochs":
    items.update({"objective_kwargs.cosine_steps": -1, "objective_kwargs.steps_per_epoch": 1024})
    want = np.cos(7 * np.pi / 16)
  else:
    items["objective_kwargs.cosine_steps"] = 2 ** 20
    want = np.cos(7 * np.pi * k_end / (16 * 2 ** 20))
  learner = _fixmatch_learner(monkeypatch, items)
  obj = learner.objective
  assert obj.cosine_steps == (k_end if reading == "epochs" else 2 ** 20)
  np.testing.assert_allclose(float(obj.step_factor(jnp.asarray(k_end))), want, rtol=1e-5)
  assert (float(obj.step_factor(jnp.asarray(k_end))) < 0.2) == (reading == "epochs")
  # The update of step k_end is the unscaled one times the factor (Adam's first step moves
  # each weight by lr·ĝ/(|ĝ|+ε): linear in the rate).
  flat_obj = copy.copy(obj)
  flat_obj.cosine_7_16 = False
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 349)
  state = state.replace(step=jnp.asarray(k_end, jnp.int32))
  lab, _ = _batches(learner)
  unl = {"x": learner.x_dev[16:48]}
  flat = lambda t: np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(t)])
  p0 = flat(state.params)
  scaled = flat(jax.jit(obj.train_step)(state, lab, unl, jax.random.PRNGKey(0))[0].params) - p0
  plain = flat(jax.jit(flat_obj.train_step)(state, lab, unl,
                                            jax.random.PRNGKey(0))[0].params) - p0
  big = np.abs(plain) > 1e-5
  np.testing.assert_allclose(scaled[big] / plain[big], want, rtol=2e-3)


def test_fixmatch_default_horizon_is_the_early_kekmodel_version():
  from al_jax.objectives.fixmatch import FixMatch
  learner = _digits_learner("crc_fixmatch")
  obj = FixMatch(learner.objective.model, learner.prep, 10, learner.objective.optim_cfg, 350)
  assert obj.cosine_steps == 350 * 1024
  with pytest.raises(ALError, match="cosine_steps"):
    FixMatch(learner.objective.model, learner.prep, 10, learner.objective.optim_cfg, 350,
             cosine_steps=-2)


def test_vaal_scores_with_train_mode_batch_statistics_by_default():
  """The official code never calls vae.eval(): sampler.py's μ(x) uses each scored batch's own
  BatchNorm statistics. Default: that mode, in a random order of batches of 128; the selection
  is the top of those scores. Inference mode (running statistics) gives other scores."""
  from al_jax.acquisition import ACQUISITIONS
  from al_jax.acquisition.base import SelectContext, acquire, top_k
  obj, state, step, lab, unl, _ = _vaal()
  learner = _vaal_learner()
  for i in range(3):
    state, _ = step(state, lab, unl, jax.random.PRNGKey(i))
  mstate = obj.model_state(state)
  pool = learner.initial_pool()
  train_acq = ACQUISITIONS.get("vaal")()
  eval_acq = ACQUISITIONS.get("vaal")(vae_train_mode=False)
  assert train_acq.vae_train_mode and train_acq.kind == "select" and eval_acq.kind == "score"
  ctx = SelectContext(state=mstate, x_all=learner.x_dev, labeled=pool.labeled,
                      candidates=pool.unlabeled, prep=learner.prep, chunk_size=256)
  scores, order = train_acq.train_mode_scores(ctx, jax.random.PRNGKey(5))
  assert sorted(order) == sorted(pool.unlabeled) and not np.array_equal(order, pool.unlabeled)
  # The first batch: −S(μ) with μ from a train-mode encoder pass over exactly those 128 images.
  x0 = obj.prep.eval(learner.x_dev[order[:128]])
  vae = mstate.aux["vae"]
  (mu, _), _ = obj.vae.apply(vae, x0, train=True, mutable=["batch_stats"],
                             method=type(obj.vae).encode)
  want = -mstate.aux_apply["sampler"](mstate.aux["sampler"], mu)
  np.testing.assert_allclose(scores[:128], want, rtol=1e-4, atol=1e-5)
  infer = -mstate.aux_apply["sampler"](mstate.aux["sampler"],
                                       mstate.aux_apply["vae"](vae, x0))
  assert np.abs(np.asarray(infer) - scores[:128]).max() > 1e-3
  # acquire() selects the top of the train-mode scores under its scoring key.
  rng = jax.random.PRNGKey(7)
  got = acquire(train_acq, mstate, learner.x_dev, pool, 10, rng, learner.prep, chunk_size=64)
  s2, o2 = train_acq.train_mode_scores(ctx, jax.random.split(rng)[1])
  np.testing.assert_array_equal(got.indices, top_k(s2, o2, 10))
  ev = acquire(eval_acq, mstate, learner.x_dev, pool, 10, rng, learner.prep, chunk_size=64)
  assert ev.scores is not None and not np.array_equal(np.sort(ev.indices),
                                                         np.sort(got.indices))
