import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from al_jax import ALError, optim


def cfg(**kw):
  c = ml_collections.ConfigDict(dict(name="sgd", lr=0.1, momentum=0.9, schedule="constant",
                                     milestones=(), gamma=0.1, warmup_epochs=0))
  c.update(kw)
  return c


def test_step_and_cosine_schedules_per_epoch():
  c = cfg(schedule="step", milestones=(160,))
  assert optim.lr_at_epoch(c, 159, 200) == pytest.approx(0.1)
  assert optim.lr_at_epoch(c, 160, 200) == pytest.approx(0.01)
  c = cfg(schedule="cosine")
  assert optim.lr_at_epoch(c, 0, 10) == pytest.approx(0.1)
  assert optim.lr_at_epoch(c, 5, 10) == pytest.approx(0.05)
  assert optim.lr_at_epoch(cfg(warmup_epochs=4), 1, 10) == pytest.approx(0.05)
  with pytest.raises(ALError, match="unknown schedule"):
    optim.lr_at_epoch(cfg(schedule="poly"), 0, 10)
  with pytest.raises(ALError, match="unknown optimizer"):
    optim.make_optimizer(cfg(name="lamb"))


def test_injected_learning_rate_is_used():
  tx = optim.make_optimizer(cfg(momentum=0.0))
  params = {"w": jnp.ones(3)}
  st = optim.set_learning_rate(tx.init(params), 0.5)
  upd, _ = tx.update({"w": jnp.ones(3)}, st, params)
  np.testing.assert_allclose(upd["w"], -0.5 * np.ones(3))


def test_clip_params_keeps_box_after_many_adamw_steps():
  c = 0.01
  rs = np.random.default_rng(0)
  params = {"a": jnp.asarray(rs.uniform(-c, c, (64, 32)), jnp.float32),
            "b": {"k": jnp.asarray(rs.uniform(-c, c, (128,)), jnp.float32)}}
  tx = optax.chain(optax.adamw(1e-3), optim.clip_params(c))
  st = tx.init(params)

  @jax.jit
  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  for i in range(100):
    g = jax.tree_util.tree_map(
        lambda x: 1e3 * jax.random.normal(jax.random.PRNGKey(i), x.shape), params)
    params, st = step(params, st, g)
    for leaf in jax.tree_util.tree_leaves(params):
      assert float(jnp.max(jnp.abs(leaf))) <= c * (1 + 1e-6)


def test_clip_params_leaves_inside_updates_unchanged():
  p = {"w": jnp.array([0.0, 0.005, 0.009, -0.009])}
  u = {"w": jnp.array([0.001, -0.002, 0.005, -0.005])}
  out, _ = optim.clip_params(0.01).update(u, optim.ClipParamsState(), p)
  np.testing.assert_array_equal(out["w"][:2], u["w"][:2])  # strictly inside: untouched
  np.testing.assert_allclose(p["w"][2:] + out["w"][2:], [0.01, -0.01], atol=1e-9)
  with pytest.raises(ValueError, match="needs params"):
    optim.clip_params(0.01).update(u, optim.ClipParamsState())
