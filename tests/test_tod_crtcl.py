"""TOD (tod_ema, cod, emaod), CrtCl (critic objective + acquisition), PT4AL, diagnostics."""

import inspect
import json
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from al_jax import ALError, diagnostics, ema, loop
from al_jax.acquisition import ACQUISITIONS, pt4al
from al_jax.acquisition.base import SelectContext, acquire, map_chunks
from al_jax.objectives import critic as critic_lib
from al_jax.objectives import tod as tod_lib
from al_jax.state import ModelState
from tests.conftest import tiny_config

quiet = lambda s: None


def _softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


# --- TOD ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tod():
  """One tiny `tod` learner (one compiled step) with its models after cycles 0 and 1."""
  learner = loop.ActiveLearner(tiny_config("tod"), log=quiet)
  obj = learner.objective
  pool0 = learner.initial_pool()
  s0 = learner.train(0, pool0)
  init = obj.init(jax.random.fold_in(learner.k_init, 0), learner.x_train[:1])
  first = learner.select(0, s0, pool0, obj.model_state(init).variables)
  pool1 = pool0.label(first.indices)
  s1 = learner.train(1, pool1, prev_state=s0)  # TOD's model continues (warm start)
  return dict(learner=learner, pool0=pool0, s0=s0, init=init, first=first, pool1=pool1, s1=s1)


def test_cod_equals_direct_computation_from_two_saved_parameter_sets(tod, tmp_path):
  learner, pool1 = tod["learner"], tod["pool1"]
  # Save both parameter sets to disk and read them back: the "two saved models".
  saved = []
  for k, s in enumerate((tod["s0"], tod["s1"])):
    path = tmp_path / f"vars_{k}.msgpack"
    v = learner.objective.model_state(s).variables
    path.write_bytes(flax.serialization.to_bytes(v))
    saved.append(flax.serialization.from_bytes(v, path.read_bytes()))
  v0, v1 = saved
  model = learner.objective.model
  fwd = jax.jit(lambda v, x: model.apply(v, x)[0])
  cod = lambda x, v: np.linalg.norm(_softmax(fwd(v1, x)) - _softmax(fwd(v, x)), axis=-1)
  x = learner.prep.eval(learner.x_dev[pool1.unlabeled[:64]])  # a fixed batch
  mstate = ModelState(apply_fn=learner.objective.apply_model, variables=v1, prev_variables=v0)
  np.testing.assert_allclose(ACQUISITIONS.get("cod")().score(mstate, x, None), cod(x, v0),
                             rtol=1e-5, atol=1e-6)
  logit_cod = np.linalg.norm(np.asarray(fwd(v1, x)) - np.asarray(fwd(v0, x)), axis=-1)
  np.testing.assert_allclose(ACQUISITIONS.get("cod")(output="logits").score(mstate, x, None),
                             logit_cod, rtol=1e-5, atol=1e-5)
  # The loop's selection at cycle 1 is the top-k of this COD over the whole unlabeled pool.
  sel = learner.select(1, tod["s1"], pool1, learner.objective.model_state(tod["s0"]).variables)
  unl = pool1.unlabeled
  full = cod(learner.prep.eval(learner.x_dev[unl]), v0)
  np.testing.assert_allclose(sel.scores, full, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(sel.indices, unl[np.lexsort((unl, -full))][:10])


def test_cod_first_cycle_scores_against_the_untrained_initial_model(tod):
  learner, pool0, want = tod["learner"], tod["pool0"], tod["first"]
  # The loop's cycle 0 (no previous state) selects by COD against the initial model.
  pool1, _ = learner._cycle(0, pool0, None, [])
  np.testing.assert_array_equal(pool1.labeled, tod["pool1"].labeled)
  # The code's rule: the lowest COD in the first cycle, the largest afterwards.
  low = ACQUISITIONS.get("cod")(first_cycle="lowest")
  ms = learner.objective.model_state(tod["s0"]).replace(
      prev_variables=learner.objective.model_state(tod["init"]).variables)
  pick = lambda cycle: acquire(low, ms, learner.x_dev, pool0, 10, jax.random.PRNGKey(0),
                               learner.prep, 256, cycle=cycle).indices
  np.testing.assert_array_equal(pick(1), want.indices)
  cand, sc = want.candidates, want.scores
  np.testing.assert_array_equal(pick(0), cand[np.lexsort((cand, sc))][:10])
  with pytest.raises(ALError, match="first_cycle"):
    ACQUISITIONS.get("cod")(first_cycle="smallest")


def test_cod_without_previous_model_is_refused():
  learner = loop.ActiveLearner(tiny_config("tod_active_only"), log=quiet)
  pool = learner.initial_pool()
  state = learner.objective.init(jax.random.PRNGKey(0), learner.x_train[:1])
  with pytest.raises(ALError, match="previous cycle"):
    learner.select(0, state, pool, None)


def test_tod_resume_restores_the_previous_model_for_cod(tod, tmp_path):
  cfg = tiny_config("tod", **{"log_every": 1})
  wd = str(tmp_path / "killed")

  def crash(msg):
    if msg.startswith("cycle 2/3 | labeled"):
      raise KeyboardInterrupt  # dies while training cycle 1; checkpoint 0 holds w_0
  with pytest.raises(KeyboardInterrupt):
    loop.run(cfg, wd, log=crash)
  loop.run(cfg, wd, resume=True, log=quiet)
  # Uninterrupted reference (the fixture's learner, same config): cycle 1 selects by COD
  # between w_1 and w_0; the resumed run must have restored w_0 from the checkpoint.
  learner = tod["learner"]
  sel = learner.select(1, tod["s1"], tod["pool1"],
                       learner.objective.model_state(tod["s0"]).variables).indices
  pools = [np.load(os.path.join(wd, "pools", f"cycle_{k}.npy")) for k in range(3)]
  np.testing.assert_array_equal(pools[1], tod["pool1"].labeled)
  np.testing.assert_array_equal(pools[2], tod["pool1"].label(sel).labeled)


def test_ema_decay_and_update():
  assert float(tod_lib.ema_decay_at(jnp.asarray(1), 0.999, True)) == pytest.approx(0.5)
  assert float(tod_lib.ema_decay_at(jnp.asarray(9), 0.999, True)) == pytest.approx(0.9)
  assert float(tod_lib.ema_decay_at(jnp.asarray(10**6), 0.999, True)) == pytest.approx(0.999)
  assert float(tod_lib.ema_decay_at(jnp.asarray(1), 0.999, False)) == pytest.approx(0.999)
  out = ema.ema_update({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 6.0])}, 0.75)
  np.testing.assert_allclose(out["a"], [1.5, 3.0])


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_tod_ema_step_updates_the_ema_model_by_eq6(variant, tod):
  learner = tod["learner"] if variant == "paper" else loop.ActiveLearner(
      tiny_config("tod", **{"objective_kwargs.variant": variant}), log=quiet)
  obj = learner.objective
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  ema0 = jax.tree_util.tree_map(np.asarray, state.aux["ema"]["params"])
  head0 = (jax.tree_util.tree_map(np.asarray, state.aux["cons_head"]["params"])
           if variant == "code" else None)
  y = jnp.asarray(np.where(np.arange(len(learner.y_train)) < 16, learner.y_train, -1))
  # The learner's compiled step (labeled 0..15, unlabeled 16..31).
  state, m = learner._step(state, learner.x_dev, y, jnp.arange(16, dtype=jnp.int32),
                           jnp.ones(16), jnp.arange(16, 32, dtype=jnp.int32),
                           jax.random.PRNGKey(1))
  assert all(np.isfinite(float(v)) for v in m.values()) and float(m["unsup"]) > 0
  if variant == "code":  # the code's second head is trained by the same step
    moved = [float(np.max(np.abs(a - np.asarray(b)))) for a, b in zip(
        jax.tree_util.tree_leaves(head0),
        jax.tree_util.tree_leaves(state.aux["cons_head"]["params"]))]
    assert max(moved) > 0, moved
  # Step 1 with warm-up: decay min(1 − 1/2, α) = 0.5.
  want = jax.tree_util.tree_map(lambda e, p: 0.5 * e + 0.5 * np.asarray(p), ema0, state.params)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                         state.aux["ema"]["params"], want)
  mstate = obj.model_state(state)
  x = learner.prep.eval(learner.x_dev[:8])
  direct = np.linalg.norm(_softmax(obj.model.apply(mstate.variables, x)[0])
                          - _softmax(obj.model.apply(mstate.aux["ema"], x)[0]), axis=-1)
  np.testing.assert_allclose(ACQUISITIONS.get("emaod")().score(mstate, x, None), direct,
                             rtol=1e-5, atol=1e-6)


def test_tod_settings_are_checked():
  with pytest.raises(ALError, match="unknown TOD output"):
    loop.ActiveLearner(tiny_config("tod", **{"objective_kwargs.output": "probs"}), log=quiet)
  with pytest.raises(ALError, match="unknown TOD variant"):
    loop.ActiveLearner(tiny_config("tod", **{"objective_kwargs.variant": "x"}), log=quiet)
  with pytest.raises(ALError, match="emaod needs"):
    fake = ModelState(apply_fn=lambda v, x, **kw: (x, {}), variables={})
    ACQUISITIONS.get("emaod")().score(fake, jnp.zeros((2, 3)), None)


# --- CrtCl ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crtcl(tmp_path_factory):
  """A 2-cycle `crtcl` run (3 epochs, E' = 2) with --diagnostics, and its learner."""
  wd = str(tmp_path_factory.mktemp("crtcl") / "w")
  cfg = tiny_config("crtcl", **{"al.cycles": 2, "train.epochs": 3, "diagnostics": True})
  learner = loop.ActiveLearner(cfg, wd, log=quiet)
  rows = learner.run()
  return dict(learner=learner, rows=rows, workdir=wd)


def _step_args(learner, n=16):
  y = jnp.asarray(np.where(np.arange(len(learner.y_train)) < n, learner.y_train, -1))
  return (learner.x_dev, y, jnp.arange(n, dtype=jnp.int32), jnp.ones(n),
          jnp.arange(n, 2 * n, dtype=jnp.int32), jax.random.PRNGKey(1))


def test_critic_weights_stay_in_box_after_100_adamw_steps_and_inside_updates_unchanged(crtcl):
  obj = crtcl["learner"].objective
  c = obj.clip
  params = obj.init(jax.random.PRNGKey(0), crtcl["learner"].x_train[:1]).aux["critic"]["params"]
  opt = obj.side_models["critic"].tx.init(params)
  plain = optax.adamw(1e-3, weight_decay=0.01)  # the same AdamW without clipping
  popt = plain.init(params)

  @jax.jit
  def step(p, o, po, i):
    leaves, tree = jax.tree_util.tree_flatten(p)
    keys = jax.random.split(jax.random.PRNGKey(i), len(leaves))
    g = tree.unflatten([1e3 * jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)])
    u, o = obj.side_models["critic"].tx.update(g, o, p)
    pu, po = plain.update(g, po, p)
    return optax.apply_updates(p, u), o, po, u, pu

  inside_seen = 0
  leaves = lambda t: [np.asarray(a) for a in jax.tree_util.tree_leaves(t)]
  for i in range(100):
    new, opt, popt, u, pu = step(params, opt, popt, i)
    for leaf in leaves(new):
      assert np.abs(leaf).max() <= c * (1 + 1e-6)
    # Where AdamW alone stays strictly inside the box, the update is AdamW's, bit for bit.
    for p, a, b in zip(leaves(params), leaves(u), leaves(pu)):
      inside = np.abs(p + b) < c
      inside_seen += int(inside.sum())
      np.testing.assert_array_equal(a[inside], b[inside])
    params = new
  assert inside_seen > 0
  # The critic of the run's last checkpoint (trained 3 epochs) is in the box too.
  learner = crtcl["learner"]
  abstract = jax.eval_shape(lambda: obj.init(learner.k_init, learner.x_train[:1]))
  work = loop.results_lib.Workdir(crtcl["workdir"])
  trained, _ = work.restore_checkpoint(work.latest_checkpoint(), abstract)
  work.close()
  for leaf in jax.tree_util.tree_leaves(trained.aux["critic"]["params"]):
    assert float(jnp.max(jnp.abs(leaf))) <= c * (1 + 1e-6)


def test_critic_loss_is_eq4():
  c = jnp.array([0.5, -1.0, 2.0, 3.0])
  correct = jnp.array([1.0, 0.0, 1.0, 0.0])
  mask = jnp.array([1.0, 1.0, 1.0, 0.0])
  assert float(critic_lib.wasserstein_critic_loss(c, correct, mask)) == pytest.approx(
      -1.0 - (0.5 + 2.0))
  assert float(critic_lib.wasserstein_critic_loss(c, correct, mask, "mean")) == pytest.approx(
      -1.0 - 1.25)


def test_generator_loss_reaches_the_classifier_only_through_the_probabilities(crtcl):
  learner = crtcl["learner"]
  obj = learner.objective
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  cparams = state.aux["critic"]["params"]
  xu = learner.prep.eval(learner.x_dev[:16])
  grad = jax.jit(lambda cp: optax.tree.norm(jax.grad(lambda p: obj.generator_loss(
      p, state.batch_stats, cp, xu, jax.random.PRNGKey(0))[0])(state.params)))
  assert float(grad(cparams)) > 0
  # Zero the projection of the probabilities (the critic's last input): no gradient is left,
  # although the feature-map projections are non-zero.
  n_in = len(jax.tree_util.tree_leaves(cparams)) // 2 - 1  # proj_* layers (kernel + bias)
  cp = flax.core.unfreeze(cparams)
  cp[f"proj_{n_in - 1}"]["kernel"] = jnp.zeros_like(cp[f"proj_{n_in - 1}"]["kernel"])
  assert float(grad(cp)) == 0.0


def test_generator_step_stops_at_E_prime_and_metrics_are_finite(crtcl):
  learner = crtcl["learner"]
  obj = learner.objective
  assert obj.stop_epoch == 2  # round(0.65 × 3): L_CG in 1-indexed epoch 1 only (Alg. 1)
  assert all(np.isfinite(r["test_accuracy"]) for r in crtcl["rows"])
  after = {}
  for epoch in (0, 1):
    state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), epoch)
    state, m = learner._step(state, *_step_args(learner))
    assert int(state.step) == 1  # one optimiser step; L_CG's step is a plain gradient step
    assert all(np.isfinite(float(v)) for v in m.values())
    assert (float(m["gen_loss"]) != 0.0) == (epoch == 0)
    after[epoch] = state
  # Same batch and keys: the epochs differ only by the generator step of epoch 0.
  flat = lambda t: np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(t)])
  # (with Adam's lr 1e-3, line 14's plain step moves θ only slightly: compare exactly)
  assert not np.array_equal(flat(after[0].params), flat(after[1].params))
  np.testing.assert_array_equal(flat(after[0].aux), flat(after[1].aux))
  assert not loop.ActiveLearner(tiny_config("crtcl_select_only"),
                                log=quiet).objective.uses_unlabeled
  with pytest.raises(ALError, match="unknown settings"):
    loop.ActiveLearner(tiny_config("crtcl", **{"objective_kwargs.lambda_": 1}), log=quiet)
  with pytest.raises(ALError, match="generator_step"):
    loop.ActiveLearner(tiny_config("crtcl", **{"objective_kwargs.generator_step": "x"}),
                       log=quiet)


def _generator_step_effect(clip, steps=200, seed=0):
  """cpu preset (digits, protocol crtcl, 40 labels): after `steps` steps with L_CG, one step
  from the same state with and without it; returns (fraction of classifier parameters that
  differ, the step's gcg_ratio)."""
  from experiments.configs import get_config
  cfg = get_config("crtcl", "digits", "cpu", protocol="crtcl")
  cfg.seed = seed
  cfg.objective_kwargs.clip = clip
  learner = loop.ActiveLearner(cfg, log=quiet)
  obj = learner.objective
  assert steps < (obj.stop_epoch - 1) * cfg.train.min_steps_per_epoch  # before E'
  pool = learner.initial_pool()
  y = jnp.asarray(pool.visible_labels())
  rs = np.random.default_rng(seed)
  lab = rs.choice(pool.labeled, (steps + 1, cfg.train.batch_size)).astype(np.int32)
  unl = rs.choice(pool.unlabeled, (steps + 1, cfg.train.unlabeled_batch_size)).astype(np.int32)
  mask = jnp.ones(cfg.train.batch_size)
  k = jax.random.PRNGKey(seed)

  def batch(i):
    return ({"x": learner.x_dev[lab[i]], "y": y[lab[i]], "mask": mask},
            {"x": learner.x_dev[unl[i]]})

  step = jax.jit(obj.train_step)
  state = obj.start_epoch(obj.init(k, learner.x_train[:1]), 0)
  for i in range(steps):
    state, _ = step(state, *batch(i), k)
  a, m = step(state, *batch(steps), k)
  # Without L_CG: the same program from the same state at epoch E' − 1, where the step keeps
  # its cross-entropy-only result (`generator_active` is false); only the epoch differs, and
  # the epoch enters the step nowhere else, so the difference is exactly line 14's update.
  assert obj.generator_active(state.epoch) and not obj.generator_active(obj.stop_epoch - 1)
  b, _ = step(state.replace(epoch=jnp.asarray(obj.stop_epoch - 1, state.epoch.dtype)),
              *batch(steps), k)
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(t)])
  return float(np.mean(flat(a.params) != flat(b.params))), float(m["gcg_ratio"])


def test_generator_step_moves_the_classifier_beyond_float32_rounding_at_the_default_clip():
  """CrtCl Alg. 1 line 14 must change θ. At the default clip (0.1) L_CG's step still changes
  most classifier parameters after 200 steps; at WGAN's 0.01 the same step rounds away (θ
  almost bit-identical with and without L_CG), which is why 0.01 is not the default."""
  default = inspect.signature(critic_lib.CriticLoss.__init__).parameters["clip"].default
  assert default == 0.1
  changed, ratio = _generator_step_effect(default)
  assert changed > 0.1 and ratio > 1e-2, (changed, ratio)
  changed, ratio = _generator_step_effect(0.01)  # measured: 0.002 % of θ, ratio 1.4e-9
  assert changed < 1e-2 and ratio < 1e-3, (changed, ratio)


def test_critic_acquisition_is_minus_the_critic_score(crtcl):
  obj = crtcl["learner"].objective
  state = obj.init(jax.random.PRNGKey(0), crtcl["learner"].x_train[:1])
  mstate = obj.model_state(state)
  x = crtcl["learner"].prep.eval(crtcl["learner"].x_dev[:8])
  logits, feats = obj.model.apply(mstate.variables, x)
  c = obj.critic.apply(mstate.aux["critic"], tuple(feats["stages"][-4:]), x,
                       jax.nn.softmax(logits))
  np.testing.assert_allclose(ACQUISITIONS.get("critic")().score(mstate, x, None), -c,
                             rtol=1e-6)
  with pytest.raises(ALError, match="needs an objective with a critic"):
    ACQUISITIONS.get("critic")().score(mstate.replace(aux={}), x, None)


def test_diagnostics_files_per_cycle(crtcl):
  for k in range(2):
    with open(os.path.join(crtcl["workdir"], "diagnostics", f"cycle_{k}.json")) as f:
      rep = json.load(f)
    assert rep["cycle"] == k and rep == json.loads(json.dumps(crtcl["learner"].diagnostics[k]))
    for probe in ("unlabeled", "test"):
      s = rep[probe]["score"]
      assert -1 <= s["spearman"] <= 1 and 0 <= s["auroc_incorrect"] <= 1
      assert len(s["loss_by_score_bin"]) == 10
      assert set(s["top_k"]) == {"0.01", "0.05", "0.1", "0.2"}
      assert rep[probe]["least_confidence"]["spearman"] is not None
    assert rep["test"]["n"] == 500


# --- PT4AL ----------------------------------------------------------------------------------
def test_pt4al_selects_least_confident_points_of_the_next_batch_reproducibly():
  learner = loop.ActiveLearner(tiny_config("pt4al", **{"acquisition_kwargs.initial": "random"}),
                               log=quiet)
  pool = learner.initial_pool()
  mstate = learner.objective.model_state(
      learner.objective.init(jax.random.PRNGKey(0), learner.x_train[:1]))
  kw = dict(num_batches=4, epochs=1, model_kwargs={"widths": (8, 16), "hidden": 32})
  run_key = jax.random.PRNGKey(7)
  ctx = SelectContext(state=mstate, x_all=learner.x_dev, labeled=pool.labeled,
                      candidates=pool.unlabeled, prep=learner.prep, chunk_size=128, cycle=1,
                      run_rng=run_key)
  a = ACQUISITIONS.get("pt4al")(**kw)
  sel = a.select(ctx, 10, jax.random.PRNGKey(0))
  # A fresh instance (a resumed run) refits the same pretext model: same selection, whatever
  # the per-cycle key.
  again = ACQUISITIONS.get("pt4al")(**kw).select(ctx, 10, jax.random.PRNGKey(5))
  np.testing.assert_array_equal(sel, again)
  order, losses = a.ordering(ctx, jax.random.fold_in(run_key, pt4al._PRETEXT_STREAM))
  assert sorted(order.tolist()) == list(range(len(learner.y_train)))
  size = -(-len(order) // 4)
  batch = order[2 * size:3 * size]  # cycle 1 selects from batch 2
  cand = np.sort(batch[np.isin(batch, pool.unlabeled)])
  lc = map_chunks(pt4al._least_confidence, mstate, learner.x_dev, cand, learner.prep, 128)
  np.testing.assert_array_equal(sel, cand[np.lexsort((cand, -lc))][:10])
  # Losses are sorted as numbers, descending, and vary across the pool.
  assert np.all(np.diff(losses[order]) <= 0) and losses.std() > 0
  with pytest.raises(ALError, match="num_batches"):
    a.select(SelectContext(**{**ctx.__dict__, "cycle": 3}), 10, jax.random.PRNGKey(0))


def test_pt4al_initial_pool_is_batch_0_at_even_intervals():
  """PT4AL's first cycle trains on the highest-pretext-loss batch (public main.py: every 5th
  image of batch 0), not the harness's random pool; the first query then takes batch 1."""
  cfg = tiny_config("pt4al", **{"acquisition_kwargs.num_batches": 4,
                                "acquisition_kwargs.epochs": 1,
                                "acquisition_kwargs.model_kwargs": {"widths": (8, 16),
                                                                    "hidden": 32}})
  learner = loop.ActiveLearner(cfg, log=quiet)
  pool = learner.initial_pool()
  acq = learner.acquisition
  order, losses = acq.ordering(
      SelectContext(state=None, x_all=learner.x_dev, labeled=np.zeros(0, np.int64),
                    candidates=np.arange(len(learner.y_train)), prep=learner.prep,
                    chunk_size=128, run_rng=learner.k_acq),
      jax.random.fold_in(learner.k_acq, pt4al._PRETEXT_STREAM))
  size = -(-len(order) // 4)
  batch0 = order[:size]
  step = size // cfg.al.initial
  np.testing.assert_array_equal(pool.labeled, np.sort(batch0[np.arange(cfg.al.initial) * step]))
  # The highest pretext losses: every initial point's loss ≥ every point outside batch 0.
  assert losses[pool.labeled].min() >= losses[order[size:]].max()
  random = loop.ActiveLearner(tiny_config("pt4al", **{"acquisition_kwargs.initial": "random"}),
                              log=quiet).initial_pool()
  assert not np.array_equal(random.labeled, pool.labeled)
  cfg.al.class_balanced = True
  with pytest.raises(ALError, match="class_balanced"):
    loop.ActiveLearner(cfg, log=quiet).initial_pool()


def test_rotations_and_rotation_loss():
  x = jnp.arange(2 * 3 * 3).reshape(2, 3, 3, 1).astype(jnp.float32)
  r = pt4al.rotations(x)
  assert r.shape == (4, 2, 3, 3, 1)
  np.testing.assert_array_equal(r[1, 0, :, :, 0], np.rot90(np.asarray(x[0, :, :, 0])))
  for k in (2, 3):
    np.testing.assert_array_equal(r[k, 1, :, :, 0], np.rot90(np.asarray(x[1, :, :, 0]), k))
  logits = jnp.tile(jnp.eye(4)[:, None, :] * 50.0, (1, 2, 1))  # confident and right
  np.testing.assert_allclose(pt4al.rotation_loss(logits), 0.0, atol=1e-6)
  # The loss is the CE (positive, larger when wrong): uniform logits give log 4, confidently
  # wrong ones (each rotation predicted as the next) ≈ 50; per image, mean over rotations.
  np.testing.assert_allclose(pt4al.rotation_loss(jnp.zeros((4, 2, 4))), np.log(4.0), rtol=1e-6)
  wrong = jnp.tile(jnp.roll(jnp.eye(4), 1, axis=1)[:, None, :] * 50.0, (1, 2, 1))
  np.testing.assert_allclose(pt4al.rotation_loss(wrong), 50.0, rtol=1e-5)
  mixed = jnp.concatenate([logits[:, :1], wrong[:, 1:]], axis=1)  # image 0 right, image 1 wrong
  np.testing.assert_allclose(pt4al.rotation_loss(mixed), [0.0, 50.0], atol=1e-4)


# --- diagnostics ----------------------------------------------------------------------------
def test_rank_statistics_against_brute_force():
  rs = np.random.default_rng(0)
  a = rs.integers(0, 5, 40).astype(float)  # many ties
  b = a + rs.normal(0, 2, 40)
  np.testing.assert_allclose(diagnostics.rankdata([3.0, 1.0, 3.0, 2.0]), [3.5, 1, 3.5, 2])
  ra = diagnostics.rankdata(a)
  rb = diagnostics.rankdata(b)
  assert diagnostics.spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
  assert diagnostics.spearman(b, b ** 3) == pytest.approx(1.0)
  assert diagnostics.spearman(b, -b) == pytest.approx(-1.0)
  pos = rs.random(40) < 0.3
  brute = np.mean([(s > t) + 0.5 * (s == t) for s in a[pos] for t in a[~pos]])
  assert diagnostics.auroc(a, pos) == pytest.approx(brute)
  assert np.isnan(diagnostics.auroc(a, np.zeros(40, bool)))
  assert diagnostics.top_k_overlap(np.arange(10.0), np.arange(10.0), 3) == 1.0
  assert diagnostics.top_k_overlap(np.arange(10.0), -np.arange(10.0), 3) == 0.0
  assert diagnostics.top_k_overlap(np.array([3, 2, 1, 0.0]), np.array([3, 0, 1, 2.0]), 2) == 0.5


def test_score_report_and_loss_estimation_on_known_values():
  """The statistics behind TOD Fig. 5/6 and the loss-estimation claims, on answers known in
  advance: a score that orders the points exactly as their loss does, and its reverse."""
  rs = np.random.default_rng(0)
  loss = rs.random(100)
  scores = 2.0 * loss + 1.0
  incorrect = loss > 0.7
  r = diagnostics.score_report(scores, loss, incorrect, budget=10)
  assert r["spearman"] == pytest.approx(1.0) and r["auroc_incorrect"] == pytest.approx(1.0)
  assert r["top_k_budget"] == 1.0 and set(r["top_k"].values()) == {1.0}
  bins = r["loss_by_score_bin"]  # highest scores first: the mean loss falls bin by bin
  assert len(bins) == diagnostics.NUM_BINS and all(a > b for a, b in zip(bins, bins[1:]))
  np.testing.assert_allclose(bins[0], np.sort(loss)[-10:].mean())
  assert r["mean_score"] == pytest.approx(scores.mean())
  rev = diagnostics.score_report(-scores, loss, incorrect, budget=10)
  assert rev["spearman"] == pytest.approx(-1.0) and rev["auroc_incorrect"] == pytest.approx(0.0)
  assert rev["top_k_budget"] == 0.0
  np.testing.assert_allclose(rev["loss_by_score_bin"], bins[::-1], rtol=1e-12)
  # Per-sample NLL at the true label.
  np.testing.assert_allclose(
      diagnostics.per_sample_nll(np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), [1, 0]),
      [np.log(3.0), np.log1p(2.0 * np.exp(-2.0))], rtol=1e-12)
  # loss_estimation through a fixed-table classifier: loss, error rate and least confidence
  # from the logits, the acquisition's score report beside them.
  from tests.test_badge import _PREP, _apply_tables
  n = 40
  logits = rs.normal(0, 2, (n, 4)).astype(np.float32)
  labels = rs.integers(0, 4, n)
  state = ModelState(apply_fn=_apply_tables,
                     variables={"logits": jnp.asarray(logits), "emb": jnp.zeros((n, 2))})
  x_all = jnp.arange(n, dtype=jnp.uint8).reshape(n, 1, 1, 1)
  out = diagnostics.loss_estimation(ACQUISITIONS.get("entropy")(), state, x_all, np.arange(n),
                                    labels, _PREP, 16, jax.random.PRNGKey(0), budget=5)
  z = logits.astype(np.float64)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  p = np.exp(logp)
  assert out["mean_loss"] == pytest.approx(-logp[np.arange(n), labels].mean(), rel=1e-5)
  assert out["error_rate"] == pytest.approx(np.mean(z.argmax(-1) != labels))
  assert out["least_confidence"]["mean_score"] == pytest.approx(np.mean(1 - p.max(-1)), rel=1e-5)
  assert out["score"]["mean_score"] == pytest.approx(np.mean(-(p * logp).sum(-1)), rel=1e-4)
  assert out["score"]["auroc_incorrect"] == pytest.approx(
      diagnostics.auroc(-(p * logp).sum(-1), z.argmax(-1) != labels), abs=1e-6)
