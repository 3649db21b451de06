"""Paper presets: each paper's settings (shared/papers), meant for GPUs.

`PAPER_PRESETS[(method, dataset)]` overrides the shared CIFAR-style baseline
below; the method issues register their papers' tables here. Each entry's
comment names the paper table it reproduces.

    python -m experiments.main --method=entropy --dataset=cifar10 --preset=paper
"""

from al_jax import ALError
from al_jax.methods import get_method
from experiments.configs import base
from experiments.configs.cpu import apply_overrides

# The common benchmark setting of LL4AL (Yoo & Kweon 2019 §4.1), reused by TOD and
# LPLgrad for CIFAR-10: ResNet-18, SGD lr 0.1 momentum 0.9 wd 5e-4, 200 epochs,
# lr ×0.1 at epoch 160, batch 128, 1,000 initial + 1,000 per cycle, 10 cycles,
# random subset of 10,000 unlabeled points scored per cycle.
CIFAR_BASELINE = {
    "model.name": "resnet18", "optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.9,
    "optim.weight_decay": 5e-4, "optim.schedule": "step", "optim.milestones": (160,),
    "train.epochs": 200, "train.batch_size": 128, "al.initial": 1000, "al.budget": 1000,
    "al.cycles": 10, "al.subset": 10000, "eval.chunk_size": 128, "log_every": 20,
}

DATASET_BASE = {"cifar10": CIFAR_BASELINE, "cifar100": CIFAR_BASELINE,
                "svhn": CIFAR_BASELINE}

# (method, dataset) → overrides, filled by the method issues.
PAPER_PRESETS = {}

# TOD (Huang et al. 2021), Appendix B.1 and Table 5: ResNet-18, SGD 0.1 / 0.9 / 5e-4, 200
# epochs, ×0.1 after 80% (epoch 160), batch 128, start 10% + 5% per cycle, 7 cycles,
# α = 0.999, λ = 0.05. The random subset scored per cycle is the public code's SUBSET
# (config/{cifar10,cifar100,svhn}.py; the paper is silent), unlabeled batch = BATCH.
_TOD = {"al.cycles": 7, "train.unlabeled_batch_size": 128,
        "objective_kwargs.lam": 0.05, "objective_kwargs.ema_decay": 0.999}
_TOD_DATA = {
    "cifar10": {"al.initial": 5000, "al.budget": 2500, "al.subset": 25000},
    "cifar100": {"al.initial": 5000, "al.budget": 2500, "al.subset": 25000},
    "svhn": {"al.initial": 7324, "al.budget": 3662, "al.subset": 29302},
}
# Fig. 7 (tod), Table 1 (Base+Semi, Base+Active), §5.4 Fig. 9 (EMAOD).
for _m in ("tod", "tod_semi_only", "tod_active_only", "tod_emaod"):
  for _d, _o in _TOD_DATA.items():
    _kw = {k: v for k, v in _TOD.items()
           if not (_m == "tod_active_only" and k.startswith("objective_kwargs"))}
    PAPER_PRESETS[(_m, _d)] = {**_kw, **_o}

# CrtCl §V.A (Fig. 2; ablations Figs. 4–5 on CIFAR-10): ResNet-18, SGD 0.1 / 0.9, 200 epochs,
# ×0.1 at 160, critic AdamW 1e-3, E' = 130, γ = 0.04 (CIFAR) / 0.02 (SVHN), 7 cycles;
# start/budget 1200/200 (CIFAR-10/100), 500/500 (SVHN). Weight decay, batch and the 10,000
# subset follow LL4AL ("for all other hyperparameters we follow [31]"): CIFAR_BASELINE.
_CRTCL_DATA = {
    "cifar10": {"al.initial": 1200, "al.budget": 200},
    "cifar100": {"al.initial": 1200, "al.budget": 200},
    "svhn": {"al.initial": 500, "al.budget": 500},
}
_GAMMA = {"cifar10": 0.04, "cifar100": 0.04, "svhn": 0.02}
for _d, _o in _CRTCL_DATA.items():
  _crit = {"objective_kwargs.stop_fraction": 130 / 200, "objective_kwargs.critic_lr": 1e-3}
  PAPER_PRESETS[("crtcl", _d)] = {"al.cycles": 7, "train.unlabeled_batch_size": 128, **_o,
                                  "objective_kwargs.gamma": _GAMMA[_d], **_crit}
  # PT4AL as CrtCl's baseline (Fig. 2): CrtCl's schedule; pretext settings of the public
  # code (rotation.py: ResNet-18, SGD 0.1 / 0.9 / 5e-4, 120 epochs, ×0.1 at 30/60/90,
  # batch 256); one batch per cycle; PT4AL scores its whole batch (no random subset).
  PAPER_PRESETS[("pt4al", _d)] = {
      "al.cycles": 7, "al.subset": 0, **_o, "acquisition_kwargs.num_batches": 7,
      "acquisition_kwargs.model": "resnet18", "acquisition_kwargs.model_kwargs": {},
      "acquisition_kwargs.epochs": 120, "acquisition_kwargs.batch_size": 256,
      "acquisition_kwargs.optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9,
                                   "weight_decay": 5e-4, "schedule": "step",
                                   "milestones": (30, 60, 90), "gamma": 0.1}}
PAPER_PRESETS[("crtcl_loss_only", "cifar10")] = dict(PAPER_PRESETS[("crtcl", "cifar10")])
PAPER_PRESETS[("crtcl_select_only", "cifar10")] = {
    k: v for k, v in PAPER_PRESETS[("crtcl", "cifar10")].items()
    if k not in ("objective_kwargs.gamma", "objective_kwargs.stop_fraction")}

BASELINE_METHODS = ("random", "entropy", "least_confidence", "confidence", "margin")


def get_config(method: str, dataset: str):
  m = get_method(method)
  key = (method, dataset)
  if key not in PAPER_PRESETS and not (method in BASELINE_METHODS and dataset in DATASET_BASE):
    have = sorted({f"{a}/{b}" for a, b in PAPER_PRESETS} |
                  {f"{a}/{b}" for a in BASELINE_METHODS for b in DATASET_BASE})
    raise ALError(f"no paper preset for method {method!r} on dataset {dataset!r}; "
                  f"available: {', '.join(have)}")
  c = base.get_config()
  c.method, c.objective, c.acquisition = method, m.objective, m.acquisition
  c.dataset, c.preset = dataset, "paper"
  apply_overrides(c, DATASET_BASE.get(dataset, {}))
  apply_overrides(c, PAPER_PRESETS.get(key, {}))
  return c
