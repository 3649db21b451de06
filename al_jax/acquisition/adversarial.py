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

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition


def _side(state, name: str, acq: str, objective: str):
  if name not in state.aux_apply or name not in state.aux:
    raise ALError(f"acquisition {acq!r} needs the {name!r} side model of objective "
                  f"{objective!r}; this objective has {sorted(state.aux_apply) or 'none'}")
  return state.aux_apply[name], state.aux[name]


@ACQUISITIONS.register("vaal")
class VAAL(Acquisition):
  """VAAL: −S(μ(x)) with μ the VAE encoder mean (official sampler.py)."""
  name = "vaal"
  requires = ("vae", "sampler")

  def score(self, state, x, rng):
    del rng
    vae_fn, vae_vars = _side(state, "vae", self.name, "vaal")
    s_fn, s_vars = _side(state, "sampler", self.name, "vaal")
    return -s_fn(s_vars, vae_fn(vae_vars, x)).astype(jnp.float32)


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
