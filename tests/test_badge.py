"""BADGE (Ash et al. 2020): gradient embeddings, factorised distances, k-means++ seeding.

Behavioural tests run on a fake classifier (scenic-style) whose logits and embeddings are fixed
tables: image i, a 1×1 image of pixel value i, gets row i. Distances are invariant to the sign
of g (p − onehot or onehot − p, as the authors' code stores it), so only the gradient test
pins the sign; every other test would pass either way, by design.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import ALError
from al_jax.acquisition import ACQUISITIONS, SelectContext, acquire
from al_jax.acquisition import badge as badge_lib
from al_jax.data import Pool, Preprocess
from al_jax.methods import METHODS
from al_jax.models import get_model
from al_jax.state import ModelState

_PREP = Preprocess(mean=(0.0,), std=(1.0,))


def _apply_tables(variables, x, **kw):
  del kw
  i = jnp.round(x[:, 0, 0, 0] * 255.0).astype(jnp.int32)
  return variables["logits"][i], {"embedding": variables["emb"][i], "stages": ()}


def _ctx(logits, emb, candidates=None, labeled=()):
  n = len(logits)
  state = ModelState(apply_fn=_apply_tables,
                     variables={"logits": jnp.asarray(logits, jnp.float32),
                                "emb": jnp.asarray(emb, jnp.float32)})
  x_all = jnp.arange(n, dtype=jnp.uint8).reshape(n, 1, 1, 1)
  cand = np.arange(n) if candidates is None else np.asarray(candidates)
  return SelectContext(state=state, x_all=x_all, labeled=np.asarray(labeled, np.int64),
                       candidates=cand, prep=_PREP, chunk_size=16)


def _uniform_logits(n, c=3):
  return np.zeros((n, c), np.float32)  # p = 1/C: every point equally uncertain


def test_registered_as_a_batch_selector_and_a_method():
  assert "badge" in ACQUISITIONS.names()
  assert ACQUISITIONS.get("badge")().kind == "select"
  assert (METHODS["badge"].objective, METHODS["badge"].acquisition) == ("supervised", "badge")
  with pytest.raises(TypeError, match="unknown settings"):
    ACQUISITIONS.get("badge")(bias=True)


def _tiny_model_batch():
  model = get_model("small_cnn", 5, widths=(4, 8), hidden=6)
  x = jax.random.normal(jax.random.PRNGKey(1), (9, 8, 8, 1))
  variables = model.init(jax.random.PRNGKey(0), x[:1], train=False)
  logits, feats = model.apply(variables, x, train=False)
  return model, variables, x, logits, feats["embedding"]


def test_factors_are_the_cross_entropy_gradient_of_the_head_kernel_at_the_predicted_label():
  """BADGE Eq. 1: g_x = ∂ℓ_CE(f(x), ŷ)/∂W_head with ŷ = argmax p(x); kernel [D, C] = h ⊗ a."""
  model, variables, x, logits, emb = _tiny_model_batch()
  y_hat = jnp.argmax(logits, -1)

  def ce(kernel, xi, yi):
    params = {**variables["params"], "head": {**variables["params"]["head"], "kernel": kernel}}
    out = model.apply({**variables, "params": params}, xi[None], train=False)[0][0]
    return -jax.nn.log_softmax(out)[yi]

  grads = jax.jit(jax.vmap(jax.grad(ce), (None, 0, 0)))(variables["params"]["head"]["kernel"],
                                                         x, y_hat)
  a, h = badge_lib.gradient_factors(logits, emb)
  assert float(jnp.abs(grads).max()) > 1e-2  # a non-trivial gradient to compare against
  # Fails with p in place of p − onehot, with the true instead of the predicted label, or with
  # the sign flipped.
  np.testing.assert_allclose(jnp.einsum("bd,bc->bdc", h, a), grads, atol=1e-5)


def test_factorised_distances_equal_the_materialised_gradient_embeddings():
  *_, logits, emb = _tiny_model_batch()
  a, h = badge_lib.gradient_factors(logits, emb)
  g = np.asarray(jnp.einsum("bd,bc->bdc", h, a)).reshape(len(a), -1).astype(np.float64)
  explicit = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
  sq_norms = jnp.sum(a * a, -1) * jnp.sum(h * h, -1)
  np.testing.assert_allclose(sq_norms, (g ** 2).sum(-1), rtol=1e-5)
  scale = explicit.max()
  for c in range(len(a)):
    np.testing.assert_allclose(badge_lib.sq_dists_to(a, h, sq_norms, c), explicit[:, c],
                               atol=1e-5 * scale)
    # The sign of g (the authors store onehot − p) leaves every distance unchanged.
    np.testing.assert_allclose(badge_lib.sq_dists_to(-a, h, sq_norms, c), explicit[:, c],
                               atol=1e-5 * scale)
  # The first centre is the largest-norm gradient embedding (the authors' code).
  assert badge_lib.kmeanspp_seed(a, h, 1, jax.random.PRNGKey(0))[0] == \
      np.argmax((g ** 2).sum(-1))


def test_equal_uncertainty_two_clusters_picks_one_from_each_never_a_duplicate_pair():
  """Diversity: with the same p everywhere, budget 2 takes one point from each of two tight
  clusters. Rows 0–2 are one image three times, the largest-norm point, so a top-2 by gradient
  norm (uncertainty alone) would take two copies of it."""
  rng = np.random.default_rng(0)
  d = 4
  e1, e2 = np.eye(d)[0], np.eye(d)[1]
  cluster_a = np.concatenate([np.repeat(1.05 * e1[None], 3, 0),
                              e1 + 1e-3 * rng.normal(size=(5, d))])
  cluster_b = e2 + 1e-3 * rng.normal(size=(6, d))
  emb = np.concatenate([cluster_a, cluster_b]).astype(np.float32)
  ctx = _ctx(_uniform_logits(len(emb)), emb)
  in_a = lambda i: i < len(cluster_a)
  for seed in range(25):
    idx = ACQUISITIONS.get("badge")().select(ctx, 2, jax.random.PRNGKey(seed))
    assert in_a(idx[0]) != in_a(idx[1]), f"seed {seed}: both picks in one cluster {idx}"
    assert len(set(idx) & {0, 1, 2}) <= 1, f"seed {seed}: a duplicate pair {idx}"


def test_a_confident_point_is_never_the_first_pick_over_an_uncertain_one_of_its_cluster():
  """g ≈ 0 where p ≈ onehot. Each cluster holds an uncertain point and a confident one with a
  larger embedding: the first centre (largest ‖g‖) is always the uncertain one. With p in place
  of p − onehot (‖p‖² ≈ 1 > 1/3), or with ‖h‖ alone, the confident one would come first."""
  logits = np.array([[0, 0, 0], [30, 0, 0], [0, 0, 0], [0, 30, 0]], np.float32)
  emb = np.array([[1.0, 0], [1.5, 0], [0, 0.9], [0, 1.5]], np.float32)
  ctx = _ctx(logits, emb)
  for seed in range(10):
    idx = ACQUISITIONS.get("badge")().select(ctx, 1, jax.random.PRNGKey(seed))
    assert idx[0] == 0


def test_next_centres_are_drawn_in_proportion_to_squared_distance():
  """D² sampling (k-means++): after the first centre u_a, an orthogonal uncertain point u_b
  (D² = ‖g_a‖² + ‖g_b‖²) and a confident point c (g ≈ 0, D² ≈ ‖g_a‖²) are drawn with
  probabilities ∝ D² — about 2/3 and 1/3. Taking the farthest point would always give u_b;
  sampling ∝ D (not D²) would give u_b 0.59 of the time."""
  logits = np.array([[0, 0, 0], [0, 0, 0], [30, 0, 0]], np.float32)
  emb = np.array([[1.0, 0], [0, 0.99], [1.0, 0]], np.float32)
  a, h = badge_lib.gradient_factors(jnp.asarray(logits), jnp.asarray(emb))
  a64, h64 = np.asarray(a, np.float64), np.asarray(h, np.float64)
  g = np.einsum("bd,bc->bdc", h64, a64).reshape(3, -1)
  d2 = ((g - g[0]) ** 2).sum(-1)[1:]
  expected = d2 / d2.sum()
  draws = 2000
  second = np.array([badge_lib.kmeanspp_seed(a, h, 2, jax.random.PRNGKey(s))
                     for s in range(draws)])
  assert (second[:, 0] == 0).all()
  freq = np.array([(second[:, 1] == 1).mean(), (second[:, 1] == 2).mean()])
  np.testing.assert_allclose(freq, expected, atol=0.03)


def test_same_key_same_selection_different_keys_differ():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(40, 4)).astype(np.float32)
  emb = rng.normal(size=(40, 6)).astype(np.float32)
  ctx = _ctx(logits, emb)
  acq = ACQUISITIONS.get("badge")()
  first = acq.select(ctx, 8, jax.random.PRNGKey(5))
  np.testing.assert_array_equal(first, acq.select(ctx, 8, jax.random.PRNGKey(5)))
  others = {tuple(acq.select(ctx, 8, jax.random.PRNGKey(s))) for s in range(6)}
  assert len(others) > 1


def test_all_zero_distances_still_give_distinct_points():
  """Every g = 0 (all D² = 0, the authors' code divides by zero): the draw is uniform over the
  points not yet taken, so the selection is still `budget` distinct points."""
  a = jnp.zeros((6, 3))
  h = jnp.ones((6, 2))
  sels = {tuple(badge_lib.kmeanspp_seed(a, h, 4, jax.random.PRNGKey(s))) for s in range(5)}
  assert all(len(set(s)) == 4 for s in sels) and len(sels) > 1
  with pytest.raises(ALError, match="budget"):
    badge_lib.kmeanspp_seed(a, h, 7, jax.random.PRNGKey(0))


def test_subset_candidates_and_labeled_points_are_respected_without_recompiling():
  rng = np.random.default_rng(2)
  n = 120
  ctx = _ctx(rng.normal(size=(n, 3)), rng.normal(size=(n, 5)))
  pool = Pool(np.zeros(n, np.int32), np.arange(10))
  acq = ACQUISITIONS.get("badge")()
  out = acquire(acq, ctx.state, ctx.x_all, pool, 6, jax.random.PRNGKey(0), _PREP,
                chunk_size=16, subset=30)
  assert len(out.candidates) == 30
  assert np.isin(out.indices, out.candidates).all()
  assert not np.isin(out.indices, pool.labeled).any()
  # Two cycles without a subset: 110 then 104 candidates pad to the same 112 rows, so the
  # seeding step is not compiled again.
  out = acquire(acq, ctx.state, ctx.x_all, pool, 6, jax.random.PRNGKey(1), _PREP, chunk_size=16)
  compiled = badge_lib._seed_step._cache_size()
  acquire(acq, ctx.state, ctx.x_all, pool.label(out.indices), 6, jax.random.PRNGKey(2), _PREP,
          chunk_size=16)
  assert badge_lib._seed_step._cache_size() == compiled


def test_coreset_selector_uses_labeled_centres_and_the_embedding():
  """Core-set (Sener & Savarese 2018, Alg. 1) on the same fake classifier: the labeled points
  are the first centres and distances are between penultimate embeddings. Point 1 duplicates
  the labeled point 0 (distance 0) but is farthest from it in logit space; point 2 is farthest
  in the embedding, then point 3 (3 from point 0, √34 from point 2)."""
  emb = np.array([[0, 0], [0, 0], [5, 0], [0, 3]], np.float32)
  logits = np.array([[0, 0, 0], [10, 0, 0], [0, 0, 0], [0, 0, 0.1]], np.float32)
  ctx = _ctx(logits, emb, candidates=[1, 2, 3], labeled=[0])
  picks = ACQUISITIONS.get("coreset")().select(ctx, 2, jax.random.PRNGKey(0))
  assert list(picks) == [2, 3]
