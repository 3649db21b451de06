"""The conventions every objective shares: the per-step key, side models, the one EMA, imports."""

import ast
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from al_jax import ALError, ema, loop, optim
from al_jax.objectives import OBJECTIVES
from al_jax.objectives.side import SideModel, adam
from tests.conftest import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "al_jax")
# Objective modules that hold shared pieces rather than an objective: any objective may import
# them.
NEUTRAL_OBJECTIVE_MODULES = {"base", "side", "losses", "__init__"}


def test_loop_folds_the_step_into_the_key_the_objective_receives():
  learner = loop.ActiveLearner(tiny_config("random"), log=lambda s: None)
  obj = learner.objective
  train_step = obj.train_step
  # Report the key the objective was handed; the loop's jitted step traces this wrapper.
  obj.train_step = lambda s, l, u, rng: (lambda out: (out[0], {**out[1], "key": rng}))(
      train_step(s, l, u, rng))
  state = obj.start_epoch(obj.init(jax.random.PRNGKey(0), learner.x_train[:1]), 0)
  y = jnp.asarray(learner.y_train)
  lab, mask = jnp.arange(16, dtype=jnp.int32), jnp.ones(16)
  rng = jax.random.PRNGKey(7)
  keys = []
  for step in range(2):
    assert int(state.step) == step
    state, m = learner._step(state, learner.x_dev, y, lab, mask, lab, rng)
    keys.append(np.asarray(m["key"]))
  for step, key in enumerate(keys):
    np.testing.assert_array_equal(key, np.asarray(jax.random.fold_in(rng, step)))
  assert not np.array_equal(keys[0], keys[1])  # a fresh draw every step


def _tree(x):
  return jax.tree_util.tree_map(np.asarray, x)


def test_side_model_warm_start_modes():
  tx = adam(1e-3)
  prev = SideModel(tx).init({"params": {"w": jnp.ones(3)}, "batch_stats": {"m": jnp.ones(2)}})
  prev = SideModel(tx).update(prev, {"w": jnp.ones(3)})
  fresh = SideModel(tx).init({"params": {"w": jnp.zeros(3)},
                              "batch_stats": {"m": jnp.zeros(2)}})
  weights = SideModel(tx, warm="weights").warm_start(prev, fresh)
  np.testing.assert_array_equal(weights["params"]["w"], prev["params"]["w"])
  np.testing.assert_array_equal(weights["batch_stats"]["m"], 1.0)
  # A fresh optimiser: Adam's step count is 0 again.
  counts = lambda s: [int(a) for a in jax.tree_util.tree_leaves(s["opt_state"])
                      if np.ndim(a) == 0 and np.issubdtype(np.asarray(a).dtype, np.integer)]
  assert set(counts(weights)) == {0} and set(counts(prev)) == {1}
  assert set(counts(SideModel(tx, warm="all").warm_start(prev, fresh))) == {1}
  none = SideModel(tx, warm="none").warm_start(prev, fresh)
  np.testing.assert_array_equal(none["params"]["w"], 0.0)


def test_side_model_learning_rate_follows_its_schedule():
  cfg = tiny_config("random").optim
  cfg.lr, cfg.schedule, cfg.milestones, cfg.gamma = 0.1, "step", (1,), 0.5
  side = lambda **kw: SideModel(adam(2e-3), **kw).init({"params": {"w": jnp.ones(2)}})
  lr_at = lambda s: float(s["opt_state"].hyperparams["learning_rate"])
  epoch_lr = optim.lr_at_epoch(cfg, 1, 4)  # 0.05: half the base rate
  for kw, want in (({}, 2e-3), ({"schedule": "classifier"}, 0.05),
                   ({"schedule": "relative", "lr": 2e-3}, 1e-3)):
    model = SideModel(adam(2e-3), **kw)
    assert lr_at(model.start_epoch(side(**kw), epoch_lr, cfg.lr)) == pytest.approx(want)
  with pytest.raises(ALError):
    SideModel(adam(1e-3), schedule="relative")  # no base rate
  with pytest.raises(ALError):
    SideModel(schedule="classifier")  # an EMA copy has no learning rate


def test_one_ema_keeps_the_decay_first_order():
  e, w = {"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([3.0, 6.0])}
  np.testing.assert_array_equal(ema.ema_update(e, w, 0.75)["a"], [1.5, 3.0])
  # Same values as optax's incremental update up to rounding, computed decay-first.
  np.testing.assert_allclose(ema.ema_update(e, w, 0.75)["a"],
                             optax.incremental_update(w, e, 0.25)["a"], rtol=1e-7)
  assert float(ema.warmup_decay(jnp.asarray(1), 0.999)) == 0.5
  assert float(ema.warmup_decay(jnp.asarray(10**6), 0.999)) == pytest.approx(0.999)


@pytest.mark.parametrize("name", sorted(OBJECTIVES.names()))
def test_every_aux_entry_is_a_declared_side_model(name):
  method = {"supervised": "random", "tod_ema": "tod", "critic": "crtcl",
            "critic_no_gen": "crtcl_select_only", "mean_teacher": "random_mt",
            "fixmatch": "random_fixmatch", "loss_pred": "ll4al"}.get(name, name)
  learner = loop.ActiveLearner(tiny_config(method), log=lambda s: None)
  obj = learner.objective
  state = obj.init(jax.random.PRNGKey(0), learner.x_train[:1])
  assert set(state.aux) == set(obj.side_models)
  for k, entry in state.aux.items():
    assert {"params", "batch_stats"} <= set(entry) <= {"params", "batch_stats", "opt_state",
                                                        "step"}, (k, sorted(entry))
    assert ("opt_state" in entry) == (obj.side_models[k].tx is not None), k


def _imports(path):
  """(module imported, names taken from it) for each import statement of a file."""
  tree = ast.parse(open(path, encoding="utf-8").read())
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      yield node.module, [a.name for a in node.names]
    elif isinstance(node, ast.Import):
      for a in node.names:
        yield a.name, []


def _modules(*parts):
  folder = os.path.join(PKG, *parts)
  for dirpath, _, files in os.walk(folder):
    for f in sorted(files):
      if f.endswith(".py"):
        yield os.path.join(dirpath, f)


def test_no_objective_imports_another_objective_and_no_acquisition_imports_objectives():
  bad = []
  for path in _modules("objectives"):
    me = os.path.basename(path)[:-3]
    if me == "__init__":
      continue
    for mod, names in _imports(path):
      targets = ([f"{mod}.{n}" for n in names] if mod == "al_jax.objectives" else [mod])
      for t in targets:
        if t.startswith("al_jax.objectives."):
          other = t.split(".")[2]
          if other != me and other not in NEUTRAL_OBJECTIVE_MODULES:
            bad.append(f"{path}: {t}")
  for path in _modules("acquisition"):
    for mod, _ in _imports(path):
      if mod == "al_jax.objectives" or mod.startswith("al_jax.objectives."):
        bad.append(f"{path}: {mod}")
  assert not bad, bad


OWN = ("al_jax", "experiments")


def test_no_module_imports_a_private_name_of_another():
  bad = []
  for folder in (PKG, os.path.join(ROOT, "experiments")):
    for dirpath, _, files in os.walk(folder):
      for f in files:
        if not f.endswith(".py"):
          continue
        path = os.path.join(dirpath, f)
        tree = ast.parse(open(path, encoding="utf-8").read())
        aliases = set()  # names bound to the project's own modules
        for node in ast.walk(tree):
          if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OWN):
            bad += [f"{path}: {node.module}.{a.name}" for a in node.names
                    if a.name.startswith("_")]
            aliases |= {a.asname or a.name for a in node.names}
          elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.asname and a.name.startswith(OWN)}
        bad += [f"{path}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")]
  assert not bad, bad
