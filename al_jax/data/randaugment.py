"""RandAugment-style strong augmentation + Cutout, on device (FixMatch's strong view).

Follows FixMatch's `RandAugmentMC(n=2, m=10)` of the CRC paper's FixMatch code
(kekmodel/FixMatch-pytorch `dataset/randaugment.py`, `fixmatch_augment_pool`): n ops drawn
uniformly with replacement from 14, each applied with probability 1/2 at a magnitude
v ~ U{1, …, m−1} scaled to the op's range, then Cutout of a gray square of half the image
size. The PIL ops are re-expressed on float images in [0, 255] ([H, W, C] per sample):
geometric ops map output pixel centres to input pixels through PIL's affine convention
with nearest sampling and black fill; enhance ops blend with PIL's degenerate images.

Everything is jit-friendly: one `lax.switch` over the ops, vmapped over the batch (under
vmap every branch runs and the chosen one is selected — cheap for 32×32 images).
"""

import math

import jax
import jax.numpy as jnp

from al_jax import numerics
from al_jax.data import augment

PARAMETER_MAX = 10  # magnitudes are v / PARAMETER_MAX of each op's max (kekmodel)
CUTOUT_FILL = 127.0  # gray, as kekmodel's CutoutAbs


def _float_param(v, max_v, bias=0.0):
  return v * max_v / PARAMETER_MAX + bias


def _int_param(v, max_v, bias=0):
  return jnp.floor(v * max_v / PARAMETER_MAX) + bias


def _signed(key, v):
  """Random sign with probability 1/2 (the ops' `if random.random() < 0.5: v = -v`)."""
  return jnp.where(numerics.bernoulli(key), -v, v)


def _blend(degenerate, img, factor):
  """PIL ImageEnhance: degenerate + factor·(img − degenerate), clipped to [0, 255]."""
  return jnp.clip(degenerate + factor * (img - degenerate), 0.0, 255.0)


def _gray(img):
  """PIL's 'L' conversion (ITU-R 601-2 luma) [H, W, 1]; grayscale images are their own."""
  if img.shape[-1] == 1:
    return img
  return (img[..., :3] @ jnp.asarray([0.299, 0.587, 0.114]))[..., None]


def _affine(img, a, b, c, d, e, f, fill=0.0):
  """PIL `Image.transform(AFFINE, (a, b, c, d, e, f))`: output (x, y) samples input
  (a·x + b·y + c, d·x + e·y + f) at pixel centres, nearest neighbour, `fill` outside."""
  h, w = img.shape[:2]
  ys, xs = jnp.meshgrid(jnp.arange(h) + 0.5, jnp.arange(w) + 0.5, indexing="ij")
  xi = jnp.floor(a * xs + b * ys + c).astype(jnp.int32)
  yi = jnp.floor(d * xs + e * ys + f).astype(jnp.int32)
  inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
  out = img[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
  return jnp.where(inside[..., None], out, fill)


# --- the 14 ops of fixmatch_augment_pool, in its order: op(img, v, key) -------------------

def auto_contrast(img, v, key):
  del v, key
  lo = img.min(axis=(0, 1), keepdims=True)
  hi = img.max(axis=(0, 1), keepdims=True)
  scale = 255.0 / jnp.maximum(hi - lo, 1e-6)
  return jnp.where(hi > lo, jnp.clip((img - lo) * scale, 0.0, 255.0), img)


def brightness(img, v, key):
  del key
  return _blend(jnp.zeros_like(img), img, _float_param(v, 0.9, 0.05))


def color(img, v, key):
  del key
  return _blend(jnp.broadcast_to(_gray(img), img.shape), img, _float_param(v, 0.9, 0.05))


def contrast(img, v, key):
  del key
  mean = jnp.floor(jnp.mean(_gray(img)) + 0.5)  # PIL: int(mean of L + 0.5)
  return _blend(jnp.full_like(img, mean), img, _float_param(v, 0.9, 0.05))


def _equalize_channel(ch):
  """PIL ImageOps.equalize on one uint8-valued channel [H, W]."""
  q = jnp.clip(jnp.floor(ch), 0, 255).astype(jnp.int32)
  hist = jnp.bincount(q.reshape(-1), length=256)
  last = jnp.max(jnp.where(hist > 0, jnp.arange(256), -1))  # largest value present
  step = (jnp.sum(hist) - hist[last]) // 255
  cum = jnp.cumsum(hist) - hist                             # exclusive cumulative count
  lut = jnp.clip((step // 2 + cum) // jnp.maximum(step, 1), 0, 255)
  return jnp.where(step > 0, lut[q].astype(ch.dtype), ch)


def equalize(img, v, key):
  del v, key
  return jnp.stack([_equalize_channel(img[..., i]) for i in range(img.shape[-1])], -1)


def identity(img, v, key):
  del v, key
  return img


def posterize(img, v, key):
  del key
  shift = 8 - _int_param(v, 4, 4)  # keep 4..7 bits
  div = 2.0 ** shift
  return jnp.floor(jnp.clip(img, 0, 255) / div) * div


def rotate(img, v, key):
  deg = _signed(key, _int_param(v, 30))
  h, w = img.shape[:2]
  cx, cy = w / 2.0, h / 2.0
  t = -deg * math.pi / 180.0  # PIL Image.rotate: counter-clockwise, inverse map
  a, b, d, e = jnp.cos(t), jnp.sin(t), -jnp.sin(t), jnp.cos(t)
  c = a * -cx + b * -cy + cx
  f = d * -cx + e * -cy + cy
  return _affine(img, a, b, c, d, e, f)


def sharpness(img, v, key):
  del key
  # PIL ImageFilter.SMOOTH: [[1,1,1],[1,5,1],[1,1,1]] / 13 on interior pixels; border kept.
  k = jnp.asarray([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
  pad = jnp.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = img.shape[:2]
  smooth = sum(k[i, j] * pad[i:i + h, j:j + w] for i in range(3) for j in range(3))
  interior = jnp.zeros((h, w, 1), bool).at[1:-1, 1:-1].set(True)
  degenerate = jnp.where(interior, smooth, img)
  return _blend(degenerate, img, _float_param(v, 0.9, 0.05))


def shear_x(img, v, key):
  return _affine(img, 1.0, _signed(key, _float_param(v, 0.3)), 0.0, 0.0, 1.0, 0.0)


def shear_y(img, v, key):
  return _affine(img, 1.0, 0.0, 0.0, _signed(key, _float_param(v, 0.3)), 1.0, 0.0)


def solarize(img, v, key):
  del key
  threshold = 256 - _int_param(v, 256)
  return jnp.where(img >= threshold, 255.0 - img, img)


def translate_x(img, v, key):
  px = jnp.trunc(_signed(key, _float_param(v, 0.3)) * img.shape[1])  # int(v · width)
  return _affine(img, 1.0, 0.0, px, 0.0, 1.0, 0.0)


def translate_y(img, v, key):
  py = jnp.trunc(_signed(key, _float_param(v, 0.3)) * img.shape[0])
  return _affine(img, 1.0, 0.0, 0.0, 0.0, 1.0, py)


OPS = (auto_contrast, brightness, color, contrast, equalize, identity, posterize, rotate,
       sharpness, shear_x, shear_y, solarize, translate_x, translate_y)


def cutout(img, key, size: int):
  """kekmodel's CutoutAbs: a gray square from a uniform centre, clipped at the borders.

  PIL's `rectangle((x0, y0, x1, y1))` fills both end points, hence the inclusive bounds.
  """
  h, w = img.shape[:2]
  kx, ky = jax.random.split(key)
  x0 = jnp.floor(jnp.maximum(0.0, numerics.uniform(kx, (), maxval=w) - size / 2.0))
  y0 = jnp.floor(jnp.maximum(0.0, numerics.uniform(ky, (), maxval=h) - size / 2.0))
  x1 = jnp.minimum(w, x0 + size)
  y1 = jnp.minimum(h, y0 + size)
  ys, xs = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
  box = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
  return jnp.where(box[..., None], CUTOUT_FILL, img)


def rand_augment_one(key, img, n: int = 2, m: int = 10, cutout_frac: float = 0.5):
  """RandAugmentMC(n, m) + Cutout on one image [H, W, C] with values in [0, 255]."""
  keys = jax.random.split(key, n + 1)
  for i in range(n):
    k_op, k_v, k_apply, k_sign = jax.random.split(keys[i], 4)
    op = numerics.randint(k_op, (), 0, len(OPS))
    v = numerics.randint(k_v, (), 1, m).astype(img.dtype)  # np.random.randint(1, m)
    out = jax.lax.switch(op, OPS, img, v, k_sign)
    img = jnp.where(numerics.bernoulli(k_apply), out, img)
  size = int(cutout_frac * min(img.shape[0], img.shape[1]))  # 16 px on 32×32 (kekmodel)
  return cutout(img, keys[n], size) if size > 0 else img


def rand_augment(key, x, n: int = 2, m: int = 10, cutout_frac: float = 0.5):
  """Batched `rand_augment_one` (vmapped, one key per sample): [B, H, W, C] in [0, 255]."""
  keys = jax.random.split(key, x.shape[0])
  return jax.vmap(lambda k, img: rand_augment_one(k, img, n, m, cutout_frac))(keys, x)


def strong_view(key, x_uint8, prep: augment.Preprocess, n: int = 2, m: int = 10,
                cutout_frac: float = 0.5):
  """FixMatch's strong view: the dataset's flip/crop, RandAugmentMC, Cutout, normalise.

  kekmodel's strong transform is flip → crop → RandAugmentMC(2, 10) → normalise; the flip
  and crop here follow the dataset's weak augmentation (`prep`).
  """
  k_crop, k_flip, k_ra = jax.random.split(key, 3)
  dtype = numerics.float_dtype()
  x = x_uint8.astype(dtype) / 255.0
  x = augment.random_crop(k_crop, x, prep.crop_pad)
  if prep.flip:
    x = augment.random_flip(k_flip, x)
  x = rand_augment(k_ra, x * 255.0, n, m, cutout_frac) / 255.0
  return (x - jnp.asarray(prep.mean, dtype)) / jnp.asarray(prep.std, dtype)
