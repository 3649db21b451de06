"""Generative models for VAAL and ARAL: encoders, decoders/generators, samplers, GAN discriminators.

Two discriminator trunks follow the classifier contract of `al_jax.models` (the ARAL
discriminator holds the target classifier, so the harness evaluates its class head):

- `NoisyMLP`: ARAL §4.1's "5-layer MLP with added Gaussian noise between the layers" for
  MNIST-like data (the Improved-GAN MNIST discriminator, Salimans et al. 2016).
- `GanCNN`: ARAL §4.1's "3 convolutional blocks, each with 3 layers and dropout (0.5) between
  the blocks" for 32×32 images (the Improved-GAN CIFAR discriminator layout).

Their Gaussian noise / dropout layers are the "dropout" of the contract: on in training and with
`dropout=True` (BALD's stochastic passes), drawn from the `"dropout"` RNG stream. On `GanCNN`
BALD is MC dropout proper; on `NoisyMLP` its passes sample the additive Gaussian activation
noise (a random shift of each activation, not a dropout posterior over weights), so BALD on
the MNIST-like sets measures disagreement under that noise.

Side models (not classifiers): `RealFakeHead` (ARAL's c_r/f(D̃(x), z, y)), `MLPEncoder` /
`ConvEncoder` (q(z|x[, y]) → mean, log-variance), `MLPDecoder` / `ConvDecoder` (G(z[, y])) and
`Sampler` (VAAL's latent discriminator S(z), a logit). Labels enter conditional modules as
one-hot float vectors `[B, K]` (soft vectors work too).
"""

import math
from typing import Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import numerics
from al_jax.models.cnn import Dropout, dropout_enabled


class GaussianNoise(nn.Module):
  """Adds N(0, σ²) noise when `deterministic` is False (RNG stream "dropout")."""
  stddev: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.stddev == 0:
      return x
    return x + self.stddev * numerics.normal(self.make_rng("dropout"), x.shape, x.dtype)


class NoisyMLP(nn.Module):
  """Gaussian-noise MLP discriminator trunk + class head (ARAL §4.1, MNIST).

  noise(σ_in) → [Dense → ReLU → noise(σ)] × len(hidden) → Dense "head". Widths and the input
  noise 0.3 follow the Improved-GAN MNIST discriminator the public ARAL code uses
  (1000-500-250-250-250); the paper gives σ = 0.5 between the layers.

  Attributes:
    num_classes: number of output logits.
    hidden: widths of the hidden layers (5 in the paper).
    input_noise: noise stddev on the input.
    noise: noise stddev after every hidden layer.
  """
  num_classes: int
  hidden: Sequence[int] = (1000, 500, 250, 250, 250)
  input_noise: float = 0.3
  noise: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, dropout: Optional[bool] = None):
    deterministic = not dropout_enabled(train, dropout)
    x = x.reshape(x.shape[0], -1).astype(numerics.float_dtype())
    x = GaussianNoise(self.input_noise)(x, deterministic)
    stages, embedding = [], x
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
      stages.append(x[:, None, None, :])
      embedding = x
      x = GaussianNoise(self.noise)(x, deterministic)
    logits = nn.Dense(self.num_classes, name="head")(x)
    return logits, {"stages": tuple(stages), "embedding": embedding}


class GanCNN(nn.Module):
  """3 blocks × 3 conv layers with dropout between blocks (ARAL §4.1, SVHN/CIFAR-10).

  Block 1: 3×3 convs (widths[0]), the last with stride 2; block 2 the same with widths[1];
  block 3: 3×3 VALID (SAME once the map is smaller than 3), 1×1, 1×1 (widths[1]); leaky ReLU
  0.2; global average pooling gives the embedding D̃(x). Layout and widths (96, 192) are the
  Improved-GAN CIFAR discriminator's (Salimans et al. 2016), which the public ARAL code uses.

  Attributes:
    num_classes: number of output logits.
    widths: channels of blocks 1 and 2 (block 3 keeps widths[1]).
    dropout_rate: dropout between the blocks (0.5 in the paper).
  """
  num_classes: int
  widths: Sequence[int] = (96, 192)
  dropout_rate: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, dropout: Optional[bool] = None):
    deterministic = not dropout_enabled(train, dropout)
    act = lambda h: nn.leaky_relu(h, 0.2)
    x = x.astype(numerics.float_dtype())
    stages = []
    for width in self.widths:
      x = act(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)))(x))
      x = act(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)))(x))
      x = act(nn.Conv(width, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))(x))
      stages.append(x)
      x = Dropout(self.dropout_rate)(x, deterministic)
    pad = "VALID" if min(x.shape[1], x.shape[2]) >= 3 else "SAME"
    x = act(nn.Conv(self.widths[-1], (3, 3), padding=pad)(x))
    x = act(nn.Conv(self.widths[-1], (1, 1))(x))
    x = act(nn.Conv(self.widths[-1], (1, 1))(x))
    stages.append(x)
    embedding = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, name="head")(embedding)
    return logits, {"stages": tuple(stages), "embedding": embedding}


RF_JOINT = ("bilinear", "mlp", "none")


class RealFakeHead(nn.Module):
  """ARAL's c_r/f(D̃(x), z, y): a real/fake logit on an image embedding, a latent and a label.

  logit = w·[h, z, y] + b + ⟨V y, h⟩ + J(h, z). The class projection ⟨V y, h⟩ is the
  projection discriminator of S3GAN (Lucic et al. 2019, the paper's [22]), which §3.2 says it
  follows for the label input; without it a linear head would see y only as a per-class bias.
  J couples x and z: a head linear in [h, z] has ∂logit/∂z = w_z for every sample, so it cannot
  tell whether z is the encoding of x (the mean logit over a batch is unchanged when the z's
  are shuffled) and BiGAN's encoder/generator game (Eqs. 8, 10) only shifts the latent mean.
  BiGAN (Donahue et al. 2016) and BigBiGAN (Donahue & Simonyan 2019) judge (x, z) jointly.

  Attributes:
    joint: "mlp" — J = u·leaky_relu(A [h, z] + a), a small joint MLP as BigBiGAN's joint
      scorer (default); "bilinear" — J = ⟨W z, h⟩ (the projection idea applied to z;
      unbounded in z: on digits the encoder inflated its latents against it and the shared
      trunk collapsed, BUILD_NOTES); "none" — no coupling (the paper's literal linear head).
    hidden: width of the "mlp" joint layer.
  """
  joint: str = "mlp"
  hidden: int = 256

  @nn.compact
  def __call__(self, h: jax.Array, z: Optional[jax.Array], y: jax.Array) -> jax.Array:
    parts = [h] + ([] if z is None else [z]) + [y]
    logit = nn.Dense(1, name="linear")(jnp.concatenate(parts, -1))[:, 0]
    proj = nn.Dense(h.shape[-1], use_bias=False, name="projection")(y)
    logit = logit + jnp.sum(proj * h, -1)
    if z is None or self.joint == "none":
      return logit
    if self.joint == "bilinear":
      wz = nn.Dense(h.shape[-1], use_bias=False, name="joint")(z)
      return logit + jnp.sum(wz * h, -1)
    if self.joint == "mlp":
      a = nn.leaky_relu(nn.Dense(self.hidden, name="joint_hidden")(
          jnp.concatenate([h, z], -1)), 0.2)
      return logit + nn.Dense(1, name="joint_out")(a)[:, 0]
    raise ValueError(f"unknown joint {self.joint!r}; valid: {RF_JOINT}")


def reparameterize(rng: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """z = μ + σ·ε, ε ~ N(0, I) (Kingma & Welling 2014)."""
  return mu + jnp.exp(0.5 * logvar) * numerics.normal(rng, mu.shape, mu.dtype)


def _condition(x: jax.Array, y: Optional[jax.Array]) -> jax.Array:
  """Appends labels to an image as K constant channels (conditional GAN convention)."""
  if y is None:
    return x
  b, h, w, _ = x.shape
  return jnp.concatenate([x, jnp.broadcast_to(y[:, None, None, :], (b, h, w, y.shape[-1]))], -1)


class MLPEncoder(nn.Module):
  """q(z | x[, y]): [Dense → BN → softplus] × len(hidden) → Dense(2·d_z) (ARAL §4.1 MNIST).

  Attributes:
    latent_dim: d_z.
    hidden: hidden widths (500, 500 in the public ARAL code: a "3-layer MLP").
  """
  latent_dim: int
  hidden: Sequence[int] = (500, 500)

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None,
               train: bool = False) -> Tuple[jax.Array, jax.Array]:
    h = x.reshape(x.shape[0], -1).astype(numerics.float_dtype())
    if y is not None:
      h = jnp.concatenate([h, y], -1)
    for width in self.hidden:
      h = nn.Dense(width, use_bias=False)(h)
      h = nn.softplus(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    out = nn.Dense(2 * self.latent_dim, name="out")(h)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class ConvEncoder(nn.Module):
  """q(z | x[, y]): [Conv k×k stride 2 → BN → ReLU] × len(widths) → Dense(2·d_z).

  VAAL's official VAE encoder is widths (128, 256, 512, 1024), kernel 4; the public ARAL
  encoder widths (128, 256, 512), kernel 5. Padding (k−1)//2 on each side, as PyTorch; once
  the map is 1×1 the remaining layers keep stride 1.

  Attributes:
    latent_dim: d_z.
    widths: channels of the stride-2 convolutions.
    kernel: kernel size.
  """
  latent_dim: int
  widths: Sequence[int] = (128, 256, 512)
  kernel: int = 5

  @nn.compact
  def __call__(self, x: jax.Array, y: Optional[jax.Array] = None,
               train: bool = False) -> Tuple[jax.Array, jax.Array]:
    h = _condition(x.astype(numerics.float_dtype()), y)
    p = (self.kernel - 1) // 2
    for width in self.widths:
      # A 1×1 map (8×8 digits after three layers) is not downsampled further.
      stride, pad = ((2, 2), ((p, p), (p, p))) if min(h.shape[1:3]) > 1 else ((1, 1), "SAME")
      h = nn.Conv(width, (self.kernel,) * 2, strides=stride, padding=pad, use_bias=False)(h)
      h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    out = nn.Dense(2 * self.latent_dim, name="out")(h.reshape(h.shape[0], -1))
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class MLPDecoder(nn.Module):
  """G(z[, y]): [Dense → BN → softplus] × len(hidden) → Dense(H·W·C) → sigmoid (ARAL MNIST).

  Attributes:
    image_shape: (H, W, C) of the output.
    hidden: hidden widths (500, 500 in the public ARAL code).
  """
  image_shape: Tuple[int, int, int]
  hidden: Sequence[int] = (500, 500)

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None,
               train: bool = False) -> jax.Array:
    h = z if y is None else jnp.concatenate([z, y], -1)
    for width in self.hidden:
      h = nn.Dense(width, use_bias=False)(h)
      h = nn.softplus(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    out = nn.Dense(math.prod(self.image_shape), name="out")(h)
    return nn.sigmoid(out).reshape((z.shape[0],) + tuple(self.image_shape))


class ConvTranspose2x(nn.Module):
  """`nn.ConvTranspose(strides=(2, 2), padding="SAME")` computed as four stride-1 convolutions.

  Same parameters (names, shapes, initialiser) and the same outputs as the Flax layer, but
  XLA:CPU runs the input-dilated convolution of a stride-2 transposed convolution, and its
  gradient, on a slow path: for VAAL's decoder on 28×28 (14×14×32 → 28×28×16, batch 96) the
  gradient took 0.12 s of the whole VAE's 0.15 s. Each output phase (r_h, r_w) of the
  transposed convolution reads only the kernel taps t with t + r − pad_lo even, at input
  offsets (t + r − pad_lo) / 2 (pad_lo as in `lax.conv_transpose`'s SAME padding), so it is a
  plain stride-1 convolution with those taps; the four phases are interleaved into the
  2× larger map.

  Attributes:
    features: output channels.
    kernel: kernel size k (k × k).
    use_bias: add a bias, as `nn.ConvTranspose`.
  """
  features: int
  kernel: int
  use_bias: bool = True

  @staticmethod
  def _taps(k: int, r: int):
    """(taps, offsets) of output phase r for a stride-2 SAME transposed conv of size k."""
    pad_lo = k - 1 if 2 > k - 1 else math.ceil(k / 2)  # lax's SAME: ceil((k + s − 2) / 2)
    taps = [t for t in range(k) if (t + r - pad_lo) % 2 == 0]
    return taps, [(t + r - pad_lo) // 2 for t in taps]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel
    if k < 2:  # a 1×1 stride-2 transposed conv leaves every odd row and column empty
      raise ValueError(f"ConvTranspose2x needs kernel >= 2, got {k}")
    w = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1],
                                                              self.features))
    phases = []
    for rh in (0, 1):
      th, oh = self._taps(k, rh)
      row = []
      for rw in (0, 1):
        tw, ow = self._taps(k, rw)
        # The taps of a phase are every other one from the first: static strided slices,
        # not gathers (nor scatter-adds in the gradient).
        wk = w[th[0]::2, tw[0]::2].astype(x.dtype)
        row.append(jax.lax.conv_general_dilated(
            x, wk, (1, 1), ((-oh[0], oh[-1]), (-ow[0], ow[-1])),
            dimension_numbers=("NHWC", "HWIO", "NHWC")))
      phases.append(jnp.stack(row, 3))                       # [B, H, W, 2 (r_w), C]
    y = jnp.stack(phases, 2)                                 # [B, H, 2 (r_h), W, 2, C]
    b, h, _, wd, _, c = y.shape
    y = y.reshape(b, 2 * h, 2 * wd, c)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
    return y


class ConvDecoder(nn.Module):
  """G(z[, y]): Dense → s×s×widths[0] → [ConvT stride 2 → BN → ReLU] × … → ConvT to C.

  The map is upsampled by 2 per transposed convolution (and by the last one when
  `final_stride` is 2) from s = ceil(H / 2^ups), then cropped to H×W (28 → 32 → 28).
  VAAL's official decoder: widths (1024, 512, 256, 128), kernel 4, a final 1×1 stride-1 layer
  and a linear output; the public ARAL generator: widths (512, 256, 128), kernel 5, a final
  stride-2 layer and a squashing output.

  Attributes:
    image_shape: (H, W, C) of the output.
    widths: channels after the dense layer, then after each hidden transposed convolution.
    kernel: kernel size of the hidden transposed convolutions.
    final_stride: 2 (upsample in the output layer, kernel `kernel`) or 1 (a 1×1 layer).
    output: "sigmoid" (pixel intensities in [0, 1]) or "linear".
    dense_act: BN + ReLU after the dense layer (ARAL's generator) or not (VAAL's decoder).
  """
  image_shape: Tuple[int, int, int]
  widths: Sequence[int] = (512, 256, 128)
  kernel: int = 5
  final_stride: int = 2
  output: str = "sigmoid"
  dense_act: bool = True

  @nn.compact
  def __call__(self, z: jax.Array, y: Optional[jax.Array] = None,
               train: bool = False) -> jax.Array:
    height, width, channels = self.image_shape
    ups = len(self.widths) - 1 + (1 if self.final_stride == 2 else 0)
    sh, sw = math.ceil(height / 2 ** ups), math.ceil(width / 2 ** ups)
    h = z if y is None else jnp.concatenate([z, y], -1)
    h = nn.Dense(sh * sw * self.widths[0], use_bias=not self.dense_act)(h)
    if self.dense_act:
      h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    h = h.reshape(z.shape[0], sh, sw, self.widths[0])
    # ConvTranspose2x: nn.ConvTranspose's parameters and outputs, fast on CPU; the names
    # are the ones nn.ConvTranspose took, so checkpoints and initial weights are unchanged.
    for i, w in enumerate(self.widths[1:]):
      h = ConvTranspose2x(w, self.kernel, use_bias=False, name=f"ConvTranspose_{i}")(h)
      h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    if self.final_stride == 2:
      h = ConvTranspose2x(channels, self.kernel, name="out")(h)
    else:
      h = nn.ConvTranspose(channels, (1, 1), name="out")(h)
    top, left = (h.shape[1] - height) // 2, (h.shape[2] - width) // 2
    h = h[:, top:top + height, left:left + width, :]
    return nn.sigmoid(h) if self.output == "sigmoid" else h


class Sampler(nn.Module):
  """VAAL's sampler S(z): MLP d_z → 512 → 512 → 512 → 512 → 1 (a logit; S = sigmoid(logit)).

  ARAL §4.1's "5-layer MLP" and the official VAAL code's initial import (sinhasam/vaal
  395da2e, 5 linear layers, ReLU); its later model.py (67263f3) has 3 (z → 512 → 512 → 1).

  Attributes:
    hidden: hidden widths.
  """
  hidden: Sequence[int] = (512, 512, 512, 512)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(1, name="out")(h)[:, 0]


class VAE(nn.Module):
  """VAAL's β-VAE (Sinha et al. 2019): a `ConvEncoder` and a `ConvDecoder` with linear output.

  Attributes:
    image_shape: (H, W, C).
    latent_dim: d_z (32 in the official code).
    widths: encoder widths; the decoder mirrors them.
    kernel: kernel size (4 in the official code).
  """
  image_shape: Tuple[int, int, int]
  latent_dim: int = 32
  widths: Sequence[int] = (128, 256, 512, 1024)
  kernel: int = 4

  def setup(self):
    self.encoder = ConvEncoder(self.latent_dim, self.widths, self.kernel)
    self.decoder = ConvDecoder(self.image_shape, tuple(reversed(self.widths)), self.kernel,
                               final_stride=1, output="linear", dense_act=False)

  def __call__(self, x: jax.Array, rng: jax.Array, train: bool = False):
    """Returns (reconstruction, z, μ, log σ²)."""
    mu, logvar = self.encoder(x, None, train)
    z = reparameterize(rng, mu, logvar)
    return self.decoder(z, None, train), z, mu, logvar

  def encode(self, x: jax.Array, train: bool = False):
    return self.encoder(x, None, train)

