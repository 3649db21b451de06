"""BADGE: k-means++ seeding on hypothetical last-layer gradients (Ash et al. 2020).

BADGE (ICLR 2020, Algorithm 1) scores nothing: for every candidate x it takes the model's own
prediction ŷ = argmax p(x) as a hypothetical label and the gradient of the cross-entropy
ℓ(f(x), ŷ) with respect to the classifier layer's weights (Eq. 1),

    g_x = (p(x) − onehot(ŷ)) ⊗ h(x)      [C·D],  h(x) = features["embedding"] (the head's input),

whose norm is large for uncertain points and whose direction encodes the features, then picks
the batch by k-means++ seeding (Arthur & Vassilvitskii 2007) over {g_x}: each next centre is
drawn with probability ∝ its squared distance to the nearest centre chosen so far (D²
sampling). Only the weight gradient, no bias gradient, as the paper's Eq. 1 and the authors'
code (`get_grad_embedding`); the first centre is the largest-norm embedding and the labeled set
is not a centre, as in that code (BUILD_NOTES).

g_x is never formed. With a_x = p(x) − onehot(ŷ), <g_i, g_j> = <a_i, a_j>·<h_i, h_j>, so

    ‖g_i − g_c‖² = ‖a_i‖²‖h_i‖² + ‖a_c‖²‖h_c‖² − 2<a_i, a_c><h_i, h_c>,

and each seeding step updates the running min-distance vector from [n, C] and [n, D] arrays in
O(n·(C + D)) (the factorisation the authors' code adopted later, from Zhang et al.). Sign
conventions (a vs −a, as the authors' code stores it) leave every distance unchanged.
"""

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition
from al_jax.numerics import float_dtype


def gradient_factors(logits: jnp.ndarray, embedding: jnp.ndarray):
  """The two factors of the hypothetical-label gradient g = a ⊗ h (BADGE Eq. 1).

  Args:
    logits: [B, C] classifier outputs.
    embedding: [B, D] the classifier layer's input.

  Returns:
    (a, h): a = softmax(logits) − onehot(argmax) [B, C], h = embedding [B, D]; the gradient
    of the cross-entropy at ŷ with respect to the head's kernel [D, C] is outer(h, a).
  """
  dtype = float_dtype()
  p = jax.nn.softmax(logits.astype(dtype))
  y_hat = jnp.argmax(p, -1)  # ties: the lowest class, as numpy's argmax in the authors' code
  a = p - jax.nn.one_hot(y_hat, p.shape[-1], dtype=dtype)
  return a, embedding.astype(dtype)


def _factors(state, x, rng):
  del rng  # inference mode: deterministic
  logits, features = state(x)
  a, h = gradient_factors(logits, features["embedding"])
  return {"a": a, "h": h}


def sq_dists_to(a: jnp.ndarray, h: jnp.ndarray, sq_norms: jnp.ndarray, c) -> jnp.ndarray:
  """‖g_i − g_c‖² for every row i [n], from the factors (never the [n, C·D] embeddings).

  Clamped at 0: float round-off can make the distance of a point to itself slightly negative.
  """
  cross = (a @ a[c]) * (h @ h[c])
  return jnp.maximum(sq_norms + sq_norms[c] - 2.0 * cross, 0.0)


@jax.jit
def _first(a, h, valid):
  """Squared norms ‖g_i‖² = ‖a_i‖²‖h_i‖² and the first centre: the largest norm among valid
  rows (ties: the lowest row)."""
  sq_norms = jnp.sum(a * a, -1) * jnp.sum(h * h, -1)
  return sq_norms, jnp.argmax(jnp.where(valid, sq_norms, -jnp.inf))


@jax.jit
def _seed_step(a, h, sq_norms, min_d, avail, c, key):
  """Adds centre `c`, then draws the next one ∝ min squared distance among available rows.

  Returns (min_d, avail, next centre). D² sampling (k-means++, Arthur & Vassilvitskii 2007)
  by the Gumbel-max trick on log D²: exact in distribution, no cumulative sum. Rows already
  chosen (and padding) are unavailable, as the authors' redraw-until-new does. If every
  available row has D² = 0 (each coincides with a centre in gradient space) the seeding cost
  is the same whichever is taken: the draw is then uniform over the available rows.
  """
  min_d = jnp.minimum(min_d, sq_dists_to(a, h, sq_norms, c))
  avail = avail.at[c].set(False)
  w = jnp.where(avail, min_d, 0.0)
  logits = jnp.where(jnp.sum(w) > 0, jnp.log(w), jnp.where(avail, 0.0, -jnp.inf))
  return min_d, avail, jax.random.categorical(key, logits)


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
  out = np.zeros((rows, x.shape[1]), x.dtype)
  out[:len(x)] = x
  return out


def kmeanspp_seed(a: np.ndarray, h: np.ndarray, budget: int, rng: jax.Array,
                  multiple: int = 256) -> np.ndarray:
  """k-means++ seeding over g_i = a_i ⊗ h_i: `budget` distinct rows, in selection order.

  Args:
    a: [n, C] gradient factor p − onehot(ŷ).
    h: [n, D] embeddings.
    budget: number of centres (≤ n).
    rng: key; step k draws with `fold_in(rng, k)`, so a key gives one selection.
    multiple: rows are padded to a multiple of this, so a pool shrinking across cycles
      reuses the compiled step (padding is never available).
  """
  n = len(a)
  if not 0 < budget <= n:
    raise ALError(f"BADGE needs 0 < budget <= candidates, got budget {budget} for {n}")
  rows = -(-max(n, 1) // multiple) * multiple
  a_p = jnp.asarray(_pad_rows(np.asarray(a), rows))
  h_p = jnp.asarray(_pad_rows(np.asarray(h), rows))
  avail = jnp.arange(rows) < n
  sq_norms, c = _first(a_p, h_p, avail)
  min_d = jnp.full((rows,), jnp.inf, sq_norms.dtype)
  picked = [c]
  # One jitted step per centre from a Python loop: the centres stay on the device (no host
  # round trip between steps) and every step has the same shapes (one compile per run).
  for k in range(1, budget):
    min_d, avail, c = _seed_step(a_p, h_p, sq_norms, min_d, avail, c, jax.random.fold_in(rng, k))
    picked.append(c)
  return np.asarray(jax.device_get(jnp.stack(picked)), np.int64)


@ACQUISITIONS.register("badge")
class Badge(Acquisition):
  """BADGE (Ash et al. 2020, Algorithm 1): k-means++ seeding on the candidates' gradient
  embeddings at their predicted labels (inference mode)."""
  name = "badge"
  kind = "select"

  def select(self, ctx, budget, rng):
    # ctx.candidates is the unlabeled pool, or the random subset R under al.subset.
    f = ctx.map_chunks(_factors, ctx.candidates)
    rows = kmeanspp_seed(f["a"], f["h"], budget, rng, ctx.chunk_size)
    return ctx.candidates[rows]
