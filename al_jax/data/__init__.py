"""Datasets (registry + loaders), pool bookkeeping and on-device augmentation."""

from al_jax.data.datasets import DATASETS, Dataset  # noqa: F401
from al_jax.data.augment import Preprocess  # noqa: F401
from al_jax.data.pool import Pool  # noqa: F401
from al_jax.data import loaders  # noqa: F401  (registers the loaders)
