"""Data-parallel training and scoring on 4 forced host CPU devices equal one device."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from al_jax.loop import ActiveLearner
    from tests.conftest import tiny_config
    out = {}
    for n in (1, 4):
      # SGD: its update is proportional to the gradient, so a sharded reduction order moves
      # parameters by rounding only; Adam's first steps (≈ lr·sign g) turn rounding noise in
      # near-zero gradient entries into lr-sized differences.
      learner = ActiveLearner(tiny_config("entropy", **{
          "parallel.devices": n, "train.epochs": 3, "optim.name": "sgd", "optim.lr": 0.05}),
          log=lambda s: None)
      assert (learner.dp is None) == (n == 1)
      pool = learner.initial_pool()
      state = learner.train(0, pool)
      test = learner.evaluate(state, learner.dataset.x_test, learner.dataset.y_test)
      sel = learner.select(0, state, pool).indices
      leaves = [np.asarray(l) for l in jax.tree_util.tree_leaves(state.params)]
      out[n] = (test, sel, leaves, len(state.params["head"]["kernel"].sharding.device_set))
    (t1, s1, p1, d1), (t4, s4, p4, d4) = out[1], out[4]
    assert d1 == 1 and d4 == 4, (d1, d4)
    err = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12)) for a, b in zip(p1, p4))
    print("max relative param difference", err)
    print("nll", t1["nll"], t4["nll"])
    assert err < 1e-5, err
    assert abs(t1["nll"] - t4["nll"]) < 1e-5 and t1["accuracy"] == t4["accuracy"]
    np.testing.assert_array_equal(s1, s4)
    print("OK")
""")


def test_sharded_training_matches_single_device():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
             + " --xla_force_host_platform_device_count=4")
  r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=600)
  assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


def test_uncommitted_copies_committed_arrays_and_keeps_the_rest():
  """A restored checkpoint's arrays are committed to their device; `uncommitted` gives them a
  fresh run's placement (same values, same key data) and leaves other leaves as they are."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from al_jax import parallel
  dev = jax.devices()[0]
  fresh = jnp.arange(3.0)
  tree = {"w": jax.device_put(jnp.arange(6.0).reshape(2, 3), dev), "fresh": fresh,
          "key": jax.device_put(jax.random.key(7), dev), "host": np.ones(2), "n": 3}
  assert tree["w"].committed and tree["key"].committed and not fresh.committed
  out = parallel.uncommitted(tree)
  assert not out["w"].committed and not out["key"].committed
  np.testing.assert_array_equal(out["w"], tree["w"])
  np.testing.assert_array_equal(jax.random.key_data(out["key"]), jax.random.key_data(tree["key"]))
  assert out["fresh"] is fresh and out["host"] is tree["host"] and out["n"] == 3
