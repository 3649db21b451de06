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
