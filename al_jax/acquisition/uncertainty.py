"""Score-based baselines from the softmax output: random, entropy, least confidence, margin."""

import jax
import jax.numpy as jnp

from al_jax.acquisition.base import ACQUISITIONS, Acquisition
from al_jax.outputs import entropy


@ACQUISITIONS.register("random")
class Random(Acquisition):
  """Uniformly random selection (a uniform score per point, keyed by the acquisition key)."""
  name = "random"

  def score(self, state, x, rng):
    del state
    return jax.random.uniform(rng, (x.shape[0],))


@ACQUISITIONS.register("entropy")
class Entropy(Acquisition):
  """Max-entropy sampling (Shannon 1948; Settles 2009 §3.1)."""
  name = "entropy"

  def score(self, state, x, rng):
    del rng
    return entropy(state(x)[0])


@ACQUISITIONS.register("least_confidence")
class LeastConfidence(Acquisition):
  """1 − max_c p(c|x) (Settles 2009; CRC's 'confidence' baseline)."""
  name = "least_confidence"

  def score(self, state, x, rng):
    del rng
    return 1.0 - jax.nn.softmax(state(x)[0].astype(jnp.float32)).max(-1)


@ACQUISITIONS.register("margin")
class Margin(Acquisition):
  """Smallest margin between the two most probable classes (Scheffer et al. 2001)."""
  name = "margin"

  def score(self, state, x, rng):
    del rng
    top2 = jax.lax.top_k(jax.nn.softmax(state(x)[0].astype(jnp.float32)), 2)[0]
    return -(top2[:, 0] - top2[:, 1])
