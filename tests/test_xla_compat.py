"""`cpu_safe_jit` computes the broadcast-multiply-reduce that jaxlib 0.10.2's XLA:CPU ynn
fusion gets wrong (jax-ml/jax#39103): the shape is the structured eNTK's BatchNorm-scale
Jacobian at 56 samples per block, where a plain jit returned values off by ~130%."""

import jax
import jax.numpy as jnp
import numpy as np

from al_jax.xla_compat import cpu_safe_jit


def test_cpu_safe_jit_broadcast_multiply_reduce_is_exact():
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  a = jax.random.normal(k1, (56, 784, 64))
  d = jax.random.normal(k2, (10, 56, 784, 64))
  got = np.asarray(cpu_safe_jit(lambda a, d: jnp.sum(a[None] * d, 2))(a, d))
  ref = np.einsum("ntk,cntk->cnk", np.asarray(a, np.float64), np.asarray(d, np.float64))
  np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())


def test_cpu_safe_jit_keeps_jit_options():
  calls = []

  @cpu_safe_jit(static_argnums=(1,))
  def f(x, n):
    calls.append(n)  # runs at trace time only
    return x * n

  assert float(f(jnp.float32(2.0), 3)) == 6.0 and float(f(jnp.float32(1.0), 3)) == 3.0
  assert calls == [3]  # one trace for one static value
