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
}


def register_method(name: str, objective: str, acquisition: str, description: str) -> None:
  if name in METHODS:
    raise ValueError(f"method {name!r} registered twice")
  METHODS[name] = Method(objective, acquisition, description)


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ALError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
  return METHODS[name]

# LPLgrad family (issue 3): LPLgrad and the baselines of its paper, plus EGL and BALD.
register_method("lplgrad", "loss_pred", "entropy_gradnorm",
                "LPLgrad: loss-prediction training + entropy gradient norm")
register_method("ll4al", "loss_pred", "predicted_loss", "Learning Loss (Yoo & Kweon 2019)")
register_method("ent_gradnorm", "supervised", "entropy_gradnorm",
                "Ent-GradNorm (Wang et al. 2022)")
register_method("egl", "supervised", "egl", "expected gradient length (CRC §4.2)")
register_method("bald", "supervised", "bald", "BALD with MC dropout (Gal et al. 2017)")
register_method("coreset", "supervised", "coreset", "core-set k-center greedy (Sener 2018)")
