"""Named methods: a preset pairing of a training objective with an acquisition function.

Method = training objective × acquisition function (docs/architecture.md). The papers'
ablations are other pairs, reachable with --objective/--acquisition.
"""

from typing import Dict, NamedTuple

from al_jax import ALError


class Method(NamedTuple):
  objective: str
  acquisition: str
  description: str


METHODS: Dict[str, Method] = {
    "random": Method("supervised", "random", "random sampling (every paper's baseline)"),
    "entropy": Method("supervised", "entropy", "max-entropy sampling (Settles 2009)"),
    "least_confidence": Method("supervised", "least_confidence", "least-confidence sampling (Settles 2009)"),
    "confidence": Method("supervised", "least_confidence", "CRC's name for least confidence"),
    "margin": Method("supervised", "margin", "smallest-margin sampling (Scheffer et al. 2001)"),
    # TOD (Huang et al. 2021) and its ablations (Table 1: Base+Semi, Base+Active; §5.4 EMAOD).
    "tod": Method("tod_ema", "cod", "TOD (Huang et al. 2021): EMA consistency + cyclic output discrepancy"),
    "tod_semi_only": Method("tod_ema", "random", "TOD Base+Semi: EMA consistency, random"),
    "tod_active_only": Method("supervised", "cod", "TOD Base+Active: cross-entropy, COD"),
    "tod_emaod": Method("tod_ema", "emaod", "TOD §5.4: discrepancy to the EMA model"),
    # CrtCl and its ablations (§V.E.1 loss only, §V.E.2 selection only), PT4AL baseline.
    "crtcl": Method("critic", "critic", "CrtCl: WGAN correctness critic, lowest critic score"),
    "crtcl_loss_only": Method("critic", "random", "CrtCl §V.E.1: critic losses, random"),
    "crtcl_select_only": Method("critic_no_gen", "critic",
                                "CrtCl §V.E.2: critic trained, L_CG not backpropagated"),
    "pt4al": Method("supervised", "pt4al", "PT4AL (Yi et al. 2022): rotation-loss batches, least confidence"),
    "vaal": Method("vaal", "vaal", "VAAL: β-VAE + sampler, lowest sampler score (Sinha 2019)"),
    "aral": Method("aral", "aral_sampler",
                   "ARAL (Mottaghi & Yeung): VAAL co-trained with a semi-supervised conditional BiGAN"),
    "aral_no_encoder": Method("aral_no_encoder", "bald",
                              "ARAL §4.3 ablation: no encoder (G and D only), BALD"),
    "aral_no_al": Method("aral_no_al", "random",
                         "ARAL §4.3 ablation: no sampler nor encoder adversarial term, random"),
    "aral_labels_only": Method("supervised", "random",
                               "ARAL's discriminator classifier on labeled data alone"),
}


def register_method(name: str, objective: str, acquisition: str, description: str) -> None:
  if name in METHODS:
    raise ValueError(f"method {name!r} registered twice")
  METHODS[name] = Method(objective, acquisition, description)


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ALError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
  return METHODS[name]


def preset_method(objective: str, default: str) -> str:
  """The method whose preset an `objective` override starts from when no method is named.

  `default` when it already trains with `objective`; else the method named after the
  objective (aral, vaal), else one pairing it with `default`'s acquisition (mean_teacher →
  random_mt), else the first by name. Objectives of no method keep `default`.
  """
  if get_method(default).objective == objective:
    return default
  own = sorted(m for m, v in METHODS.items() if v.objective == objective)
  if not own:
    return default
  if objective in own:
    return objective
  same_acq = [m for m in own if METHODS[m].acquisition == METHODS[default].acquisition]
  return (same_acq or own)[0]

# CRC (Kong et al.): convergence rate control with semi-supervised training; the SSL
# baselines of its Tables 4–6 are the same acquisitions under the same objectives.
register_method("crc", "mean_teacher", "crc",
                "CRC (Kong et al.): groups maximising λ⁺_min of the eNTK, Mean Teacher training")
register_method("crc_fixmatch", "fixmatch", "crc", "CRC with FixMatch training (Tables 5–6)")
for _obj, _suffix in (("mean_teacher", "mt"), ("fixmatch", "fixmatch")):
  register_method(f"random_{_suffix}", _obj, "random", f"random sampling, {_obj} training")
  register_method(f"entropy_{_suffix}", _obj, "entropy", f"max-entropy, {_obj} training")
  register_method(f"confidence_{_suffix}", _obj, "least_confidence",
                  f"least confidence, {_obj} training")
# LPLgrad family: LPLgrad and the baselines of its paper, plus EGL and BALD.
register_method("lplgrad", "loss_pred", "entropy_gradnorm",
                "LPLgrad (its paper): loss-prediction training + entropy gradient norm")
register_method("ll4al", "loss_pred", "predicted_loss", "Learning Loss (Yoo & Kweon 2019)")
register_method("ent_gradnorm", "supervised", "entropy_gradnorm",
                "Ent-GradNorm (Wang et al. 2022)")
register_method("egl", "supervised", "egl", "expected gradient length (CRC §4.2)")
register_method("bald", "supervised", "bald", "BALD with MC dropout (Gal et al. 2017)")
register_method("coreset", "supervised", "coreset", "core-set k-center greedy (Sener 2018)")
