"""Named methods: a preset pairing of a training objective with an acquisition function.

Method = training objective × acquisition function (docs/architecture.md). The papers'
ablations are other pairs, reachable with --objective/--acquisition.
"""

from typing import Dict, NamedTuple, Optional

from al_jax import ALError


class Method(NamedTuple):
  objective: str
  acquisition: str
  description: str
  # A variant names a pairing that another method already names, with settings of its own
  # (aral_labels_only is supervised × random on ARAL's schedule): spelled as its pairing it is
  # that other method.
  variant: bool = False


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
                               "ARAL's discriminator classifier on labeled data alone",
                               variant=True),
}


def register_method(name: str, objective: str, acquisition: str, description: str) -> None:
  if name in METHODS:
    raise ValueError(f"method {name!r} registered twice")
  METHODS[name] = Method(objective, acquisition, description)


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ALError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
  return METHODS[name]


def check_pairing(objective: str, acquisition: str) -> None:
  """Raises ALError when the acquisition reads a side model the objective does not provide
  (declared as `Acquisition.requires` / `Objective.provides`), naming objectives that do."""
  from al_jax.acquisition import ACQUISITIONS
  from al_jax.objectives import OBJECTIVES
  need = ACQUISITIONS.get(acquisition).requires
  have = OBJECTIVES.get(objective).provides
  missing = [n for n in need if n not in have]
  if missing:
    fits = [n for n in OBJECTIVES.names() if set(need) <= set(OBJECTIVES.get(n).provides)]
    raise ALError(f"acquisition {acquisition!r} needs the {', '.join(map(repr, missing))} side "
                  f"model{'s' if len(missing) > 1 else ''}, which objective {objective!r} does "
                  f"not provide; use --objective={' or '.join(fits)}")


def canonical_method(objective: str, acquisition: str) -> Optional[str]:
  """The method a pairing is named after: the first registered with it (so `random`, not
  the variant `aral_labels_only`; `least_confidence`, not its alias `confidence`), or None."""
  for name, m in METHODS.items():
    if (m.objective, m.acquisition) == (objective, acquisition):
      return name
  return None

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
register_method("badge", "supervised", "badge",
                "BADGE (Ash et al. 2020): k-means++ on hypothetical last-layer gradients")
