"""The classifier's initialisation is one compiled function (`Objective.init_classifier`): it
returns what the eager initialisation returned, bit for bit, for every registered model and
for the optimisers' states, and a run still compiles its train step once."""

import copy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from al_jax import loop, optim
from al_jax.models import get_model
from tests.conftest import tiny_config

quiet = lambda s: None

_MODELS = [("mlp", {}), ("small_cnn", {"widths": (8, 16), "flatten": True}),
           ("resnet18", {"width_multiplier": 1 / 16}), ("wrn", {"depth": 10, "widen_factor": 1}),
           ("noisy_mlp", {}), ("gan_cnn", {})]


def _assert_trees_equal(a, b):
  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == y.dtype
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name,kwargs", _MODELS, ids=[m for m, _ in _MODELS])
def test_jitted_classifier_init_equals_the_eager_one(name, kwargs):
  learner = loop.ActiveLearner(tiny_config("random", "digits"), log=quiet)
  base = learner.objective
  for opt in ({"name": "adam", "lr": 1e-3, "b1": 0.9, "b2": 0.999},
              {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False,
               "weight_decay": 5e-4}):
    obj = copy.copy(base)
    obj.__dict__.pop("_jit_init_classifier", None)
    obj.model = get_model(name, 10, **kwargs)
    obj.tx = optim.make_optimizer(ml_collections.ConfigDict(opt))
    for seed in (3,):
      rng = jax.random.PRNGKey(seed)
      got = obj.init_classifier(rng, learner.x_train[:1])
      # The eager initialisation, as before: the same function called without jit.
      want = obj._init_classifier(rng, obj.prep.eval(learner.x_train[:1]))
      assert isinstance(want.step, int) and int(got.step) == want.step == 0
      _assert_trees_equal(got.replace(step=0), want)


def test_a_run_with_the_jitted_init_compiles_its_step_once():
  learner = loop.ActiveLearner(tiny_config("random", "digits", **{"al.cycles": 2}), log=quiet)
  learner.run()
  assert learner.trainer.compiles == 1
  state = learner.objective.init(jax.random.PRNGKey(0), learner.x_train[:1])
  assert state.step.dtype == jnp.int32 and state.epoch.dtype == jnp.int32


@pytest.mark.parametrize("method", ["crtcl", "ll4al"])
def test_jitted_side_model_init_equals_the_eager_one(method):
  """CrtCl's critic (clipped into the box) and LL4AL's loss module with their optimiser
  states: the jitted `_init_aux` returns what the same function returns eagerly."""
  learner = loop.ActiveLearner(tiny_config(method, "digits"), log=quiet)
  obj = learner.objective
  rng = jax.random.PRNGKey(4)
  state = obj.init(rng, learner.x_train[:1])
  k_side = (jax.random.split(rng)[1] if method == "crtcl" else jax.random.fold_in(rng, 1))
  want = obj._init_aux(k_side, state.params, state.batch_stats,
                       obj.prep.eval(learner.x_train[:1]))
  _assert_trees_equal(state.aux, want)
