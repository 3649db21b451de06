"""CPU-scale classifiers: an MLP and a small CNN, plus layers the bigger nets share.

Every classifier in `al_jax.models` follows one contract (see `al_jax/models/__init__.py`):
`__call__(x, train=False, dropout=None) -> (logits, features)` where `features` holds
`"stages"` (a tuple of intermediate feature maps [B,h,w,c]) and `"embedding"` (the input of
the final dense layer, [B,D]). The final dense layer is always named `"head"` so that
last-layer methods (CRC's empirical NTK, gradient embeddings) find it by name.
"""

from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import numerics

# He-normal with fan_out, untruncated: torchvision's ResNet init
# (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`). JAX's `he_normal` is truncated and
# fan_in, so it is spelled out here ("normal" is JAX's untruncated normal).
conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

Features = dict


def dropout_enabled(train: bool, dropout: Optional[bool]) -> bool:
  """Resolves the `dropout` switch of the model contract.

  Dropout follows `train` unless set explicitly, so MC-dropout BALD can sample dropout masks
  while BatchNorm stays in inference mode (`train=False, dropout=True`).

  Args:
    train: whether the model is in training mode.
    dropout: explicit dropout switch, or None to follow `train`.

  Returns:
    True when dropout masks should be sampled.
  """
  return train if dropout is None else bool(dropout)


def compute_dtype(dtype: Any) -> Any:
  """A model's computation dtype: `dtype`, or `numerics.float_dtype()` when None."""
  return dtype or numerics.float_dtype()


class Dropout(nn.Module):
  """Inverted dropout, as `flax.linen.Dropout`, with its keep mask drawn in float32.

  The mask depends only on the key, not on the computation dtype, so a float64 rerun of a
  training step (`al_jax.numerics`) drops the same units. RNG stream "dropout".

  Attributes:
    rate: probability of dropping a unit.
  """
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if self.rate >= 1.0:
      return jnp.zeros_like(x)
    keep_prob = 1.0 - self.rate
    keep = numerics.bernoulli(self.make_rng("dropout"), keep_prob, x.shape)
    return jax.lax.select(keep, x / jnp.asarray(keep_prob, x.dtype), jnp.zeros_like(x))


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2×2 max-pool with stride 2 and VALID padding on NHWC input.

  For even H and W it reshapes and reduces, which measured 1.5× faster than `nn.max_pool` on
  CPU for the whole small-CNN train step with identical gradients (docs/architecture.md,
  "Numbers and speed"). Odd sizes fall back to `nn.max_pool`, which floors like PyTorch's MaxPool2d(2).

  Args:
    x: [B, H, W, C] array.

  Returns:
    [B, H // 2, W // 2, C] array.
  """
  b, h, w, c = x.shape
  if h % 2 == 0 and w % 2 == 0:
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
  return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="VALID")


class MLP(nn.Module):
  """Flatten → [Dense → ReLU → Dropout] × len(hidden) → Dense.

  Attributes:
    num_classes: number of output logits.
    hidden: widths of the hidden layers.
    dropout_rate: dropout after each hidden activation.
    dtype: computation dtype; None = `numerics.float_dtype()` (parameters stay float32).
  """
  num_classes: int
  hidden: Sequence[int] = (256, 128)
  dropout_rate: float = 0.25
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               dropout: Optional[bool] = None) -> Tuple[jax.Array, Features]:
    """Returns `(logits [B, num_classes], features)`; see the module docstring."""
    # No BatchNorm here: `train` only sets the default of `dropout`.
    deterministic = not dropout_enabled(train, dropout)
    x = x.reshape(x.shape[0], -1).astype(compute_dtype(self.dtype))
    stages = []
    embedding = x
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
      # Hidden activations as [B,1,1,D] so consumers of "stages" can treat every model alike.
      stages.append(x[:, None, None, :])
      embedding = x
      x = Dropout(self.dropout_rate)(x, deterministic)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(numerics.float_dtype()), {"stages": tuple(stages),
                                                   "embedding": embedding}


class SmallCNN(nn.Module):
  """[Conv3×3 → BN → ReLU → MaxPool2×2] × len(widths) → GAP (or flatten) → Dense → ReLU → Dropout → Dense.

  Sized for 2 CPU cores on 8×8 (digits), 16×16 and 28×28/32×32 inputs. Pooling is skipped once
  the feature map is 2×2 or smaller, so 8×8 digits keep a 2×2 map after two blocks instead of
  collapsing to 1×1.

  Attributes:
    num_classes: number of output logits.
    widths: output channels of the conv blocks.
    hidden: width of the dense layer before the classifier; 0 drops that layer.
    flatten: flatten the last feature map instead of global average pooling (keeps where a
      feature is: on 28×28 garments and digits from few labels, GAP loses to a linear model).
    dropout_rate: dropout before the classifier (the MC-dropout layer for BALD).
    bn_momentum: BatchNorm running-average momentum (Flax convention; 0.9 = PyTorch's 0.1).
    bn_epsilon: BatchNorm epsilon (PyTorch's default).
    dtype: computation dtype; None = `numerics.float_dtype()` (parameters stay float32).
  """
  num_classes: int
  widths: Sequence[int] = (32, 64)
  hidden: int = 128
  flatten: bool = False
  dropout_rate: float = 0.25
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               dropout: Optional[bool] = None) -> Tuple[jax.Array, Features]:
    """Returns `(logits [B, num_classes], features)`; see the module docstring."""
    deterministic = not dropout_enabled(train, dropout)
    x = x.astype(compute_dtype(self.dtype))
    stages = []
    for width in self.widths:
      # No conv bias: the BatchNorm that follows has its own.
      x = nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                  kernel_init=conv_kernel_init, dtype=self.dtype)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype)(x)
      x = nn.relu(x)
      if min(x.shape[1], x.shape[2]) > 2:
        x = max_pool_2x2(x)
      stages.append(x)
    x = x.reshape(x.shape[0], -1) if self.flatten else jnp.mean(x, axis=(1, 2))
    if self.hidden:
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    # The embedding is the classifier's input without the dropout mask, so core-set distances
    # and gradient embeddings do not depend on a dropout draw.
    embedding = x
    x = Dropout(self.dropout_rate)(x, deterministic)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return logits.astype(numerics.float_dtype()), {"stages": tuple(stages),
                                                   "embedding": embedding}
