"""Wide ResNet (WRN-d-k) as in Oliver et al. 2018, "Realistic Evaluation of Deep
Semi-Supervised Learning Algorithms", the WRN-28-2 that CRC trains with Mean Teacher/FixMatch.

Follows `wide_resnet` in brain-research/realistic-ssl-evaluation `lib/networks.py`:
pre-activation units (BN → leaky ReLU → conv), leaky ReLU slope 0.1 (`lrelu_leakiness`),
BatchNorm from `tf.contrib.layers.batch_norm` defaults (decay 0.999, epsilon 1e-3), TF "SAME"
padding, a bias-free 1×1 projection shortcut (no BN) when the width changes, a final
BN → leaky ReLU → global average pool, and a Glorot-normal classifier. With width 2 the groups
have 32, 64 and 128 channels after a 16-channel stem; WRN-28-2 has 1,467,610 parameters for 10
classes. The data augmentation that codebase does inside the net (flip, jitter, noise) lives
in `al_jax/data` here.
"""

from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import ALError, numerics
from al_jax.models.cnn import (Dropout, Features, compute_dtype, conv_kernel_init,
                              dropout_enabled)


class WideBlock(nn.Module):
  """Pre-activation residual unit with two 3×3 convs (`_residual` in Oliver et al.'s code).

  Attributes:
    features: output channels.
    strides: stride of the first conv and of the projection shortcut.
    activate_before_residual: when True the shortcut also takes the BN-activated input (only
      the first unit of the network, as in the reference code); otherwise it takes the raw
      input.
    leakiness: negative slope of the leaky ReLU.
    bn_momentum: BatchNorm running-average momentum (Flax convention = TF decay).
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype.
  """
  features: int
  strides: int = 1
  activate_before_residual: bool = False
  leakiness: float = 0.1
  bn_momentum: float = 0.999
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    def bn_act(y, name):
      y = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=self.bn_epsilon, dtype=self.dtype, name=name)(y)
      return nn.leaky_relu(y, self.leakiness)

    def conv(y, features, kernel, strides, name):
      # TF "SAME" padding, as the reference code; `conv_kernel_init` is its
      # N(0, sqrt(2 / (k·k·out))) init.
      return nn.Conv(features, (kernel, kernel), (strides, strides), padding="SAME",
                     use_bias=False, kernel_init=conv_kernel_init, dtype=self.dtype,
                     name=name)(y)

    if self.activate_before_residual:
      x = bn_act(x, "bn1")
      shortcut = x
    else:
      shortcut = x
      x = bn_act(x, "bn1")
    y = conv(x, self.features, 3, self.strides, "conv1")
    y = bn_act(y, "bn2")
    y = conv(y, self.features, 3, 1, "conv2")
    if shortcut.shape[-1] != self.features:
      shortcut = conv(shortcut, self.features, 1, self.strides, "proj_conv")
    return y + shortcut


class WideResNet(nn.Module):
  """WRN-`depth`-`widen_factor` for 32×32 inputs (also runs on 8×8 and 28×28).

  Attributes:
    num_classes: number of output logits.
    depth: total depth; (depth − 4) must divide by 6 and gives the units per group.
    widen_factor: k; group widths are 16k, 32k, 64k after a 16-channel stem.
    leakiness: leaky ReLU slope (0.1 in Oliver et al.'s hparams).
    dropout_rate: dropout before the classifier; 0 as in the reference unless a method such
      as MC-dropout BALD needs it.
    bn_momentum: BatchNorm running-average momentum; 0.999 is TF's default decay, which the
      reference code uses (Flax's `momentum` has the same meaning as TF's `decay`).
    bn_epsilon: BatchNorm epsilon; 1e-3 is `tf.contrib.layers.batch_norm`'s default.
    dtype: computation dtype; None = `numerics.float_dtype()` (parameters stay float32).
  """
  num_classes: int
  depth: int = 28
  widen_factor: int = 2
  leakiness: float = 0.1
  dropout_rate: float = 0.0
  bn_momentum: float = 0.999
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               dropout: Optional[bool] = None) -> Tuple[jax.Array, Features]:
    """Returns `(logits [B, num_classes], features)`.

    `features["stages"]` holds the three group outputs (for 32×32 input and WRN-28-2:
    [B,32,32,32], [B,16,16,64], [B,8,8,128]); `features["embedding"]` is the final
    BN → leaky ReLU → global average pool, [B,128].
    """
    if self.depth < 10 or (self.depth - 4) % 6:
      raise ALError(f"WideResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), "
                    f"got {self.depth}")
    units = (self.depth - 4) // 6
    deterministic = not dropout_enabled(train, dropout)
    x = x.astype(compute_dtype(self.dtype))
    x = nn.Conv(16, (3, 3), padding="SAME", use_bias=False, kernel_init=conv_kernel_init,
                dtype=self.dtype, name="init_conv")(x)
    block = lambda features, strides, abr, name: WideBlock(
        features, strides, abr, self.leakiness, self.bn_momentum, self.bn_epsilon,
        self.dtype, name=name)
    stages = []
    for g, base in enumerate((16, 32, 64)):
      for u in range(units):
        strides = 2 if (g > 0 and u == 0) else 1
        # Only the network's first unit activates before the residual split (the stem conv
        # has no BN/activation of its own).
        x = block(base * self.widen_factor, strides, g == 0 and u == 0,
                  f"unit_{g + 1}_{u}")(x, train)
      stages.append(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, dtype=self.dtype, name="unit_last_bn")(x)
    x = nn.leaky_relu(x, self.leakiness)
    embedding = jnp.mean(x, axis=(1, 2))
    x = Dropout(self.dropout_rate)(embedding, deterministic)
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      kernel_init=nn.initializers.glorot_normal(), name="head")(x)
    return logits.astype(numerics.float_dtype()), {"stages": tuple(stages), "embedding": embedding}
