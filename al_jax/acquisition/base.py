"""The acquisition contract, chunked scoring and top-k selection.

Two kinds of acquisition function, both registered in `ACQUISITIONS`:

* score-based: `score(state, x, rng) -> [n] float`, higher = query first. `x` is
  a preprocessed float batch; `state` a `ModelState`. It must be pure and
  shape-polymorphic in nothing: the harness calls it on fixed-size padded chunks
  under one jit, so the pool shrinking never triggers a recompile.
* batch-mode: `select(ctx, budget, rng) -> indices` for selectors that look at the
  batch as a whole (core-set, CRC groups). `ctx` is a `SelectContext`.

`acquire` is the one entry point the loop (and the conformance tests) use; it returns a
`Selection`.
"""

import dataclasses
import functools
import time
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import ALError
from al_jax import parallel
from al_jax.data.augment import Preprocess
from al_jax.data.pool import Pool
from al_jax.registry import Registry
from al_jax.state import ModelState

ACQUISITIONS: Registry = Registry("acquisition")


class Acquisition:
  """Base class. Subclasses set `kind` and implement `score` or `select`.

  Attributes:
    kind: "score" or "select".
    needs_previous: True if scoring reads `state.prev_variables` (TOD's COD).
    requires: side models the acquisition reads from `ModelState.aux` (e.g. ("loss_net",));
      a pairing is checked against the objective's `provides` before any work
      (`al_jax.methods.check_pairing`).
    stochastic_forward: True if scoring samples dropout masks (MC-dropout BALD); the model
      must then have dropout (or, for noisy_mlp, Gaussian noise).
  """
  name = "base"
  kind = "score"
  needs_previous = False
  requires: Tuple[str, ...] = ()
  stochastic_forward = False

  def __init__(self, **kwargs):
    if kwargs:
      raise TypeError(f"acquisition {self.name!r} got unknown settings: {sorted(kwargs)}")

  def score(self, state: ModelState, x: jnp.ndarray, rng: jax.Array) -> jnp.ndarray:
    raise TypeError(f"acquisition {self.name!r} is batch-mode: use select()")

  def select(self, ctx: "SelectContext", budget: int, rng: jax.Array) -> np.ndarray:
    raise TypeError(f"acquisition {self.name!r} is score-based: use score()")

  def initial_pool(self, ctx: "SelectContext", size: int) -> Optional[np.ndarray]:
    """Indices of the initial labeled set when the method defines its own (PT4AL), else None
    (the harness's random pool, shared by every method of a seed). `ctx.state` is None."""
    del ctx, size
    return None


@dataclasses.dataclass
class SelectContext:
  """What a batch-mode selector may use (never the labels of unlabeled points).

  Attributes:
    state: the trained model.
    x_all: device array uint8 [N,H,W,C], the whole training set.
    labeled: labeled indices.
    candidates: unlabeled indices eligible for selection (a random subset if --subset).
    prep: preprocessing for deterministic (eval) views.
    chunk_size: fixed chunk size for batched computations.
    cycle: the AL cycle whose model selects (0 outside the loop).
    run_rng: a key that is the same in every cycle of a run, for side models fitted
      once per run (PT4AL's pretext model); None outside the loop.
  """
  state: ModelState
  x_all: Any
  labeled: np.ndarray
  candidates: np.ndarray
  prep: Preprocess
  chunk_size: int
  dp: Any = None
  cycle: int = 0
  run_rng: Optional[Any] = None
  # What the selector measured while choosing (JSON-serialisable scalars or lists), written
  # to the cycle's results row as "selection" (e.g. CRC's kernel rank: Proposition 2's
  # premise).
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def map_chunks(self, fn: Callable, idx: np.ndarray, rng: Optional[jax.Array] = None):
    """Applies jitted `fn(state, x_preprocessed, rng) -> pytree` over `idx` in padded chunks."""
    return map_chunks(fn, self.state, self.x_all, idx, self.prep, self.chunk_size, rng, self.dp)

  def embeddings(self, idx: np.ndarray) -> np.ndarray:
    """Penultimate features [len(idx), D] (inference mode)."""
    return self.map_chunks(_embed, idx)


@dataclasses.dataclass(frozen=True)
class Selection:
  """One cycle's query: what was chosen, from what, and how long it took.

  Attributes:
    indices: int64 [budget] pool indices in selection order.
    candidates: the unlabeled indices that were eligible (a random subset under `al.subset`).
    scores: per-candidate scores aligned with `candidates`, or None for batch-mode selectors.
    score_seconds: time spent scoring candidates (0 for batch-mode selectors).
    select_seconds: time spent choosing among them.
    info: what a batch-mode selector measured while choosing (`SelectContext.info`).
  """
  indices: np.ndarray
  candidates: np.ndarray
  scores: Optional[np.ndarray] = None
  score_seconds: float = 0.0
  select_seconds: float = 0.0
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)


def _embed(state, x, rng):
  del rng
  return state(x)[1]["embedding"]


def _chunk_body(fn, prep, state, x_all, idx, rng):
  return fn(state, prep.eval(x_all[idx]), rng)


_chunk_call = jax.jit(_chunk_body, static_argnames=("fn", "prep"))


def map_chunks(fn: Callable, state: ModelState, x_all, idx: np.ndarray, prep: Preprocess,
               chunk_size: int, rng: Optional[jax.Array] = None, dp=None,
               progress: Optional[Callable[[int, int], None]] = None):
  """Runs `fn` on fixed-size chunks of `x_all[idx]` (last chunk padded), concatenates on host.

  One compilation per (fn, chunk_size) for the whole run. Chunk k gets the key
  `fold_in(rng, k)`, so results are deterministic for a key. With `dp` (an
  `al_jax.parallel.DataParallel`) each chunk is sharded over its devices.
  Chunks are dispatched asynchronously and fetched to the host once at the end;
  `progress(done, total)` is called as each chunk's result arrives there.
  """
  idx = np.asarray(idx, np.int64)
  n = len(idx)
  if rng is None:
    rng = jax.random.PRNGKey(0)
  outs = []
  for k, start in enumerate(range(0, max(n, 1), chunk_size)):
    chunk = idx[start:start + chunk_size]
    pad = chunk_size - len(chunk)
    # Padding repeats the chunk's own indices cyclically; their outputs are dropped below. (A
    # function that reads batch statistics, VAAL's train-mode VAE, then sees those of the real
    # points — exactly when their count divides the chunk size — as a smaller last batch.)
    padded = np.resize(chunk, chunk_size) if len(chunk) else np.zeros(chunk_size, np.int64)
    padded = padded.astype(np.int32)
    padded = dp.shard(padded) if dp is not None else jnp.asarray(padded)
    outs.append((len(chunk), _chunk_call(fn, prep, state, x_all, padded,
                                         jax.random.fold_in(rng, k))))
  host = []
  for m, o in outs:
    host.append((m, parallel.fetch(o)))  # gathered from every process's devices
    if progress is not None:
      progress(len(host), len(outs))
  return jax.tree_util.tree_map(lambda *a: np.concatenate(a, 0),
                                *[jax.tree_util.tree_map(lambda a, m=m: np.asarray(a)[:m], o)
                                  for m, o in host])


def top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
  """The k highest scores; ties broken by the lower index, so selection is deterministic."""
  scores = np.asarray(scores, np.float64)
  if not np.all(np.isfinite(scores)):
    raise ALError(f"acquisition produced {np.sum(~np.isfinite(scores))} non-finite scores")
  order = np.lexsort((candidates, -scores))
  return candidates[order[:k]]


def acquire(acq: Acquisition, state: ModelState, x_all, pool: Pool, budget: int,
            rng: jax.Array, prep: Preprocess, chunk_size: int = 256,
            subset: int = 0, dp=None, cycle: int = 0,
            run_rng: Optional[jax.Array] = None,
            progress: Optional[Callable[[int, int], None]] = None) -> Selection:
  """Selects `budget` unlabeled indices.

  Args:
    acq: the acquisition function.
    state: trained model (with `prev_variables` set if `acq.needs_previous`).
    x_all: device array of all training images (uint8).
    pool: the current pool.
    budget: how many points to select.
    rng: acquisition key (already folded with the cycle).
    prep: preprocessing.
    chunk_size: scoring chunk size.
    subset: if > 0, score only a random subset of this many unlabeled points
      (LL4AL/TOD/LPLgrad's random subset R).
    dp: optional `al_jax.parallel.DataParallel` to shard scoring chunks.
    cycle, run_rng: passed to batch-mode selectors (see `SelectContext`).
    progress: `progress(done, total)` after each scored chunk (score-based functions).

  Returns:
    a `Selection` (scores None for batch-mode selectors).
  """
  unlabeled = pool.unlabeled
  if budget <= 0:
    raise ALError(f"budget must be positive, got {budget}")
  if budget > len(unlabeled):
    raise ALError(f"budget {budget} is larger than the {len(unlabeled)} unlabeled points left")
  k_subset, k_score = jax.random.split(rng)
  candidates = unlabeled
  if 0 < subset < len(unlabeled):
    if subset < budget:
      raise ALError(f"subset {subset} is smaller than the budget {budget}")
    seed = int(jax.random.randint(k_subset, (), 0, 2**31 - 1))
    candidates = np.sort(np.random.default_rng(seed).choice(unlabeled, subset, replace=False))
  if acq.needs_previous and state.prev_variables is None:
    raise ALError(f"acquisition {acq.name!r} needs the previous cycle's model")
  t0 = time.perf_counter()
  if acq.kind == "select":
    ctx = SelectContext(state=state, x_all=x_all, labeled=pool.labeled, candidates=candidates,
                        prep=prep, chunk_size=chunk_size, dp=dp, cycle=cycle,
                        run_rng=run_rng)
    idx = np.asarray(acq.select(ctx, budget, k_score), np.int64)
    _check_selection(idx, candidates, budget, acq.name)
    return Selection(indices=idx, candidates=candidates, scores=None, score_seconds=0.0,
                     select_seconds=time.perf_counter() - t0, info=dict(ctx.info))
  scores = map_chunks(acq.score, state, x_all, candidates, prep, chunk_size, k_score, dp,
                      progress)
  t1 = time.perf_counter()
  idx = top_k(scores, candidates, budget)
  return Selection(indices=idx, candidates=candidates, scores=scores,
                   score_seconds=t1 - t0, select_seconds=time.perf_counter() - t1)


def _check_selection(idx, candidates, budget, name):
  if len(idx) != budget or len(np.unique(idx)) != budget or not np.isin(idx, candidates).all():
    raise ALError(f"acquisition {name!r} returned an invalid selection "
                  f"({len(idx)} indices, {len(np.unique(idx))} distinct, budget {budget})")
