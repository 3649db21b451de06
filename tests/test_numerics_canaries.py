"""Numerics canaries: XLA:CPU programs that some jaxlib releases compile to wrong values.

jaxlib 0.10.2 and 0.11.x turned on XLA:CPU's YNNPACK ("ynn") fusions, which silently return
wrong values for broadcast-multiply-reduce patterns (jax-ml/jax#39103) and crash or hang on
rank-7/8 ones (jax-ml/jax#39257). al_jax requires a jax whose CPU compiler passes these
programs; a future release that brings the bug back fails here. Every canary runs with the
project's default compiler settings (no XLA_FLAGS of ours, plain `jax.jit`).
"""

import os
import subprocess
import sys
import textwrap

import pytest


def _run_with_default_flags(program: str, *args: str, timeout: int = 120) -> str:
  """Runs `program` in a child process with XLA's default flags (the test session compiles at
  a lower LLVM optimisation level, tests/conftest.py) and returns its stdout; a crash or hang
  fails the test, not the session."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  try:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(program), *args], env=env,
                         capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    pytest.fail(f"canary hung for {timeout} s")
  assert out.returncode == 0, f"canary died (exit {out.returncode}): {out.stderr[-500:]}"
  return out.stdout


# jax-ml/jax#39103's reproducer: vmapped matvec + sum of squares, jitted; its last entry.
_MATVEC_PROGRAM = """
    import sys
    import jax, jax.numpy as jnp
    dtype_name, n = sys.argv[1], int(sys.argv[2])
    with jax.enable_x64(dtype_name == "float64"):
      dtype = getattr(jnp, dtype_name)
      i = jnp.arange(n, dtype=dtype)
      x = jnp.stack((i, jnp.zeros_like(i), jnp.zeros_like(i)), axis=1)
      matrix = jnp.eye(3, dtype=dtype)
      f = lambda x: jax.vmap(lambda row: jnp.sum((matrix @ row) ** 2))(x)
      print(repr(float(jax.jit(f)(x)[-1])))
"""


@pytest.mark.parametrize("dtype_name,n", [("float64", 16_385), ("float32", 32_769)])
def test_upstream_39103_vmapped_matvec_reduce(dtype_name, n):
  # The last row is (n − 1, 0, 0), so the exact answer is (n − 1)², representable in both
  # dtypes; jaxlib 0.10.2 returned 267,911,424 / 1,071,645,696.
  got = _run_with_default_flags(_MATVEC_PROGRAM, dtype_name, str(n))
  assert float(got.split()[-1]) == float((n - 1) ** 2)


# jax-ml/jax#39257's reproducer: on jaxlib 0.10.2 / 0.11.0 it kills the process (SIGSEGV) on
# some x86-64 CPUs and hangs on others, which must fail this test, not the whole test session.
_RANK8_PROGRAM = """
    import jax, jax.numpy as jnp, numpy as np
    def f(obs, A):
      lik = jnp.sum(obs[..., None, None, None, None, None] * A, axis=2)
      return jnp.log(jnp.maximum(lik, 2.220446049250313e-16))
    obs = jnp.ones((10, 4, 6), jnp.float32)
    A = jnp.ones((10, 4, 6, 9, 9, 9, 9, 9), jnp.float32)
    r = np.asarray(jax.jit(f)(obs, A))
    assert r.shape == (10, 4, 9, 9, 9, 9, 9), r.shape
    print(float(np.abs(r - np.log(6.0)).max()))
"""


def test_upstream_39257_rank8_broadcast_multiply_reduce():
  assert float(_run_with_default_flags(_RANK8_PROGRAM).split()[-1]) < 1e-6  # log 6 everywhere


# The BatchNorm-scale Jacobian of the structured eNTK (Σ_t x̂_t δ^c_t over a [10, 56, 784, 64]
# cotangent batch): jaxlib 0.10.2 returned it 132% off (relative to the largest entry) at
# 56 samples per block and right at 48. Prints the error relative to the largest entry.
_STRUCTURED_ENTK_PROGRAM = """
    import jax, jax.numpy as jnp, numpy as np
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(k1, (56, 784, 64))
    d = jax.random.normal(k2, (10, 56, 784, 64))
    got = np.asarray(jax.jit(lambda a, d: jnp.sum(a[None] * d, 2))(a, d))
    ref = np.einsum("ntk,cntk->cnk", np.asarray(a, np.float64), np.asarray(d, np.float64))
    print(float(np.abs(got - ref).max() / np.abs(ref).max()))
"""


def test_broadcast_multiply_reduce_of_the_structured_entk():
  assert float(_run_with_default_flags(_STRUCTURED_ENTK_PROGRAM).split()[-1]) <= 1e-5
