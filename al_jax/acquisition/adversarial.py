"""Sampler-based acquisitions: VAAL (Sinha et al. 2019) and ARAL (Alg. 1 line 2).

Both query the candidates the sampler S is least sure are labeled: min_b S(E(x)). The score
is −logit S(E(x)) (higher = query first): sigmoid is monotone, so the order is that of −S,
without the ties a saturated float32 sigmoid would create.

`acquire` scores the candidates in pool order (`map_chunks` over the candidate index array)
and `top_k` maps positions back through that same array, so every selected index is the
index of the sample that received the score — the public ARAL code scores a shuffled loader
and argsorts positions as dataset indices, which scrambles the selection (BUILD_NOTES.md).
"""

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition, map_chunks, top_k


def _side(state, name: str, acq: str, objective: str):
  if name not in state.aux_apply or name not in state.aux:
    raise ALError(f"acquisition {acq!r} needs the {name!r} side model of objective "
                  f"{objective!r}; this objective has {sorted(state.aux_apply) or 'none'}")
  return state.aux_apply[name], state.aux[name]


@ACQUISITIONS.register("vaal")
class VAAL(Acquisition):
  """VAAL: −S(μ(x)) with μ the VAE encoder mean (official sampler.py).

  Args:
    vae_train_mode: True (default) — the VAE's BatchNorm normalises each scored batch by its
      own statistics, as the official code (main.py/solver.py never call `vae.eval()`, so
      sampler.py's `vae(images)` under `torch.no_grad()` runs in train mode): candidates are
      scored in a random order in batches of `batch_size` (its SubsetRandomSampler loader),
      the last one smaller (padded by repeating its points: `map_chunks`); False — inference mode (running statistics), per-point scores.
    batch_size: the scoring batch in train mode (official `--batch_size` 128).
  """
  name = "vaal"
  requires = ("vae", "sampler")

  def __init__(self, vae_train_mode: bool = True, batch_size: int = 128, **kwargs):
    super().__init__(**kwargs)
    if batch_size <= 0:
      raise ALError(f"vaal batch_size must be positive, got {batch_size}")
    self.vae_train_mode, self.batch_size = bool(vae_train_mode), int(batch_size)
    # A score depends on its batch in train mode: the selector orders and batches the pool.
    self.kind = "select" if self.vae_train_mode else "score"

  def _score(self, state, x, rng, train=False):
    del rng
    vae_fn, vae_vars = _side(state, "vae", self.name, "vaal")
    s_fn, s_vars = _side(state, "sampler", self.name, "vaal")
    mu = vae_fn(vae_vars, x, train=True) if train else vae_fn(vae_vars, x)
    return -s_fn(s_vars, mu).astype(jnp.float32)

  def score(self, state, x, rng):
    return self._score(state, x, rng)

  def _score_train(self, state, x, rng):
    return self._score(state, x, rng, train=True)

  def train_mode_scores(self, ctx, rng):
    """(scores, candidates in scoring order): a random order, batches of `batch_size`."""
    seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
    order = np.random.default_rng(seed).permutation(np.asarray(ctx.candidates))
    return map_chunks(self._score_train, ctx.state, ctx.x_all, order, ctx.prep,
                      self.batch_size, rng, ctx.dp), order

  def select(self, ctx, budget, rng):
    scores, order = self.train_mode_scores(ctx, rng)
    return top_k(scores, order, budget)


@ACQUISITIONS.register("aral_sampler")
class ARALSampler(Acquisition):
  """ARAL: −S(μ(x, C(x))) with E conditioned on the classifier's inferred label (§3.2)."""
  name = "aral_sampler"
  requires = ("encoder", "sampler")

  def score(self, state, x, rng):
    del rng
    enc_fn, enc_vars = _side(state, "encoder", self.name, "aral")
    s_fn, s_vars = _side(state, "sampler", self.name, "aral")
    logits = state(x)[0]
    y = jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1])
    return -s_fn(s_vars, enc_fn(enc_vars, x, y)).astype(jnp.float32)
