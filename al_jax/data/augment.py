"""On-device preprocessing: normalisation and augmentation, inside jit.

Images live on the host as uint8; every step converts and augments its own
batch on the device, so the host never touches float images.
"""

import dataclasses

import jax
import jax.numpy as jnp

from al_jax import ALError, numerics

FLIPS = ("dataset", "on", "off")


def normalize(x: jnp.ndarray, mean, std) -> jnp.ndarray:
  """uint8 [B,H,W,C] → float (`numerics.float_dtype()`), per-channel standardised."""
  dtype = numerics.float_dtype()
  x = x.astype(dtype) / 255.0
  return (x - jnp.asarray(mean, dtype)) / jnp.asarray(std, dtype)


def random_crop(rng: jax.Array, x: jnp.ndarray, pad: int) -> jnp.ndarray:
  """Random crop after zero padding by `pad` pixels (per-sample offsets, vmapped)."""
  if pad <= 0:
    return x
  b, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offs = numerics.randint(rng, (b, 2), 0, 2 * pad + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], o[0] * 0), (h, w, c))
  return jax.vmap(crop)(xp, offs)


def random_flip(rng: jax.Array, x: jnp.ndarray) -> jnp.ndarray:
  """Horizontal flip of each sample with probability 1/2."""
  flip = numerics.bernoulli(rng, 0.5, (x.shape[0], 1, 1, 1))
  return jnp.where(flip, x[:, :, ::-1, :], x)


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """Per-dataset preprocessing, hashable so it can be a static part of a jit.

  Attributes:
    mean, std: per-channel statistics in [0, 1] units.
    crop_pad: random-crop padding (0: no crops).
    flip: whether horizontal flips are valid for this dataset (no for digits, SVHN).
  """
  mean: tuple = (0.5,)
  std: tuple = (0.5,)
  crop_pad: int = 0
  flip: bool = False

  @classmethod
  def for_dataset(cls, ds, augment: bool = True, crop_pad: int = -1,
                  flip: str = "dataset") -> "Preprocess":
    """The dataset's normalisation with its default augmentation, or a method's own.

    Args:
      ds: the `Dataset` (statistics, default `crop_pad` and `flip`).
      augment: False turns every augmentation off.
      crop_pad: random-crop padding in pixels; -1 keeps the dataset's default (papers' code
        differ: TOD pads CIFAR and SVHN by 4, CrtCl does not crop).
      flip: "dataset" (its default), "on" or "off" (TOD's code flips SVHN too).
    """
    if flip not in FLIPS:
      raise ALError(f"train.flip must be one of {', '.join(FLIPS)}, got {flip!r}")
    if crop_pad < -1:
      raise ALError(f"train.crop_pad must be >= 0 (or -1: the dataset's), got {crop_pad}")
    pad = ds.crop_pad if crop_pad == -1 else int(crop_pad)
    do_flip = ds.flip if flip == "dataset" else flip == "on"
    return cls(mean=tuple(ds.mean), std=tuple(ds.std), crop_pad=pad if augment else 0,
               flip=do_flip and augment)

  def eval(self, x: jnp.ndarray) -> jnp.ndarray:
    """Deterministic view: normalisation only."""
    return normalize(x, self.mean, self.std)

  def train(self, rng: jax.Array, x: jnp.ndarray) -> jnp.ndarray:
    """Weak augmentation (crop + flip where valid), then normalisation."""
    # Crop in [0, 1] space so padding is black, as torchvision's pad-then-normalise.
    dtype = numerics.float_dtype()
    x = x.astype(dtype) / 255.0
    k_crop, k_flip = jax.random.split(rng)
    x = random_crop(k_crop, x, self.crop_pad)
    if self.flip:
      x = random_flip(k_flip, x)
    return (x - jnp.asarray(self.mean, dtype)) / jnp.asarray(self.std, dtype)
