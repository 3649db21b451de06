"""Behavioural tests that pin what TOD, CrtCl, loss prediction and warm starts mean.

Each takes one step (or one short run) on a tiny fixed batch and asserts the direction the
paper intends, so flipping a loss's sign, target or reduction, or dropping the model's
continuity across cycles, makes it fail.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from al_jax import loop, outputs
from al_jax.acquisition import ACQUISITIONS
from al_jax.diagnostics import spearman
from al_jax.objectives import critic as critic_lib
from al_jax.objectives import loss_pred as lp
from tests.conftest import tiny_config

quiet = lambda s: None
# Deterministic train-mode forwards: no augmentation, no dropout, plain SGD.
_FIXED = {"train.augment": False, "model.kwargs.dropout_rate": 0.0, "optim.name": "sgd",
          "optim.momentum": 0.0, "optim.lr": 0.1}


def _learner(method, **overrides):
  return loop.ActiveLearner(tiny_config(method, **{**_FIXED, **overrides}), log=quiet)


def _batches(learner, n=32):
  y = jnp.asarray(learner.y_train[:n])
  lab = {"x": learner.x_dev[:n], "y": y, "mask": jnp.ones(n, jnp.float32)}
  unl = {"x": learner.x_dev[n:3 * n]}
  return lab, unl


def _flat(tree):
  return np.asarray(ravel_pytree(tree)[0])


# --- CrtCl ----------------------------------------------------------------------------------
def _critic_scores(obj, params, batch_stats, critic_params, x_uint8):
  """C(F_θ(x)) with the classifier in train mode, as the step computes it."""
  x = obj.prep.eval(x_uint8)
  (logits, feats), _ = obj.model.apply({"params": params, "batch_stats": batch_stats}, x,
                                       train=True, mutable=["batch_stats"])
  return obj.critic.apply({"params": critic_params},
                          *critic_lib.critic_inputs(feats, x, logits, obj.num_stages)), logits


@pytest.fixture(scope="module")
def crtcl_step():
  learner = _learner("crtcl", **{"objective_kwargs.gamma": 0.5, "train.epochs": 10})
  obj = learner.objective
  lab, unl = _batches(learner)
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  step = jax.jit(obj.train_step)
  key = jax.random.PRNGKey(1)
  copy = lambda s: jax.tree_util.tree_map(jnp.copy, s)
  with_gen, _ = step(copy(state), lab, unl, key)
  # Past E' the same step (same keys) takes the CE and critic steps only.
  late = state.replace(epoch=jnp.asarray(obj.stop_epoch, jnp.int32))
  ce_only, _ = step(copy(late), lab, unl, key)
  return dict(obj=obj, lab=lab, unl=unl, state=state, with_gen=with_gen, ce_only=ce_only)


def test_critic_step_raises_the_critic_gap_and_stays_clipped(crtcl_step):
  obj, state, lab = crtcl_step["obj"], crtcl_step["state"], crtcl_step["lab"]
  new_critic = crtcl_step["with_gen"].aux["critic"]["params"]
  gap = lambda cp: _gap(obj, state, cp, lab)
  before, after = gap(state.aux["critic"]["params"]), gap(new_critic)
  assert after > before, (before, after)
  for leaf in jax.tree_util.tree_leaves(new_critic):
    assert float(jnp.max(jnp.abs(leaf))) <= obj.clip * (1 + 1e-6)


def _gap(obj, state, critic_params, lab):
  """mean C on correct − mean C on wrong predictions of the pre-step classifier."""
  c, logits = _critic_scores(obj, state.params, state.batch_stats, critic_params, lab["x"])
  correct = np.asarray(logits.argmax(-1) == lab["y"])
  assert 0 < correct.sum() < len(correct)  # both sets present in the fixed batch
  c = np.asarray(c, np.float64)
  return c[correct].mean() - c[~correct].mean()


def test_generator_step_raises_the_critic_score_on_unlabeled_data(crtcl_step):
  obj, unl = crtcl_step["obj"], crtcl_step["unl"]
  gen, ce = crtcl_step["with_gen"], crtcl_step["ce_only"]
  cparams = gen.aux["critic"]["params"]
  np.testing.assert_array_equal(_flat(cparams), _flat(ce.aux["critic"]["params"]))
  mean_c = lambda s: float(jnp.mean(_critic_scores(obj, s.params, s.batch_stats, cparams,
                                                   unl["x"])[0]))
  # Both states passed the same CE step; only `gen` then took line 14's step on L_CG.
  assert mean_c(gen) > mean_c(ce)
  for leaf in jax.tree_util.tree_leaves(gen.aux["critic"]["params"]):
    assert float(jnp.max(jnp.abs(leaf))) <= obj.clip * (1 + 1e-6)


def test_generator_step_is_one_plain_gradient_step_and_L_CG_is_a_batch_mean(crtcl_step):
  obj, unl = crtcl_step["obj"], crtcl_step["unl"]
  gen, ce = crtcl_step["with_gen"], crtcl_step["ce_only"]
  cparams = gen.aux["critic"]["params"]
  # Line 14 once: θ ← θ − η ∇L_CG at θ after the CE step, no momentum or weight decay.
  lr = float(ce.opt_state.hyperparams["learning_rate"])
  x_u = obj.prep.train(_unlabeled_key(gen), unl["x"])
  grad = jax.grad(lambda p: obj.generator_loss(p, ce.batch_stats, cparams, x_u,
                                               _unlabeled_drop_key(gen))[0])(ce.params)
  np.testing.assert_allclose(_flat(gen.params), _flat(ce.params) - lr * _flat(grad),
                             rtol=1e-5, atol=1e-7)
  assert int(gen.step) == int(ce.step) == 1  # one optimiser step per batch
  # L_CG = −γ · mean C over the unlabeled batch (Eq. 5 with Eq. 1's mean reduction).
  loss, _ = obj.generator_loss(ce.params, ce.batch_stats, cparams, x_u, _unlabeled_drop_key(gen))
  c, _ = _critic_scores(obj, ce.params, ce.batch_stats, cparams, unl["x"])
  np.testing.assert_allclose(float(loss), -obj.gamma * float(jnp.mean(c)), rtol=1e-5)


def _step_keys(state_after):
  # The keys train_step drew from the step key it was given (the loop folds the step in).
  return jax.random.split(jax.random.PRNGKey(1), 4)


_unlabeled_key = lambda s: _step_keys(s)[2]
_unlabeled_drop_key = lambda s: _step_keys(s)[3]


def test_generator_runs_for_E_prime_minus_one_epochs():
  obj = _learner("crtcl", **{"train.epochs": 200}).objective
  assert obj.stop_epoch == 130
  on = [bool(obj.generator_active(jnp.asarray(e))) for e in range(200)]
  # Alg. 1: `for epoch = 1..E`, `if epoch < E'`: 1-indexed epochs 1..129, i.e. 129 epochs.
  assert sum(on) == 129 and on[128] and not on[129]


# --- TOD ------------------------------------------------------------------------------------
def test_tod_step_lowers_the_consistency_to_the_ema_model():
  learner = _learner("tod", **{"objective_kwargs.lam": 1.0})
  obj = learner.objective
  lab, unl = _batches(learner)
  lab = dict(lab, mask=jnp.zeros_like(lab["mask"]))  # no labeled term: L_U alone moves w
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  # A teacher away from the student (w̃ starts as a copy of w, where L_U has no gradient).
  other = obj.init(jax.random.PRNGKey(7), learner.x_train[:1])
  state = state.replace(aux=dict(state.aux, ema=dict(state.aux["ema"], params=other.params,
                                                      batch_stats=other.batch_stats)))
  x_u = obj.prep.eval(unl["x"])

  def consistency(params, ema):
    f = lambda v: outputs.tod_output(obj.model.apply(v, x_u, train=True,
                                                     mutable=["batch_stats"])[0][0], "softmax")
    s = f({"params": params, "batch_stats": state.batch_stats})
    t = f(ema)
    return float(jnp.mean(jnp.sum((s - t) ** 2, -1)))  # Eq. 7

  new, m = jax.jit(obj.train_step)(jax.tree_util.tree_map(jnp.copy, state), lab, unl,
                                   jax.random.PRNGKey(1))
  old_ema = {k: state.aux["ema"][k] for k in ("params", "batch_stats")}
  # The student moved towards the (old) teacher: the gradient step lowered Eq. 7.
  assert consistency(new.params, old_ema) < consistency(state.params, old_ema)
  assert float(m["ce"]) == 0.0 and float(m["unsup"]) > 0
  assert int(new.aux["ema"]["step"]) == 1


def test_tod_ema_warmup_continues_across_cycles():
  learner = _learner("tod")
  obj = learner.objective
  pool = learner.initial_pool()
  s0 = learner.train(0, pool)
  n = int(s0.aux["ema"]["step"])
  assert n == int(s0.step) > 0
  # The first step of cycle 1 (warm-started: fresh optimiser, step counter 0) averages with
  # the run-wide warm-up decay min(1 − 1/(n+2), α) (main_TOD.py's global `iters`), not with
  # the restarted one (1 − 1/2 = 0.5).
  start = obj.start_epoch(obj.warm_start(jax.tree_util.tree_map(jnp.copy, s0),
                                         obj.init(jax.random.PRNGKey(3), learner.x_train[:1])),
                          0)
  assert int(start.step) == 0 and int(start.aux["ema"]["step"]) == n
  lab, unl = _batches(learner)
  ema0 = _flat(start.aux["ema"]["params"])
  new, _ = jax.jit(obj.train_step)(jax.tree_util.tree_map(jnp.copy, start), lab, unl,
                                   jax.random.PRNGKey(1))
  d = min(1.0 - 1.0 / (n + 2), obj.ema_decay)
  np.testing.assert_allclose(_flat(new.aux["ema"]["params"]),
                             d * ema0 + (1 - d) * _flat(new.params), rtol=1e-5, atol=1e-6)
  assert int(new.aux["ema"]["step"]) == n + 1 and d > 0.5


def test_cod_at_cycle_k_uses_the_weights_cycle_k_minus_1_ended_with(tmp_path):
  cfg = tiny_config("tod", **{**_FIXED, "al.cycles": 3})
  wd = str(tmp_path / "tod")
  learner = loop.ActiveLearner(cfg, wd, log=quiet)
  learner.run()
  obj = learner.objective
  work = loop.results_lib.Workdir(wd)
  abstract = jax.eval_shape(lambda: obj.init(learner.k_init, learner.x_train[:1]))
  s1, _ = work.restore_checkpoint(1, abstract)  # the state cycle 1 ended with
  work.close()
  pools = [np.load(f"{wd}/pools/cycle_{k}.npy") for k in range(3)]
  # COD after cycle 1 compared w_1 with w_0 (cycle 0's final weights, recomputed here by a
  # fresh learner: runs are deterministic) and chose pools[2] − pools[1].
  assert cfg.train.warm_start
  s0 = _retrain_cycle0(cfg)
  chosen = np.setdiff1d(pools[2], pools[1])
  unl = np.setdiff1d(np.arange(len(learner.y_train)), pools[1])
  x = learner.prep.eval(learner.x_dev[unl])
  f = lambda s: outputs.tod_output(obj.model_state(s)(x)[0], "softmax")
  cod = np.linalg.norm(np.asarray(f(s1)) - np.asarray(f(s0)), axis=-1)
  want = unl[np.lexsort((unl, -cod))][:cfg.al.budget]
  np.testing.assert_array_equal(np.sort(chosen), np.sort(want))


def _retrain_cycle0(cfg):
  learner = loop.ActiveLearner(cfg, log=quiet)
  return learner.train(0, learner.initial_pool())


# --- loss prediction --------------------------------------------------------------------------
def _pair_agreement(pred, target, pairing="reverse"):
  """Σ over LL4AL's pairs of sign(l_i − l_j)·(l̂_i − l̂_j): positive when ranks agree."""
  i, j = lp.pair_indices(len(pred), pairing)
  return float(jnp.sum(jnp.sign(target[i] - target[j]) * (pred[i] - pred[j])))


def test_loss_prediction_step_raises_rank_agreement_with_the_true_losses():
  learner = _learner("ll4al")
  obj = learner.objective
  lab, _ = _batches(learner)
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  x = obj.prep.eval(lab["x"])
  (logits, feats), _ = obj.model.apply({"params": state.params,
                                        "batch_stats": state.batch_stats}, x, train=True,
                                       mutable=["batch_stats"])
  true = np.asarray(jax.vmap(lambda l, y: -jax.nn.log_softmax(l)[y])(logits, lab["y"]))
  pred = lambda mp: obj.predict_loss({"params": mp}, feats["stages"])
  step = jax.jit(obj.train_step)
  s = state
  agree = [_pair_agreement(pred(s.aux["loss_net"]["params"]), true)]
  for k in range(3):
    s, m = step(s, lab, None, jax.random.PRNGKey(k))
    agree.append(_pair_agreement(pred(s.aux["loss_net"]["params"]), true))
  assert agree[1] > agree[0] and agree[-1] > agree[0], agree
  assert spearman(np.asarray(pred(s.aux["loss_net"]["params"])), true) > \
      spearman(np.asarray(pred(state.aux["loss_net"]["params"])), true)


# --- warm start -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["tod", "ll4al", "lplgrad", "ent_gradnorm"])
def test_warm_started_cycle_starts_from_the_previous_final_state(method, monkeypatch):
  learner = _learner(method, **{"train.epochs": 2})
  assert learner.config.train.warm_start  # the method's preset continues its model
  obj = learner.objective
  pool = learner.initial_pool()
  s0 = learner.train(0, pool)
  seen = []
  start_epoch = obj.start_epoch
  # A host copy: the compiled step donates (deletes) the state's buffers afterwards.
  monkeypatch.setattr(obj, "start_epoch", lambda s, e: (
      seen.append(jax.tree_util.tree_map(np.asarray, s)), start_epoch(s, e))[1])
  learner.train(1, pool, prev_state=s0)
  first = seen[0]
  np.testing.assert_array_equal(_flat(first.params), _flat(s0.params))
  np.testing.assert_array_equal(_flat(first.batch_stats), _flat(s0.batch_stats))
  fresh = obj.init(jax.random.fold_in(learner.k_init, 1), learner.x_train[:1])
  np.testing.assert_array_equal(_flat(first.opt_state), _flat(fresh.opt_state))
  assert int(first.step) == 0
  if method in ("ll4al", "lplgrad"):  # the loss module continues; its optimiser restarts
    np.testing.assert_array_equal(_flat(first.aux["loss_net"]["params"]),
                                  _flat(s0.aux["loss_net"]["params"]))
    np.testing.assert_array_equal(_flat(first.aux["loss_net"]["opt_state"]),
                                  _flat(fresh.aux["loss_net"]["opt_state"]))
  if method == "tod":  # the EMA model and its run-wide step continue too
    np.testing.assert_array_equal(_flat(first.aux["ema"]), _flat(s0.aux["ema"]))
    assert int(first.aux["ema"]["step"]) == int(s0.aux["ema"]["step"]) > 0
