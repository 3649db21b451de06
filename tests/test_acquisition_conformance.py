"""One contract suite over every registered acquisition function (optax-style conformance).

Each acquisition is paired by the declared contracts (`Acquisition.requires` ⊆
`Objective.provides`) with the cheapest objective that provides its side models (supervised
when it needs none), trained for a few steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import ALError
from al_jax import acquisition as acq_lib
from al_jax.acquisition import base as acq_base
from al_jax.loop import ActiveLearner
from al_jax.objectives import OBJECTIVES
from al_jax.data import Pool
from tests.conftest import ARAL_TINY, VAAL_TINY, tiny_config


def _objective_for(acq_name: str) -> str:
  """Supervised when the acquisition requires no side model, else the first objective (by
  name) that provides every one it requires."""
  need = set(acq_lib.ACQUISITIONS.get(acq_name).requires)
  if not need:
    return "supervised"
  return next(o for o in OBJECTIVES.names() if need <= set(OBJECTIVES.get(o).provides))


_CACHE = {}
# Objectives whose loop step is a large program (VAAL's VAE and sampler, ARAL's five networks)
# use the behavioural tests' tiny learners, trained for two steps by the jitted `train_step`
# those tests compile (16 labeled and 16 unlabeled images), so no program is built for this
# module alone.
_STEPPED = {"vaal": VAAL_TINY, "aral": ARAL_TINY}
# PT4AL's pretext model and schedule as in its behavioural test (tests/test_tod_crtcl.py).
_KWARGS = {"pt4al": dict(num_batches=4, epochs=1, model_kwargs={"widths": (8, 16), "hidden": 32})}


def _learner_and_state(acq_name):
  obj = _objective_for(acq_name)
  if obj in _CACHE:
    return _CACHE[obj]
  quiet = lambda s: None
  if obj not in _STEPPED:
    learner = ActiveLearner(tiny_config("random", "digits", objective=obj,
                                        **{"train.epochs": 1}), workdir=None, log=quiet)
    pool = learner.initial_pool()
    _CACHE[obj] = (learner, pool, learner.train(0, pool))
    return _CACHE[obj]
  learner = ActiveLearner(tiny_config(obj, "digits", **_STEPPED[obj]), workdir=None, log=quiet)
  pool = learner.initial_pool()
  o = learner.objective
  state = o.init(jax.random.PRNGKey(0), learner.x_train[:1])
  step = jax.jit(o.train_step)
  lab = pool.labeled[:16]
  for i in range(2):
    unl = pool.unlabeled[16 * i:16 * (i + 1)]
    state, _ = step(state, {"x": learner.x_dev[lab], "y": jnp.asarray(learner.y_train[lab]),
                            "mask": jnp.ones(16, jnp.float32)},
                    {"x": learner.x_dev[unl]}, jax.random.PRNGKey(i))
  _CACHE[obj] = (learner, pool, state)
  return _CACHE[obj]


@pytest.mark.parametrize("name", acq_lib.ACQUISITIONS.names())
def test_acquisition_contract(name):
  learner, pool, state = _learner_and_state(name)
  acq = acq_lib.ACQUISITIONS.get(name)(**_KWARGS.get(name, {}))
  mstate = learner.objective.model_state(state)
  if acq.needs_previous:
    prev = jax.tree_util.tree_map(lambda a: a * 0.9, mstate.variables)
    mstate = mstate.replace(prev_variables=prev)
  budget = 7
  key = jax.random.PRNGKey(3)
  # Chunk 64 over ~1,250 candidates: several chunks, the last one padded.
  run = lambda k, p=pool: acq_lib.acquire(acq, mstate, learner.x_dev, p, budget, k,
                                          learner.prep, chunk_size=64)
  first = run(key)
  cache = acq_base._chunk_call._cache_size()
  second = run(key)
  assert acq_base._chunk_call._cache_size() == cache, "retraced on a second call"
  idx = first.indices
  assert len(idx) == budget and len(np.unique(idx)) == budget
  assert not np.isin(idx, pool.labeled).any()
  np.testing.assert_array_equal(idx, second.indices)  # deterministic for a key
  if first.scores is not None:
    assert first.scores.shape == (len(pool.unlabeled),)
    assert np.all(np.isfinite(first.scores))
  # A bigger labeled set with the same chunk size must not compile again either.
  bigger = pool.label(idx)
  third = run(jax.random.PRNGKey(4), bigger)
  assert acq_base._chunk_call._cache_size() == cache
  assert not np.isin(third.indices, bigger.labeled).any()


def test_top_k_breaks_ties_by_index():
  cand = np.array([9, 3, 5, 7])
  np.testing.assert_array_equal(acq_lib.top_k(np.array([1.0, 2.0, 2.0, 0.5]), cand, 3),
                                [3, 5, 9])
  with pytest.raises(ALError, match="non-finite"):
    acq_lib.top_k(np.array([np.nan, 1.0, 0.0, 0.0]), cand, 1)


def test_budget_larger_than_unlabeled_is_refused():
  learner, pool, state = _learner_and_state("entropy")
  with pytest.raises(ALError, match="larger than"):
    acq_lib.acquire(acq_lib.ACQUISITIONS.get("entropy")(), learner.objective.model_state(state),
                    learner.x_dev, pool, len(pool.unlabeled) + 1, jax.random.PRNGKey(0),
                    learner.prep)


def test_entropy_scores_exact_on_fixed_logits():
  """A fake model with fixed logits gives exact expected scores (scenic-style)."""
  from al_jax.state import ModelState
  logits = jnp.log(jnp.array([[0.5, 0.5, 0.0 + 1e-12], [1.0, 1e-12, 1e-12], [0.6, 0.3, 0.1]]))
  fake = ModelState(apply_fn=lambda v, x, **kw: (logits, {}), variables={})
  x = jnp.zeros((3, 1))
  got = acq_lib.ACQUISITIONS.get("entropy")().score(fake, x, None)
  np.testing.assert_allclose(got, [np.log(2), 0.0, -(0.6 * np.log(0.6) + 0.3 * np.log(0.3)
                                                      + 0.1 * np.log(0.1))], atol=1e-5)
  lc = acq_lib.ACQUISITIONS.get("least_confidence")().score(fake, x, None)
  np.testing.assert_allclose(lc, [0.5, 0.0, 0.4], atol=1e-5)
  mg = acq_lib.ACQUISITIONS.get("margin")().score(fake, x, None)
  np.testing.assert_allclose(mg, [0.0, -1.0, -0.3], atol=1e-5)


def test_random_scores_are_fresh_in_every_chunk_and_selections_uniform():
  """Random, the reference of every comparison: each scoring chunk draws its own uniforms
  (fold_in of the chunk index), and over many keys every candidate is picked about equally
  often."""
  from tests.test_badge import _PREP, _apply_tables
  from al_jax.state import ModelState
  n = 100
  state = ModelState(apply_fn=_apply_tables, variables={"logits": jnp.zeros((n, 3)),
                                                        "emb": jnp.zeros((n, 2))})
  x_all = jnp.arange(n, dtype=jnp.uint8).reshape(n, 1, 1, 1)
  rand = acq_lib.ACQUISITIONS.get("random")()
  scores = np.asarray(acq_base.map_chunks(rand.score, state, x_all, np.arange(n), _PREP, 16,
                                          jax.random.PRNGKey(0)))
  assert len(np.unique(scores)) == n
  counts = np.zeros(n)
  for k in range(200):
    s = acq_base.map_chunks(rand.score, state, x_all, np.arange(n), _PREP, 16,
                            jax.random.PRNGKey(k))
    counts[acq_base.top_k(np.asarray(s), np.arange(n), 10)] += 1
  # Binomial(200, 0.1): mean 20, sd 4.2 per candidate.
  assert counts.sum() == 2000 and counts.min() >= 5 and counts.max() <= 40, counts
