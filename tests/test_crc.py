"""CRC acquisition: Proposition 2 on a repeated pool, group scoring paths, pseudo-AL groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import ALError
from al_jax.acquisition import SelectContext
from al_jax.acquisition import crc as crc_lib
from al_jax.data import DATASETS, Preprocess
from al_jax.models import get_model
from al_jax.state import ModelState

_MODEL = get_model("small_cnn", 10, widths=(8, 16), hidden=32)
_APPLY = lambda v, x, **kw: _MODEL.apply(v, x, train=False)  # stable: one jit cache
_PREP = Preprocess(mean=(0.3,), std=(0.3,))
_DIGITS = DATASETS.get("digits")()


def _state(seed=0):
  variables = _MODEL.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8, 8, 1)), train=False)
  return ModelState(apply_fn=_APPLY, variables=variables)


def _repeated_pool(n_distinct=150):
  """Every image twice: index i and i + n_distinct are the same image."""
  x = _DIGITS.x_train[:n_distinct]
  return jnp.asarray(np.concatenate([x, x])), n_distinct


def _ctx(x_all, labeled, candidates, seed=0, chunk=64):
  return SelectContext(state=_state(seed), x_all=x_all, labeled=np.asarray(labeled),
                       candidates=np.asarray(candidates), prep=_PREP, chunk_size=chunk)


@pytest.mark.parametrize("layers,method", [("last", "jacobian"), ("all", "jacobian"),
                                           ("all", "structured")])
def test_proposition_2_never_selects_duplicates(layers, method):
  """Repeated pool (CRC §3.2): no selected image duplicates a labeled or another selected one."""
  x_all, n = _repeated_pool()
  labeled = np.arange(0, 16, 2)                      # 8 distinct images
  candidates = np.setdiff1d(np.arange(2 * n), labeled)  # holds their 8 twins, and 142 pairs
  acq = crc_lib.CRC(group_size=4, layers=layers, method=method)
  for seed in range(3):
    ctx = _ctx(x_all, labeled, candidates, seed=seed)
    # Scores of constructed groups: degenerate ones score 0, all others > 0.
    twin_of_labeled = np.array([labeled[0] + n, 101, 103, 105])
    inner_pair = np.array([101, 101 + n, 107, 109])
    clean = np.array([101, 103, 105, 107])
    scores = acq.score_groups(ctx, np.stack([twin_of_labeled, inner_pair, clean]))
    assert scores[0] == 0 and scores[1] == 0 and scores[2] > 0
    idx = acq.select(ctx, 8, jax.random.PRNGKey(seed))
    base = idx % n
    assert len(np.unique(base)) == len(idx), "selected an image twice"
    assert not np.isin(base, labeled % n).any(), "selected a copy of a labeled image"


def test_literal_lambda_plus_ignores_duplicates_rank_aware_does_not():
  """L = ∅, G = 2: λ⁺([[a, a], [a, a]]) = 2a beats λ_min([[a, b], [b, a]]) = a − b."""
  a, b = 2.0, 1.0
  dup = np.array([[a, a], [a, a]])
  distinct = np.array([[a, b], [b, a]])
  spectra = [crc_lib.ntk.spectrum(np.stack([dup, distinct]))]
  literal = crc_lib.CRC(rank_aware=False)._scores(spectra)
  aware = crc_lib.CRC()._scores(spectra)
  np.testing.assert_allclose(literal, [2 * a, a - b])
  np.testing.assert_allclose(aware, [0.0, a - b])


def test_scoring_paths_agree():
  """Cached vs recomputed labeled Jacobians, chunking, ntvp products, no labeled set."""
  x_all = jnp.asarray(_DIGITS.x_train[:120])
  labeled, candidates = np.arange(10), np.arange(10, 120)
  groups = crc_lib.random_groups(candidates, 5, jax.random.PRNGKey(1))[:6]
  ref = crc_lib.CRC(group_size=5).score_groups(_ctx(x_all, labeled, candidates), groups)
  # A random-init net can leave a set's last-layer kernel exactly rank-deficient (few active
  # ReLUs): that group scores 0 (rank-aware), the others their λ⁺_min.
  assert ref.shape == (6,) and np.sum(ref > 0) >= 4
  # chunk 7 → 1 group per chunk, 2 labeled chunks (one padded); labeled Jacobians recomputed.
  small = crc_lib.CRC(group_size=5, max_jacobian_mb=0).score_groups(
      _ctx(x_all, labeled, candidates, chunk=7), groups)
  np.testing.assert_allclose(small, ref, rtol=1e-4)  # other batch shapes: float32 forward
  # Products in float32 (tolerance n·eps32·λ_max): same scores to float32 accuracy.
  prod = crc_lib.CRC(group_size=5, method="ntvp").score_groups(
      _ctx(x_all, labeled, candidates), groups)
  # Products in float32: eigenvalues below n·eps32·λ_max (here ~8e-4) are not resolved, so
  # those groups lose a rank and score 0; resolved ones match the float64 path.
  resolved = prod > 0
  assert resolved.any() and np.argmax(prod) == np.argmax(ref)
  np.testing.assert_allclose(prod[resolved], ref[resolved], rtol=2e-2)
  none = crc_lib.CRC(group_size=5).score_groups(_ctx(x_all, labeled[:0], candidates), groups)
  assert np.sum(none > 0) >= 4 and not np.allclose(none, ref)


def test_group_size_rules_and_selection_shape():
  assert crc_lib.auto_group_size(100) == 10 and crc_lib.auto_group_size(50) == 5
  assert crc_lib.auto_group_size(20) == 2 and crc_lib.auto_group_size(7) == 7
  assert crc_lib.auto_group_size(10) == 2 and crc_lib.auto_group_size(1) == 1
  with pytest.raises(ALError, match="does not divide"):
    crc_lib.CRC(group_size=3).group_size_for(10)
  x_all = jnp.asarray(_DIGITS.x_train[:80])
  ctx = _ctx(x_all, np.arange(6), np.arange(6, 80))
  idx = crc_lib.CRC(group_size=3).select(ctx, 9, jax.random.PRNGKey(0))
  assert len(idx) == 9 and len(np.unique(idx)) == 9 and np.isin(idx, ctx.candidates).all()
  # Whole groups: the selection is 3 of the key's random groups.
  groups = crc_lib.random_groups(ctx.candidates, 3, jax.random.PRNGKey(0))
  picked = {tuple(g) for g in groups if np.isin(g, idx).all()}
  assert len(picked) == 3


def test_selection_is_the_q_over_g_highest_scoring_groups():
  """Eq. 9's outer max over sampled groups: the Q/G groups of largest λ⁺_min, nothing else."""
  x_all = jnp.asarray(_DIGITS.x_train[:120])
  ctx = _ctx(x_all, np.arange(10), np.arange(10, 120))
  acq = crc_lib.CRC(group_size=5)
  key = jax.random.PRNGKey(3)
  idx = acq.select(ctx, 15, key)
  groups = crc_lib.random_groups(ctx.candidates, 5, key)
  scores = acq.score_groups(ctx, groups)
  top = np.argsort(-scores, kind="stable")[:3]
  assert len(np.unique(scores)) == len(scores)  # no ties: the top 3 are well defined
  np.testing.assert_array_equal(np.sort(idx), np.sort(groups[top].reshape(-1)))
  # Every selected group outscores every group left out.
  picked = np.array([np.isin(g, idx).all() for g in groups])
  assert scores[picked].min() > scores[~picked].max()


def test_pseudo_al_groups_hold_r_per_class():
  y = _DIGITS.y_train
  candidates = np.arange(200, 1000)
  groups = crc_lib.pseudo_al_groups(candidates, y[candidates], 2, 10, jax.random.PRNGKey(0))
  assert groups.shape[1] == 20 and len(np.unique(groups)) == groups.size
  for g in groups:
    np.testing.assert_array_equal(np.bincount(y[g], minlength=10), np.full(10, 2))
  ctx = _ctx(jnp.asarray(_DIGITS.x_train), np.arange(20), candidates)
  pick = crc_lib.select_pseudo_al(crc_lib.CRC(), ctx, y[candidates], 1, 10,
                                  jax.random.PRNGKey(1))
  np.testing.assert_array_equal(np.bincount(y[pick], minlength=10), np.ones(10))
  with pytest.raises(ALError, match="one label per candidate"):
    crc_lib.pseudo_al_groups(candidates, y[:5], 2, 10, jax.random.PRNGKey(0))


def test_structured_all_layer_scores_match_jacobian():
  """The structured full-layer kernel (float32) scores groups like the float64 Jacobian path;
  chunking (several groups per chunk, a padded last chunk) and L = ∅ included."""
  x_all = jnp.asarray(_DIGITS.x_train[:120])
  labeled, candidates = np.arange(10), np.arange(10, 120)
  groups = crc_lib.random_groups(candidates, 5, jax.random.PRNGKey(1))[:7]
  for lab in (labeled, labeled[:0]):
    ctx = _ctx(x_all, lab, candidates, chunk=15)  # 3 groups per chunk: 3 + 3 + 1 (padded)
    ref = crc_lib.CRC(group_size=5, layers="all").score_groups(ctx, groups)
    got = crc_lib.CRC(group_size=5, layers="all", method="structured").score_groups(ctx, groups)
    assert np.all(ref > 0) and np.all(got > 0)
    np.testing.assert_allclose(got, ref, rtol=1e-3)
  with pytest.raises(ALError, match="layers='all'"):
    crc_lib.CRC(method="structured")


def test_selection_records_the_kernel_rank_for_proposition_2s_premise():
  """The query records the best kernel rank among its groups and L + G: full below the last
  layer's rank (hidden 32 + bias = 33 here), short of L + G above it (a crafted
  rank-deficient kernel: 40 labeled + G = 4 > 33)."""
  x_all, n = _repeated_pool()
  acq = crc_lib.CRC(group_size=4, layers="last")
  small = _ctx(x_all, np.arange(8), np.arange(8, n))
  acq.select(small, 4, jax.random.PRNGKey(0))
  assert small.info == {"kernel_size": 12, "kernel_rank": 12}
  big = _ctx(x_all, np.arange(40), np.arange(40, n))
  acq.select(big, 4, jax.random.PRNGKey(0))
  assert big.info["kernel_size"] == 44 and big.info["kernel_rank"] <= 33
  # The loop writes it into the cycle's results row (Selection.info → row["selection"]).
  from al_jax.acquisition.base import acquire
  from al_jax.data.pool import Pool
  pool = Pool(np.zeros(2 * n, np.int64), np.arange(8))
  sel = acquire(acq, _state(), x_all, pool, 4, jax.random.PRNGKey(1), _PREP, 64)
  assert sel.info == {"kernel_size": 12, "kernel_rank": 12}
