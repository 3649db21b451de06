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

# ARAL (issue 6) on digits / fashion_mnist: the paper's MNIST networks (Gaussian-noise MLP
# discriminator, 3-layer MLP encoder/generator, d_z = 100) and MNIST learning rates (§4.1);
# 10 labels per class to start, one pass over ~1,200 digits unlabeled images per epoch.
#   python -m experiments.main --method=aral --dataset=digits --workdir=/tmp/aral
#   # expected: 4 cycles, 100 → 160 labels, test accuracy ≈ 0.90–0.94; PNG grids in artifacts/
METHOD_OVERRIDES["aral"] = {
    "model.name": "noisy_mlp", "al.initial": 100, "al.class_balanced": True, "al.budget": 20,
    "al.cycles": 4, "train.epochs": 20, "train.min_steps_per_epoch": 20,
    "train.batch_size": 32, "train.unlabeled_batch_size": 64,
    "train.augment": False,    # the paper augments only ImageNet (§4.2)
    "train.warm_start": True,  # Alg. 1 initialises the models once, before the AL loop
    "optim.lr": 3e-3, "optim.b1": 0.5, "optim.b2": 0.9999,  # D: Adam 3e-3 (§4.1, MNIST)
    # Eqs. 5–12 weights and E/G/S learning rates (§4.1), listed so `--set` can change them.
    "objective_kwargs.latent_dim": 100, "objective_kwargs.lambda_gan": 1.0,
    "objective_kwargs.lambda_cls": 1.0, "objective_kwargs.lambda_trd": 1e-3,
    "objective_kwargs.lambda_adv": 1e-3, "objective_kwargs.beta": 1.0,
    "objective_kwargs.fm_weight": 1.0, "objective_kwargs.encoder_gan": "bigan",
    "objective_kwargs.eg_lr": 1e-3, "objective_kwargs.sampler_lr": 3e-3,
}
# VAAL (issue 6): the same schedule as ARAL so the two compare; a small VAE for 2 CPU cores.
METHOD_OVERRIDES["vaal"] = {
    "al.initial": 100, "al.class_balanced": True, "al.budget": 20, "al.cycles": 4,
    "train.epochs": 20, "train.min_steps_per_epoch": 20, "train.unlabeled_batch_size": 64,
    "objective_kwargs.vae_widths": (16, 32),
}
