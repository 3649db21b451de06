"""CPU-scale preset: one full AL run of any method on `digits` in a few minutes on 2 cores.

    python -m experiments.main --method=entropy --dataset=digits --workdir=/tmp/entropy
    # expected: 5 cycles, 40 → 200 labels, last-cycle test accuracy ≈ 0.93–0.96

Method-specific settings live in `METHOD_OVERRIDES`; dataset-specific ones in
`DATASET_OVERRIDES`. Each entry overrides only what differs from base.py.
"""

from al_jax.methods import get_method
from experiments.configs import base

DATASET_OVERRIDES = {
    "digits": {},
    "synthetic": {},
    "fashion_mnist": {"al.initial": 100, "al.budget": 100, "train.epochs": 15},
    "mnist": {"al.initial": 100, "al.budget": 100, "train.epochs": 15},
    "svhn": {"al.initial": 200, "al.budget": 200, "train.epochs": 15},
    "cifar10": {"al.initial": 200, "al.budget": 200, "train.epochs": 15},
    "cifar100": {"al.initial": 500, "al.budget": 500, "train.epochs": 15},
}

# method name → {dotted key: value}; method issues add their own entries.
METHOD_OVERRIDES = {}
# PT4AL: one pretext-loss batch per cycle (5 cycles on every cpu dataset).
METHOD_OVERRIDES["pt4al"] = {"acquisition_kwargs.num_batches": 5}


def apply_overrides(config, overrides):
  for key, value in overrides.items():
    node = config
    *path, leaf = key.split(".")
    for p in path:
      node = node[p]
    node[leaf] = value
  return config


def get_config(method: str, dataset: str):
  m = get_method(method)
  c = base.get_config()
  c.method, c.objective, c.acquisition = method, m.objective, m.acquisition
  c.dataset, c.preset = dataset, "cpu"
  apply_overrides(c, DATASET_OVERRIDES.get(dataset, {}))
  apply_overrides(c, METHOD_OVERRIDES.get(method, {}))
  return c
