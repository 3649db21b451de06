"""Empirical NTK: brute-force J Jᵀ, the product path, λ⁺_min against float64 references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from al_jax import ALError
from al_jax import ntk
from al_jax.models import get_model


def _small_cnn(seed=0, n=6, hidden=32):
  model = get_model("small_cnn", 10, widths=(8, 16), hidden=hidden)
  rs = np.random.default_rng(seed)
  x = jnp.asarray(rs.normal(size=(n, 8, 8, 1)), jnp.float32)
  variables = model.init(jax.random.PRNGKey(seed), x, train=False)
  # Non-trivial BatchNorm statistics, so inference mode really uses them.
  stats = jax.tree_util.tree_map(
      lambda a: a + 0.1 * jnp.asarray(rs.uniform(size=a.shape), a.dtype),
      variables["batch_stats"])
  variables = {"params": variables["params"], "batch_stats": stats}
  apply_fn = lambda v, x, **kw: model.apply(v, x, train=False)
  return apply_fn, variables, x


def _brute_force(f, p, rest, x1, x2):
  """Traced J Jᵀ from `jax.jacrev` on the flattened parameters (float64 on the host)."""
  flat, unravel = ravel_pytree(p)
  # Jitted: eagerly, jacrev compiles each of its many small ops separately.
  jac_fn = jax.jit(jax.jacrev(lambda v, x: f(unravel(v), x, rest).reshape(-1)))
  jac = lambda x: np.asarray(jac_fn(flat, x), np.float64)  # [n·C, P]
  j1, j2 = jac(x1), jac(x2)
  c = f(p, x1[:1], rest).shape[-1]
  full = (j1 @ j2.T).reshape(x1.shape[0], c, x2.shape[0], c)
  return np.einsum("icjc->ij", full)


def _rel(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("layers", ["last", "all"])
def test_jacobian_and_products_equal_brute_force(layers):
  apply_fn, variables, x = _small_cnn()
  f = ntk.ClassifierFn(apply_fn, layers)
  p, rest = f.split(variables)
  x1, x2 = x[:4], x[2:]
  ref = _brute_force(f, p, rest, x1, x2)
  # chunk_size 3 < n: the blockwise path with a padded last chunk.
  got = ntk.ntk(f, p, x1, x2, rest, method="jacobian", chunk_size=3)
  assert got.shape == (4, 4) and got.dtype == np.float64
  assert _rel(got, ref) < 1e-5
  prod = ntk.ntk(f, p, x1, x2, rest, method="ntvp")
  assert _rel(prod, ref) < 1e-5
  assert _rel(prod, got) < 1e-5
  sym = ntk.ntk(f, p, x, None, rest, chunk_size=4)
  np.testing.assert_allclose(sym, sym.T, rtol=0, atol=1e-12 * np.abs(sym).max())


def test_last_layer_kernel_is_classes_times_embedding_gram():
  """The traced last-layer eNTK of a dense head is C·(e·e' + 1) (an independent formula)."""
  apply_fn, variables, x = _small_cnn()
  f = ntk.ClassifierFn(apply_fn, "last")
  p, rest = f.split(variables)
  emb = np.asarray(apply_fn(variables, x)[1]["embedding"], np.float64)
  ref = 10 * (emb @ emb.T + 1.0)
  assert _rel(ntk.ntk(f, p, x, None, rest), ref) < 1e-6


def test_lambda_min_plus_matches_float64_reference_on_last_layer_kernel():
  """Rank-deficient last-layer kernel (rank ≤ 33 < 60): our λ⁺_min = the float64 one."""
  apply_fn, variables, x = _small_cnn(seed=1, n=60)
  f = ntk.ClassifierFn(apply_fn, "last")
  p, rest = f.split(variables)
  k = ntk.ntk(f, p, x, None, rest, chunk_size=32)
  lam, rank = ntk.lambda_min_plus(k, return_rank=True)
  # Reference: everything in float64 from the embeddings: K = C [E, 1][E, 1]ᵀ, whose
  # rank and smallest positive eigenvalue come from the SVD of [E, 1] (no Gram rounding).
  emb = np.asarray(apply_fn(variables, x)[1]["embedding"], np.float64)
  phi = np.sqrt(10) * np.concatenate([emb, np.ones((len(emb), 1))], 1)
  s = np.linalg.svd(phi, compute_uv=False)
  true_rank = int(np.sum(s > s[0] * max(phi.shape) * np.finfo(np.float64).eps))
  assert true_rank < 60 and rank == true_rank
  np.testing.assert_allclose(lam, s[true_rank - 1] ** 2, rtol=1e-4)
  # A float32 eigensolve of the same kernel gets it wrong (docs/architecture.md's measurement).
  w32 = np.linalg.eigvalsh(k.astype(np.float32))
  tol32 = w32[-1] * 60 * np.finfo(np.float32).eps
  assert abs(w32[w32 > tol32].min() - s[true_rank - 1] ** 2) > 1e-3 * s[true_rank - 1] ** 2 \
      or np.sum(w32 > tol32) != true_rank


def test_lambda_min_plus_tolerance_by_kernel_dtype():
  """Known spectrum: float32 factor Φ (rank 12 of 40), singular values 1 … 0.03."""
  rs = np.random.default_rng(0)
  u = np.linalg.qr(rs.normal(size=(40, 12)))[0]
  v = np.linalg.qr(rs.normal(size=(30, 12)))[0]
  s = np.geomspace(1.0, 0.03, 12)
  phi = ((u * s) @ v.T).astype(np.float32)
  s_true = np.linalg.svd(phi.astype(np.float64), compute_uv=False)
  k64 = phi.astype(np.float64) @ phi.T.astype(np.float64)
  lam, rank = ntk.lambda_min_plus(k64, return_rank=True)
  assert rank == 12
  np.testing.assert_allclose(lam, s_true[11] ** 2, rtol=1e-8)
  k32 = phi @ phi.T  # float32 contraction: coarser tolerance n·eps32·λ_max, same answer here
  lam32, rank32 = ntk.lambda_min_plus(k32, return_rank=True)
  assert rank32 == 12 and abs(lam32 / s_true[11] ** 2 - 1) < 1e-2
  # Batched, and an all-zero kernel scores 0.
  batch = np.stack([k64, np.zeros_like(k64)])
  np.testing.assert_allclose(ntk.lambda_min_plus(batch), [lam, 0.0])
  with pytest.raises(ALError, match="square"):
    ntk.lambda_min_plus(np.zeros((3, 4)))


def test_neural_tangents_backend_fails_with_one_clear_message():
  try:
    import neural_tangents  # noqa: F401
  except Exception:  # not importable here, the normal case on a modern jax
    pass
  else:
    pytest.skip("neural_tangents imports in this environment (checked by the CI cross-check)")
  with pytest.raises(ALError, match=r"0\.4\.25") as e:
    ntk.check_options(backend="neural_tangents")
  assert "\n" not in str(e.value) and jax.__version__ in str(e.value)
  from al_jax.acquisition.crc import CRC
  with pytest.raises(ALError, match="neural-tangents 0.6.5"):
    CRC(ntk_backend="neural_tangents")


def test_bad_options():
  with pytest.raises(ALError, match="layers"):
    ntk.ClassifierFn(lambda v, x: None, "middle")
  with pytest.raises(ALError, match="head"):
    ntk.ClassifierFn(lambda v, x: None, "last").split({"params": {"Dense_0": {}}})
  with pytest.raises(ALError, match="method"):
    ntk.check_options(method="svd")
