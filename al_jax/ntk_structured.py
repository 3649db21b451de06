"""Full-layer empirical NTK from per-layer factors, in bounded memory and time.

K(x, x') = Σ_c ⟨∂f_c(x)/∂θ, ∂f_c(x')/∂θ⟩ (traced over classes, CRC §3.1) splits
into a sum over parameter tensors. For a Dense/Conv kernel with inputs a_t (unfolded
patches for convs) and output gradients δ^c_t (of logit c) at positions t, the
per-sample Jacobian for class c is G^c = Σ_t a_t δ^cᵀ_t, so that tensor's kernel is

    K_l(x, x') = Σ_c ⟨G^c(x), G^c(x')⟩_F                                  ("explicit")
               = Σ_{t,s} (a_t·a'_s) (Σ_c δ^c_t·δ'^c_s)                      ("ghost")

and biases / BatchNorm scales add their per-sample Jacobians' inner products
(Σ_t δ^c_t and the x̂-weighted analogue). One forward pass and C backward passes
(vmapped over the class cotangents) give every factor, `block` samples at a time.

What is kept per sample (`features`): for a kernel whose per-sample Jacobian C·Din·Dout
is no larger than its factors, that Jacobian; otherwise the factors, with a conv's
input kept *before* unfolding (kh·kw times smaller). What is computed per pair
(`gram`): for each factored kernel, the cheaper of ghost (T²·(Din + C·Dout) flops per
pair; always for Dense layers, T = 1, where it is (a·a')(Σ_c δ^c·δ'^c)) and explicit
(C·Din·Dout per pair, the Jacobian formed one input-channel slice × class at a time
inside a `lax.scan`, so neither a slice nor its unfolded patches exceed a bounded size).
The full Jacobian (n × C × P) is never formed. Same layer coverage as `al_jax.per_sample` (Dense, Conv,
inference-mode BatchNorm); other models raise.
"""

import dataclasses
import functools
from typing import List, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import ALError
from al_jax import per_sample as ps
from al_jax.state import ModelState


@functools.partial(jax.tree_util.register_dataclass, data_fields=["a", "d"],
                   meta_fields=["conv"])
@dataclasses.dataclass
class Factor:
  """A kernel tensor's factors: inputs `a` and output gradients `d` [C, n, T, Dout].

  `a` is [n, T, Din] for Dense layers; for a conv, its input map [n, H, W, Cin] and
  `conv` = (kernel_size, strides, padding, dilation) to unfold it.
  """
  a: jax.Array
  d: jax.Array
  conv: Optional[Tuple] = None

  @property
  def din(self) -> int:
    """Width of one input row (kh·kw·Cin for a conv), from shapes only."""
    return jax.eval_shape(self.rows).shape[-1]

  def rows(self) -> jax.Array:
    """Inputs as [n, T, Din] (unfolded for a conv)."""
    if self.conv is None:
      return self.a
    p = ps.conv_patches(self.a, *self.conv)
    return p.reshape(p.shape[0], -1, p.shape[-1])


def _factors(state: ModelState, x: jnp.ndarray) -> List:
  """Per parameter tensor: a `Factor`, or the per-sample Jacobian [n, C·d] when smaller."""
  layers, unsupported = ps.discover_layers(state, x)
  params = state.variables["params"]
  if unsupported or not ps.layers_cover_params(layers, params):
    raise ALError("structured NTK: the model has layers outside Dense/Conv/inference "
                  "BatchNorm; use the Jacobian or NTK-vector-product implementation")
  perts = {p: jnp.zeros(l["shape"], l["dtype"]) for p, l in layers.items()}
  logits, vjp_fn, inputs = jax.vjp(lambda p: ps.forward_capture(state, x, p), perts,
                                   has_aux=True)
  n, c = logits.shape
  cot = jnp.broadcast_to(jnp.eye(c, dtype=logits.dtype)[:, None, :], (c, n, c))
  deltas = jax.vmap(lambda e: vjp_fn(e)[0])(cot)  # {path: [C, n, ...]}
  stats_all = state.variables.get("batch_stats", {})
  flat = lambda j: jnp.transpose(j, (1, 0, 2)).reshape(n, -1)  # [C, n, k] → [n, C·k]
  out = []
  for path, layer in layers.items():
    m, a, d = layer["module"], inputs[path].astype(jnp.float32), deltas[path]
    d = d.reshape(c, n, -1, d.shape[-1]).astype(jnp.float32)
    if isinstance(m, nn.BatchNorm):
      a = a.reshape(n, -1, a.shape[-1])
      st = ps.params_at(stats_all, path)
      xhat = (a - st["mean"]) * jax.lax.rsqrt(st["var"] + m.epsilon)
      if m.use_scale:
        out.append(flat(jnp.sum(xhat[None] * d, 2)))  # ∂/∂γ
      if m.use_bias:
        out.append(flat(jnp.sum(d, 2)))
      continue
    if isinstance(m, nn.Conv):
      nd = len(m.kernel_size)
      pad = ps.conv_padding(m.padding, nd)
      f = Factor(a, d, (tuple(m.kernel_size), ps.spatial_tuple(m.strides, nd),
                        pad if isinstance(pad, str) else tuple(map(tuple, pad)),
                        ps.spatial_tuple(m.kernel_dilation, nd)))
    else:
      f = Factor(a.reshape(n, -1, a.shape[-1]), d)
    dout, t = d.shape[-1], d.shape[2]
    if c * f.din * dout <= f.a[0].size + c * t * dout:  # the Jacobian is the smaller
      out.append(jnp.einsum("ntd,cnte->ncde", f.rows(), d).reshape(n, -1))
    else:
      out.append(f)
    if m.use_bias:
      out.append(flat(jnp.sum(d, 2)))
  return out


def _divisor_at_most(n: int, cap: int) -> int:
  return max(k for k in range(1, min(n, max(cap, 1)) + 1) if n % k == 0)


def _ghost_cheaper(f: Factor) -> bool:
  c, _, t, dout = f.d.shape
  return t * t * (f.din + c * dout) < c * f.din * dout


def _ghost_gram(f1: Factor, f2: Factor, max_elements: int) -> jax.Array:
  """Σ_{t,s} (a_t·a'_s)(Σ_c δ^c_t·δ'^c_s) for all pairs, row blocks of ≤ max_elements."""
  a1, a2 = f1.rows(), f2.rows()
  n1, t = a1.shape[:2]
  n2 = a2.shape[0]
  if t == 1:  # Dense: rank one per class
    return (a1[:, 0] @ a2[:, 0].T) * jnp.einsum("cne,cme->nm", f1.d[:, :, 0], f2.d[:, :, 0])
  rows = _divisor_at_most(n1, max_elements // max(1, 2 * t * t * n2))

  def block(i):
    b1 = jax.lax.dynamic_slice_in_dim(a1, i * rows, rows)
    e1 = jax.lax.dynamic_slice_in_dim(f1.d, i * rows, rows, axis=1)
    aa = jnp.einsum("itd,jsd->itjs", b1, a2)
    dd = jnp.einsum("cite,cjse->itjs", e1, f2.d)
    return jnp.sum(aa * dd, (1, 3))

  return jax.lax.map(block, jnp.arange(n1 // rows)).reshape(n1, n2)


def _explicit_gram(f1: Factor, f2: Optional[Factor], max_elements: int) -> jax.Array:
  """Σ_c ⟨G^c, G'^c⟩, G^c formed one (input-channel slice, class) at a time.

  Slicing input channels (not output channels) means a conv's unfolded patches are only
  ever formed for one channel slice: the transient memory per step is bounded by
  `max_elements` for G and by the slice's patches, never the full n × T × kh·kw·Cin.
  """
  c, n1, _, dout = f1.d.shape
  n2 = n1 if f2 is None else f2.d.shape[1]
  cin = f1.a.shape[-1]
  per_ch = f1.din // cin  # kh·kw for a conv, 1 for Dense
  size = _divisor_at_most(cin, max_elements // max(1, max(n1, n2) * per_ch * dout))

  def rows_t(f, j):  # [n, per_ch·size, T]: contraction over T on the minor axis
    a = jax.lax.dynamic_slice_in_dim(f.a, j * size, size, axis=f.a.ndim - 1)
    return jnp.swapaxes(dataclasses.replace(f, a=a).rows(), 1, 2)

  def outer(k, j):
    r1 = rows_t(f1, j)
    r2 = r1 if f2 is None else rows_t(f2, j)

    def inner(k, cls):
      jac = lambda r, d: jnp.einsum("ndt,nte->nde", r, jax.lax.dynamic_index_in_dim(
          d, cls, 0, False)).reshape(r.shape[0], -1)
      g1 = jac(r1, f1.d)
      g2 = g1 if f2 is None else jac(r2, f2.d)
      return k + g1 @ g2.T, None

    return jax.lax.scan(inner, k, jnp.arange(c))[0], None

  return jax.lax.scan(outer, jnp.zeros((n1, n2), jnp.float32), jnp.arange(cin // size))[0]


def gram(f1: List, f2: Optional[List] = None, max_elements: int = 2 ** 22) -> jax.Array:
  """K(X1, X2) [n1, n2] float32 from two `features` lists (f2 None: K(X1, X1)).

  Pure and traceable: jit it, or vmap it over groups of samples.
  """
  sym = f2 is None
  f2 = f1 if sym else f2
  k = None
  for u, v in zip(f1, f2):
    if not isinstance(u, Factor):
      part = u @ v.T
    elif _ghost_cheaper(u):
      part = _ghost_gram(u, v, max_elements)
    else:
      part = _explicit_gram(u, None if sym else v, max_elements)
    k = part if k is None else k + part
  return k


def features(state: ModelState, x: jnp.ndarray, block: int = 8) -> Tuple[List, int]:
  """Per-tensor kernel features of `x` (see the module docstring), `block` samples per pass.

  Returns (features, n). The n samples go in ⌈n/block⌉ equal blocks (one compiled
  shape); the last is padded by repeating a sample, so features hold N ≥ n rows and
  rows ≥ n are to be dropped from any kernel. Blocks are written into preallocated,
  donated buffers: no second copy of the features is ever alive.
  """
  n = x.shape[0]
  if n == 0:
    raise ALError("structured NTK of an empty set")
  nblocks = -(-n // block)
  size = -(-n // nblocks)
  xp = x if nblocks * size == n else jnp.concatenate(
      [x, jnp.repeat(x[-1:], nblocks * size - n, 0)], 0)
  shapes = jax.eval_shape(_factors, state, xp[:size])
  grow = lambda l, axis: jnp.zeros(l.shape[:axis] + (l.shape[axis] * nblocks,)
                                   + l.shape[axis + 1:], l.dtype)
  buf = [Factor(grow(f.a, 0), grow(f.d, 1), f.conv) if isinstance(f, Factor) else grow(f, 0)
         for f in shapes]
  for i in range(nblocks):
    buf = _write_block(buf, state, jax.lax.dynamic_slice_in_dim(xp, i * size, size), i * size)
  return buf, n


@functools.partial(jax.jit, donate_argnums=(0,))
def _write_block(buf, state, xb, offset):
  out = []
  for b, f in zip(buf, _factors(state, xb)):
    if isinstance(f, Factor):
      out.append(Factor(jax.lax.dynamic_update_slice_in_dim(b.a, f.a, offset, 0),
                        jax.lax.dynamic_update_slice_in_dim(b.d, f.d, offset, 1), b.conv))
    else:
      out.append(jax.lax.dynamic_update_slice_in_dim(b, f, offset, 0))
  return out


_jit_gram = jax.jit(gram, static_argnums=(2,))


def kernel(f1: List, f2: Optional[List] = None, max_elements: int = 2 ** 22) -> jax.Array:
  """`gram`, compiled. Rows/columns beyond a `features` call's n are padding."""
  return _jit_gram(f1, f2, max_elements)


def trim(feats: List, n: int) -> List:
  """The first n samples of `features` output (drops the padding; copies)."""
  return [Factor(f.a[:n], f.d[:, :n], f.conv) if isinstance(f, Factor) else f[:n]
          for f in feats]


def _grouped(feats: List, group_size: int) -> List:
  """[k·G, ...] features → [k, G, ...] (Factor d: [C, k·G, ...] → [k, C, G, ...])."""
  def split(x, axis):
    shape = x.shape[:axis] + (x.shape[axis] // group_size, group_size) + x.shape[axis + 1:]
    return jnp.moveaxis(x.reshape(shape), axis, 0)
  return [Factor(split(f.a, 0), split(f.d, 1), f.conv) if isinstance(f, Factor)
          else split(f, 0) for f in feats]


@functools.partial(jax.jit, static_argnums=(1, 2))
def _group_kernel(feats, group_size, max_elements):
  return jax.vmap(lambda f: gram(f, None, max_elements))(_grouped(feats, group_size))


def group_kernel(feats: List, group_size: int, max_elements: int = 2 ** 22) -> jax.Array:
  """Within-group kernels [k, G, G] of k·G samples taken as k consecutive groups of G."""
  return _group_kernel(feats, group_size, max_elements)


def structured_ntk(state: ModelState, x1: jnp.ndarray, x2: Optional[jnp.ndarray] = None,
                   block: int = 8, max_elements: int = 2 ** 22) -> jnp.ndarray:
  """Full-layer eNTK traced over classes, [n1, n2] (n2 = n1 when x2 is None), float32.

  Peak memory is the factors of all samples plus one slice of `max_elements` floats
  per side, never n × C × P.
  """
  f1, n1 = features(state, x1, block)
  f2, n2 = (None, n1) if x2 is None else features(state, x2, block)
  return kernel(f1, f2, max_elements)[:n1, :n2]
