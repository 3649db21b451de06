"""Dataset container and registry (contract only; loaders register themselves)."""

import dataclasses

import numpy as np

from al_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Host-side arrays. Normalisation and augmentation happen on device, inside jit.

  Attributes:
    x_train: uint8 [N, H, W, C].
    y_train: int32 [N].
    x_test: uint8 [M, H, W, C].
    y_test: int32 [M].
    num_classes: number of classes.
    name: registry name.
    mean, std: per-channel statistics in [0, 1] units used for normalisation.
    flip: whether horizontal flips are a valid augmentation (False for digits, SVHN).
    crop_pad: padding for random-crop augmentation (0 disables it).
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  name: str
  mean: tuple = (0.5,)
  std: tuple = (0.5,)
  flip: bool = False
  crop_pad: int = 0

  @property
  def image_shape(self):
    return tuple(self.x_train.shape[1:])


DATASETS: Registry = Registry("dataset")
