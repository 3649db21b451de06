"""Core-set selection by k-center greedy (Sener & Savarese 2018, Alg. 1).

Each step picks the candidate farthest (Euclidean, on penultimate features) from its nearest
center, the centers being the labeled points and the points picked so far. Memory is
O(pool × chunk): the distances to the labeled set are reduced chunk by chunk into a running
min-distance vector, and each greedy step only computes the distances to the one new center.
No pool × pool (or pool × labeled) matrix is ever formed.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from al_jax.acquisition.base import ACQUISITIONS, Acquisition


def _sq_dists(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Squared Euclidean distances [len(a), len(b)], clamped at 0 against round-off."""
  d = (jnp.sum(a * a, -1)[:, None] - 2.0 * (a @ b.T) + jnp.sum(b * b, -1)[None, :])
  return jnp.maximum(d, 0.0)


@jax.jit
def _update_min(min_d: jnp.ndarray, cand: jnp.ndarray, centers: jnp.ndarray) -> jnp.ndarray:
  """min_d ← min(min_d, distances of every candidate to a chunk of centers) [N]."""
  return jnp.minimum(min_d, jnp.min(_sq_dists(cand, centers), axis=1))


@functools.partial(jax.jit, static_argnames="budget")
def _greedy(min_d: jnp.ndarray, cand: jnp.ndarray, valid: jnp.ndarray, budget: int):
  """`budget` k-center greedy steps; returns the picked rows of `cand` in order."""
  def step(k, carry):
    min_d, valid, picked = carry
    i = jnp.argmax(jnp.where(valid, min_d, -jnp.inf))  # ties: the lowest row
    d_new = _sq_dists(cand, cand[i][None])[:, 0]
    return (jnp.minimum(min_d, d_new), valid.at[i].set(False), picked.at[k].set(i))
  init = (min_d, valid, jnp.zeros((budget,), jnp.int32))
  return jax.lax.fori_loop(0, budget, step, init)[2]


def _pad_rows(a: np.ndarray, multiple: int) -> np.ndarray:
  n = max(len(a), 1)
  rows = -(-n // multiple) * multiple
  out = np.zeros((rows, a.shape[1]), np.float32)
  out[:len(a)] = a
  return out


def k_center_greedy(cand: np.ndarray, centers: np.ndarray, budget: int,
                    chunk: int = 256) -> np.ndarray:
  """Indices (rows of `cand`, in selection order) of a k-center greedy cover.

  Args:
    cand: candidate features [N, D].
    centers: features of the already-labeled points [M, D] (may be empty: the first pick is
      then the first candidate).
    budget: number of picks (≤ N).
    chunk: centers per distance block; peak memory is O(N × chunk).
  """
  n = len(cand)
  # Rows padded to a multiple of `chunk` so shapes repeat across cycles (few compiles);
  # padded candidates are never valid, padded centers repeat a real center.
  cand_p = jnp.asarray(_pad_rows(np.asarray(cand, np.float32), chunk))
  valid = jnp.arange(cand_p.shape[0]) < n
  min_d = jnp.full((cand_p.shape[0],), jnp.inf, jnp.float32)
  centers = np.asarray(centers, np.float32)
  for start in range(0, len(centers), chunk):
    block = centers[start:start + chunk]
    block = np.concatenate([block, np.repeat(block[:1], chunk - len(block), 0)])
    min_d = _update_min(min_d, cand_p, jnp.asarray(block))
  return np.asarray(_greedy(min_d, cand_p, valid, int(budget)), np.int64)


@ACQUISITIONS.register("coreset")
class CoreSet(Acquisition):
  """k-center greedy on penultimate features (`features["embedding"]`, inference mode)."""
  name = "coreset"
  kind = "select"

  def select(self, ctx, budget, rng):
    del rng  # deterministic given the features
    cand = ctx.embeddings(ctx.candidates)
    labeled = ctx.embeddings(ctx.labeled) if len(ctx.labeled) else np.zeros((0, cand.shape[1]))
    rows = k_center_greedy(cand, labeled, budget, ctx.chunk_size)
    return ctx.candidates[rows]
