"""CRC: convergence rate control (Kong et al., "Relieving the Plateau", Alg. 1).

Random groups of G unlabeled candidates are scored by λ⁺_min of the traced empirical NTK
over labeled ∪ group (CRC Eq. 9, §3.1); the Q/G best groups are labeled. Larger λ⁺_min
means faster convergence of gradient descent on the enlarged labeled set (Theorem 1).

Computation (native Jacobian path): the Jacobians of the labeled set are computed once per
selection, so the labeled×labeled block K(L, L) is computed once per cycle; candidate
groups are processed k = chunk_size // G groups at a time: one Jacobian chunk [k·G, C, P],
its cross block K(L, chunk) and the k within-group blocks (vmapped over groups, float64),
then the k kernels [(L+G)×(L+G)] are eigen-solved in one batched float64 `eigvalsh`.

The pseudo-AL mode of §4.3.1 (groups of R images per class) needs the candidates' labels,
which acquisitions never see: it lives in `pseudo_al_groups` / `select_pseudo_al`, which a
diagnostic harness (experiments/crc_pseudo_al.py) calls with labels passed explicitly.
"""

import functools
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import ALError
from al_jax import ntk
from al_jax import ntk_structured as ns
from al_jax.acquisition.base import ACQUISITIONS, Acquisition


def auto_group_size(budget: int) -> int:
  """G = Q/10 (CRC App. B.1, CIFAR) when that is a whole number ≥ 2, else the smallest
  divisor ≥ 2 of Q (Table 1: any G > 1 performs alike; G must divide Q)."""
  if budget % 10 == 0 and budget // 10 >= 2:
    return budget // 10
  return next(d for d in range(2, budget + 1) if budget % d == 0) if budget > 1 else 1


def random_groups(candidates: np.ndarray, group_size: int, rng: jax.Array) -> np.ndarray:
  """Alg. 1: partitions a random permutation of the candidates into ⌊U/G⌋ groups [n, G]."""
  perm = np.asarray(jax.random.permutation(rng, len(candidates)))
  n = len(candidates) // group_size
  return np.asarray(candidates)[perm[:n * group_size]].reshape(n, group_size)


def best_groups(groups: np.ndarray, scores: np.ndarray, num: int) -> np.ndarray:
  """The `num` highest-scoring groups, concatenated (ties: lower group position first)."""
  scores = np.asarray(scores, np.float64)
  if not np.all(np.isfinite(scores)):
    raise ALError(f"CRC produced {np.sum(~np.isfinite(scores))} non-finite group scores")
  order = np.lexsort((np.arange(len(scores)), -scores))
  return groups[order[:num]].reshape(-1)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _jacobian_at(f, prep, p, rest, x_all, idx):
  """Jacobians [len(idx), C, P] of the preprocessed (eval view) images x_all[idx]."""
  return ntk.flat_jacobian(f, p, prep.eval(x_all[idx]), rest)


@ACQUISITIONS.register("crc")
class CRC(Acquisition):
  """Convergence rate control (batch mode).

  Args:
    group_size: G; 0 picks `auto_group_size(Q)`. Must divide the budget Q.
    layers: "last" (CRC's default, §3.3 Table 2) or "all" layers for the eNTK.
    method: "jacobian" (Jacobian contraction in float64), "ntvp" (vjp/jvp products,
      memory-light, one group at a time: slow, for models whose Jacobians do not fit) or
      "structured" (all layers from per-layer factors, float32, bounded memory:
      `al_jax.ntk_structured`; needs layers="all").
    ntk_backend: "native" or "neural_tangents" (only where neural-tangents imports).
    max_jacobian_mb: the labeled set's Jacobians are kept on the device when they fit in
      this many MiB, else recomputed for every candidate chunk (bounded memory).
    rank_aware: score groups whose kernel falls short of the best attainable rank as 0
      (Prop. 2; see `_scores`); False gives the literal λ⁺_min of Alg. 1.
  """
  name = "crc"
  kind = "select"

  def __init__(self, group_size: int = 0, layers: str = "last", method: str = "jacobian",
               ntk_backend: str = "native", max_jacobian_mb: int = 2048,
               rank_aware: bool = True):
    super().__init__()
    ntk.check_options(method=method, backend=ntk_backend, layers=layers)
    if group_size < 0:
      raise ALError(f"CRC group_size must be >= 0 (0 = auto), got {group_size}")
    self.group_size = int(group_size)
    self.layers = layers
    self.method = method
    self.ntk_backend = ntk_backend
    self.max_jacobian_bytes = int(max_jacobian_mb) * 2**20
    self.rank_aware = bool(rank_aware)

  def group_size_for(self, budget: int) -> int:
    g = self.group_size or auto_group_size(budget)
    if budget % g:
      raise ALError(f"CRC group size {g} does not divide the budget {budget} (Alg. 1 "
                    "selects Q/G whole groups)")
    return g

  def select(self, ctx, budget, rng):
    g = self.group_size_for(budget)
    groups = random_groups(ctx.candidates, g, rng)
    scores, ranks = self._score_and_rank(ctx, groups)
    # Proposition 2's premise: a non-degenerate choice has a full-rank kernel over L ∪ group.
    # Recorded per query so a check of the proposition can tell whether it applies.
    ctx.info.update(kernel_size=int(len(ctx.labeled) + g), kernel_rank=int(ranks.max()))
    return best_groups(groups, scores, budget // g)

  # --- scoring ---------------------------------------------------------------------------
  def score_groups(self, ctx, groups: np.ndarray) -> np.ndarray:
    """λ⁺_min of K̃(L ∪ group) for every group [n_groups, G] → [n_groups] float64."""
    return self._score_and_rank(ctx, groups)[0]

  def _score_and_rank(self, ctx, groups: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(scores, numerical rank of K̃(L ∪ group)) for every group."""
    groups = np.asarray(groups, np.int64)
    if self.method == "structured":
      spectra = self._score_structured(ctx, groups)
    elif self.method == "jacobian" and self.ntk_backend == "native":
      spectra = self._score_jacobian(ctx, groups)
    else:
      spectra = self._score_products(ctx, groups)
    return self._scores(spectra), np.concatenate([s[1] for s in spectra])

  def _score_structured(self, ctx, groups):
    """Per-layer factors (`al_jax.ntk_structured`): the labeled set's factors and K(L, L)
    once per selection; candidates k = chunk_size // G groups at a time, K(L, chunk) and
    the k within-group blocks (vmapped over groups), float32 kernels."""
    view = lambda idx: ctx.prep.eval(ctx.x_all[jnp.asarray(idx, jnp.int32)])
    labeled = np.asarray(ctx.labeled, np.int64)
    n_l, g = len(labeled), groups.shape[1]
    f_l = ns.features(ctx.state, view(labeled))[0] if n_l else None
    k_ll = (np.asarray(ns.kernel(f_l))[:n_l, :n_l] if n_l
            else np.zeros((0, 0), np.float32))
    k = max(1, int(ctx.chunk_size) // g)
    spectra = []
    for block, nvalid in _group_chunks(groups, k):
      f_g = ns.trim(*ns.features(ctx.state, view(block.reshape(-1))))
      k_gg = np.asarray(ns.group_kernel(f_g, g))                      # [k, G, G]
      k_lg = (np.asarray(ns.kernel(f_l, f_g))[:n_l] if n_l
              else np.zeros((0, k * g), np.float32))                  # [L, k·G]
      full = _assemble(k_ll, k_lg.reshape(n_l, k, g).transpose(1, 0, 2), k_gg)
      spectra.append(ntk.spectrum(full[:nvalid]))
    return spectra

  def _score_jacobian(self, ctx, groups):
    f = ntk.ClassifierFn(ctx.state.apply_fn, self.layers)
    p, rest = f.split(ctx.state.variables)
    cs = max(int(ctx.chunk_size), 1)
    jac = lambda idx: _jacobian_at(f, ctx.prep, p, rest, ctx.x_all,
                                   jnp.asarray(idx, jnp.int32))
    labeled = np.asarray(ctx.labeled, np.int64)
    n_l, g = len(labeled), groups.shape[1]
    lab_chunks = [_pad_idx(labeled[s:s + cs], cs) for s in range(0, n_l, cs)]
    lab_valid = [min(cs, n_l - s) for s in range(0, n_l, cs)]
    cached = None
    if lab_chunks:
      first = jac(lab_chunks[0])
      if first.nbytes * len(lab_chunks) <= self.max_jacobian_bytes:
        cached = [first] + [jac(c) for c in lab_chunks[1:]]
    lab_jacs = (lambda: cached) if cached is not None else (
        lambda: (jac(c) for c in lab_chunks))
    # K(L, L): once per selection (= once per cycle).
    k_ll = np.zeros((n_l, n_l))
    for a, (ja, na) in enumerate(zip(lab_jacs(), lab_valid)):
      k_ll[a * cs:a * cs + na] = np.concatenate(
          [np.asarray(ntk.gram(ja, jb))[:na, :nb] for jb, nb in zip(lab_jacs(), lab_valid)], 1)
    # Candidate groups, k at a time (fixed shapes: one compile per chunk size).
    k = max(1, cs // g)
    spectra = []
    for block, nvalid in _group_chunks(groups, k):
      jg = jac(block.reshape(-1))
      k_gg = np.asarray(ntk.group_gram(jg, g))                       # [k, G, G]
      if n_l:
        k_lg = np.concatenate([np.asarray(ntk.gram(jl, jg))[:nl]
                               for jl, nl in zip(lab_jacs(), lab_valid)], 0)  # [L, k·G]
      else:
        k_lg = np.zeros((0, k * g))
      full = _assemble(k_ll, k_lg.reshape(n_l, k, g).transpose(1, 0, 2), k_gg)
      spectra.append(ntk.spectrum(full[:nvalid]))
    return spectra

  def _score_products(self, ctx, groups):
    """ntvp / neural-tangents: one group at a time, K(L, L) still computed once."""
    f = ntk.ClassifierFn(ctx.state.apply_fn, self.layers)
    p, rest = f.split(ctx.state.variables)
    view = lambda idx: ctx.prep.eval(ctx.x_all[jnp.asarray(idx, jnp.int32)])
    kern = functools.partial(ntk.ntk, f, p, rest=rest, method=self.method,
                             backend=self.ntk_backend, chunk_size=ctx.chunk_size)
    labeled = np.asarray(ctx.labeled, np.int64)
    x_l = view(labeled) if len(labeled) else None
    k_ll = kern(x_l) if x_l is not None else np.zeros((0, 0), np.float32)
    spectra = []
    for grp in groups:
      x_g = view(grp)
      k_gg = kern(x_g)
      k_lg = kern(x_l, x_g) if x_l is not None else np.zeros((0, len(grp)), k_gg.dtype)
      full = _assemble(k_ll.astype(k_gg.dtype), k_lg[None], k_gg[None])
      spectra.append(ntk.spectrum(full))
    return spectra

  def _scores(self, spectra) -> np.ndarray:
    """Group scores from their spectra [(w [k, n] ascending, rank [k]), ...].

    rank_aware (default): r* = the largest numerical rank among this selection's groups;
    a group of rank r* scores its λ⁺_min (its r*-th largest eigenvalue), a group of lower
    rank scores 0 — duplicates of labeled points or of each other lose a rank (CRC
    Prop. 2), whereas the plain λ⁺_min would ignore the zero eigenvalue they add and can
    prefer them (e.g. L = ∅, G = 2: λ⁺([[a, a], [a, a]]) = 2a > λ_min of any distinct pair
    with the same diagonal). Eigenvalues that are zero for every group (a last-layer kernel's
    rank ≤ feature width + 1) are still ignored, as §3.1 prescribes.
    """
    w = np.concatenate([s[0] for s in spectra])
    rank = np.concatenate([s[1] for s in spectra])
    n = w.shape[1]
    if not self.rank_aware:
      idx = np.clip(n - rank, 0, n - 1)
      return np.where(rank > 0, w[np.arange(len(w)), idx], 0.0)
    r_star = int(rank.max())
    if r_star == 0:
      return np.zeros(len(w))
    return np.where(rank >= r_star, w[:, n - r_star], 0.0)


def _group_chunks(groups: np.ndarray, k: int):
  """(k groups, padded by repeating the first; number of real ones) — fixed chunk shapes."""
  for s in range(0, len(groups), k):
    block = groups[s:s + k]
    yield np.concatenate([block, np.repeat(block[:1], k - len(block), 0)]), len(block)


def _pad_idx(idx: np.ndarray, size: int) -> np.ndarray:
  return np.concatenate([idx, np.full(size - len(idx), idx[0], idx.dtype)])


def _assemble(k_ll: np.ndarray, k_lg: np.ndarray, k_gg: np.ndarray) -> np.ndarray:
  """Batch of kernels over L ∪ group: [[K_LL, K_LG], [K_GL, K_GG]] → [k, L+G, L+G]."""
  k, n_l, g = k_lg.shape
  out = np.empty((k, n_l + g, n_l + g), k_gg.dtype)
  out[:, :n_l, :n_l] = k_ll
  out[:, :n_l, n_l:] = k_lg
  out[:, n_l:, :n_l] = np.swapaxes(k_lg, 1, 2)
  out[:, n_l:, n_l:] = k_gg
  return out


# --- pseudo-AL (§4.3.1): a diagnostic path that is handed the candidates' labels ---------

def pseudo_al_groups(candidates: np.ndarray, labels: np.ndarray, per_class: int,
                     num_classes: int, rng: jax.Array) -> np.ndarray:
  """Groups of `per_class` candidates of every class (CRC §4.3.1, G = Q = R·C).

  Each class's candidates are shuffled and cut into runs of R; group i joins the i-th run
  of every class, so there are min_c ⌊n_c / R⌋ groups.

  Args:
    candidates: unlabeled indices.
    labels: the true labels of `candidates` (passed explicitly by a diagnostic harness;
      acquisitions never see them).
    per_class: R.
    num_classes: C.
    rng: key for the shuffles.
  """
  candidates, labels = np.asarray(candidates), np.asarray(labels)
  if labels.shape != candidates.shape:
    raise ALError(f"pseudo-AL needs one label per candidate ({len(candidates)}), "
                  f"got {labels.shape}")
  runs = []
  for c in range(num_classes):
    members = candidates[labels == c]
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(rng, c), len(members)))
    runs.append(members[perm])
  n = min(len(m) // per_class for m in runs)
  if n == 0:
    raise ALError(f"pseudo-AL needs {per_class} unlabeled images of every class")
  return np.stack([np.concatenate([m[i * per_class:(i + 1) * per_class] for m in runs])
                   for i in range(n)])


def select_pseudo_al(acq: CRC, ctx, labels: np.ndarray, per_class: int, num_classes: int,
                     rng: jax.Array) -> np.ndarray:
  """Pseudo-AL selection: the best class-balanced group of R·C candidates (Q/G = 1)."""
  groups = pseudo_al_groups(ctx.candidates, labels, per_class, num_classes, rng)
  return best_groups(groups, acq.score_groups(ctx, groups), 1)
