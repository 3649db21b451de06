"""Named methods: a preset pairing of a training objective with an acquisition function.

DESIGN.md: method = training objective × acquisition function. The papers'
ablations are other pairs, reachable with --objective/--acquisition.
"""

from typing import Dict, NamedTuple

from al_jax import ALError


class Method(NamedTuple):
  objective: str
  acquisition: str
  description: str


METHODS: Dict[str, Method] = {
    "random": Method("supervised", "random", "random sampling"),
    "entropy": Method("supervised", "entropy", "max-entropy sampling"),
    "least_confidence": Method("supervised", "least_confidence", "least-confidence sampling"),
    "confidence": Method("supervised", "least_confidence", "CRC's name for least confidence"),
    "margin": Method("supervised", "margin", "smallest-margin sampling"),
    "vaal": Method("vaal", "vaal", "VAAL: β-VAE + sampler, lowest sampler score (Sinha 2019)"),
    "aral": Method("aral", "aral_sampler",
                   "ARAL: VAAL co-trained with a semi-supervised conditional BiGAN"),
}


def register_method(name: str, objective: str, acquisition: str, description: str) -> None:
  if name in METHODS:
    raise ValueError(f"method {name!r} registered twice")
  METHODS[name] = Method(objective, acquisition, description)


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ALError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
  return METHODS[name]
