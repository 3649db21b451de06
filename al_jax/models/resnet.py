"""CIFAR-style ResNet-18, the classifier of the LL4AL, TOD, CrtCl and LPLgrad experiments.

"CIFAR-style" means the ImageNet stem (7×7 stride-2 conv + max-pool) is replaced by one 3×3
stride-1 conv, so a 32×32 input keeps 32×32 through stage 1, as in kuangliu/pytorch-cifar's
ResNet18, which public LL4AL code adapts. With 10 classes it has 11,173,962 parameters, the
same count as that PyTorch model (BatchNorm running statistics are not parameters).
"""

import functools
from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import numerics
from al_jax.models.cnn import (Dropout, Features, compute_dtype, conv_kernel_init,
                              dropout_enabled)

# PyTorch pads a 3×3 conv by 1 on every side, also at stride 2. Flax's "SAME" pads (0, 1) on
# even sizes at stride 2 (TensorFlow's rule), which would shift the sampling grid by a pixel.
_PAD1 = ((1, 1), (1, 1))

# PyTorch's default init of Conv2d and Linear weights, kept by kuangliu/pytorch-cifar's ResNet
# (no init loop) that LL4AL, TOD, LPLgrad, CrtCl and PT4AL train: kaiming_uniform_(a=√5),
# bound = gain·√(3/fan_in) with gain = √(2/(1 + a²)) = √(1/3), i.e. U(±1/√fan_in), std
# 1/√(3·fan_in); Linear's bias U(±1/√fan_in) too. variance_scaling(1/3, fan_in, uniform) has
# limit √(3·(1/3)/fan_in) = 1/√fan_in.
_TORCH_DEFAULT = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
INITS = ("pytorch_default", "he_normal")


def _torch_bias_init(key, shape, dtype=jnp.float32, fan_in: int = 1):
  bound = 1.0 / fan_in ** 0.5
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _kernel_init(init: str):
  """"pytorch_default" (kuangliu's ResNet) or "he_normal" (torchvision's fan_out He-normal)."""
  if init not in INITS:
    from al_jax import ALError  # pylint: disable=g-import-not-at-top
    raise ALError(f"unknown resnet weight_init {init!r}; valid: {', '.join(INITS)}")
  return _TORCH_DEFAULT if init == "pytorch_default" else conv_kernel_init


class BasicBlock(nn.Module):
  """conv3×3 → BN → ReLU → conv3×3 → BN, plus a shortcut, then ReLU (He et al. 2016).

  Attributes:
    features: output channels.
    strides: stride of the first conv and of the projection shortcut.
    bn_momentum: BatchNorm running-average momentum (Flax convention).
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype.
    weight_init: conv weight init, `INITS` (see `ResNet`).
  """
  features: int
  strides: int = 1
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = None
  weight_init: str = "pytorch_default"

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    def bn(name):
      return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                          epsilon=self.bn_epsilon, dtype=self.dtype, name=name)

    kinit = _kernel_init(self.weight_init)
    y = nn.Conv(self.features, (3, 3), (self.strides, self.strides), padding=_PAD1,
                use_bias=False, kernel_init=kinit, dtype=self.dtype, name="conv1")(x)
    y = nn.relu(bn("bn1")(y))
    y = nn.Conv(self.features, (3, 3), padding=_PAD1, use_bias=False,
                kernel_init=kinit, dtype=self.dtype, name="conv2")(y)
    y = bn("bn2")(y)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      # Option B of He et al.: a 1×1 projection with BN whenever the shape changes.
      shortcut = nn.Conv(self.features, (1, 1), (self.strides, self.strides), padding="VALID",
                         use_bias=False, kernel_init=kinit, dtype=self.dtype,
                         name="proj_conv")(x)
      shortcut = bn("proj_bn")(shortcut)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """CIFAR-style ResNet with BasicBlocks; `stage_sizes=(2, 2, 2, 2)` is ResNet-18.

  Attributes:
    num_classes: number of output logits.
    stage_sizes: blocks per stage.
    width_multiplier: scales every width (64, 128, 256, 512); tests use 1/16.
    dropout_rate: dropout before the classifier; 0 (the reference nets have none) unless a
      method such as MC-dropout BALD needs it.
    bn_momentum: BatchNorm running-average momentum (Flax convention; 0.9 = PyTorch's 0.1).
    bn_epsilon: BatchNorm epsilon (PyTorch's default).
    dtype: computation dtype; None = `numerics.float_dtype()` (parameters stay float32).
    weight_init: "pytorch_default" (default) — PyTorch's Conv2d/Linear defaults, U(±1/√fan_in)
      weights and Linear bias, as the kuangliu ResNet of LL4AL/TOD/LPLgrad/CrtCl/PT4AL code
      (no init loop there); "he_normal" — untruncated He-normal fan_out convs (torchvision's
      ResNet) with Flax's Dense defaults (lecun-normal, zero bias), the earlier behaviour.
  """
  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  width_multiplier: float = 1.0
  dropout_rate: float = 0.0
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = None
  weight_init: str = "pytorch_default"

  def __post_init__(self):
    _kernel_init(self.weight_init)  # an unknown init fails when the model is built, in one line
    super().__post_init__()

  def _width(self, base: int) -> int:
    return max(1, int(round(base * self.width_multiplier)))

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               dropout: Optional[bool] = None) -> Tuple[jax.Array, Features]:
    """Returns `(logits [B, num_classes], features)`.

    `features["stages"]` holds the four stage outputs (for 32×32 input and full width:
    [B,32,32,64], [B,16,16,128], [B,8,8,256], [B,4,4,512]), the inputs of LL4AL's loss
    prediction module; `features["embedding"]` is the globally average-pooled [B,512].
    """
    deterministic = not dropout_enabled(train, dropout)
    x = x.astype(compute_dtype(self.dtype))
    # CIFAR stem: 3×3 stride-1 conv, no max-pool.
    x = nn.Conv(self._width(64), (3, 3), padding=_PAD1, use_bias=False,
                kernel_init=_kernel_init(self.weight_init), dtype=self.dtype, name="stem_conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_epsilon, dtype=self.dtype, name="stem_bn")(x)
    x = nn.relu(x)
    stages = []
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if (i > 0 and j == 0) else 1
        x = BasicBlock(self._width(64 * 2**i), strides, self.bn_momentum, self.bn_epsilon,
                       self.dtype, self.weight_init, name=f"stage{i + 1}_block{j}")(x, train)
      stages.append(x)
    embedding = jnp.mean(x, axis=(1, 2))
    x = Dropout(self.dropout_rate)(embedding, deterministic)
    if self.weight_init == "pytorch_default":
      head = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_TORCH_DEFAULT,
                      bias_init=functools.partial(_torch_bias_init, fan_in=x.shape[-1]),
                      name="head")
    else:
      head = nn.Dense(self.num_classes, dtype=self.dtype, name="head")
    logits = head(x)
    return logits.astype(numerics.float_dtype()), {"stages": tuple(stages), "embedding": embedding}
