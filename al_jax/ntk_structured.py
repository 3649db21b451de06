"""Full-layer empirical NTK from per-layer factors, in bounded memory.

K(x, x') = Σ_c ⟨∂f_c(x)/∂θ, ∂f_c(x')/∂θ⟩ (traced over classes, CRC §3.1) splits
into a sum over layers. For a Dense/Conv layer with inputs a_t (unfolded patches
for convs) and output gradients δ^c_t (of logit c) at positions t, the layer's
per-sample Jacobian for class c is G^c = Σ_t a_t δ^cᵀ_t, so its kernel is

    K_l(x, x') = Σ_c ⟨G^c(x), G^c(x')⟩_F
               = Σ_c Σ_{t,s} (a_t·a'_s)(δ^c_t·δ'^c_s)            ("ghost" form)

and biases / BatchNorm scales add Σ_c (Σ_t δ^c_t)·(Σ_s δ'^c_s) and the x̂-weighted
analogue. One forward pass and C backward passes (vmap over the class
cotangents) give every factor; each layer's contribution is computed in the
cheaper of the explicit (G materialised per sample, per layer) and ghost forms,
in blocks of samples so memory stays bounded. The full Jacobian (n × C × P) is
never formed. Same layer coverage as `al_jax.per_sample` (Dense, Conv,
inference-mode BatchNorm); other models raise.
"""

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax import ALError
from al_jax import per_sample as ps
from al_jax.state import ModelState


def _factors(state: ModelState, x: jnp.ndarray):
  """Per parameter tensor: (A [n,T,Din], Δ [C,n,T,Dout]) for kernels, else the per-sample
  Jacobian itself [C, n, d] (biases, BatchNorm scales)."""
  layers, unsupported = ps._discover(state, x)
  params = state.variables["params"]
  if unsupported or not ps._covered(layers, params):
    raise ALError("structured NTK: the model has layers outside Dense/Conv/inference "
                  "BatchNorm; use the Jacobian or NTK-vector-product implementation")
  perts = {p: jnp.zeros(l["shape"], l["dtype"]) for p, l in layers.items()}
  logits, vjp_fn, inputs = jax.vjp(lambda p: ps._forward_capture(state, x, p), perts,
                                   has_aux=True)
  n, c = logits.shape
  cot = jnp.broadcast_to(jnp.eye(c, dtype=logits.dtype)[:, None, :], (c, n, c))
  deltas = jax.vmap(lambda e: vjp_fn(e)[0])(cot)  # {path: [C, n, ...]}
  stats_all = state.variables.get("batch_stats", {})
  out = []
  for path, layer in layers.items():
    m, a, d = layer["module"], inputs[path], deltas[path]
    if isinstance(m, nn.Conv):
      nd = len(m.kernel_size)
      a = ps._patches(a.astype(jnp.float32), tuple(m.kernel_size), ps._tuple(m.strides, nd),
                      ps._conv_padding(m.padding, nd), ps._tuple(m.kernel_dilation, nd))
    a = a.reshape(n, -1, a.shape[-1]).astype(jnp.float32)
    d = d.reshape(c, n, -1, d.shape[-1]).astype(jnp.float32)
    if isinstance(m, nn.BatchNorm):
      st = ps._params_at(stats_all, path)
      xhat = (a - st["mean"]) * jax.lax.rsqrt(st["var"] + m.epsilon)
      if m.use_scale:
        out.append(jnp.sum(xhat[None] * d, 2))  # ∂/∂γ: [C, n, ch]
      if m.use_bias:
        out.append(jnp.sum(d, 2))
    else:
      out.append((a, d))  # a kernel: its factors
      if m.use_bias:
        out.append(jnp.sum(d, 2))
  return out


def _compact(factors):
  """Per tensor, the smaller of its per-sample Jacobian [n, C·P] and its factors (A, Δ)."""
  out = []
  for f in factors:
    if isinstance(f, tuple):
      a, d = f
      c, n, t, dout = d.shape
      din = a.shape[-1]
      if c * din * dout <= t * din + c * t * dout:
        out.append(jnp.einsum("ntd,cnte->ncde", a, d).reshape(n, -1))
      else:
        # Δ as [n, T, Dout, C]: an output-channel slice is then one contiguous
        # [n, T, e·C] block, and its Jacobian one batched matmul (see _slice_jacobian).
        out.append((a, jnp.transpose(d, (1, 2, 3, 0))))
    else:
      out.append(jnp.transpose(f, (1, 0, 2)).reshape(f.shape[1], -1))
  return out


def _slice_jacobian(a, d, start, size):
  """Per-sample Jacobian of output channels [start, start+size): [n, Din·size·C].

  a: [n, T, Din]; d: [n, T, Dout, C]. Aᵀ_n Δ_n for every sample as one batched matmul.
  """
  n, t = a.shape[:2]
  ds = jax.lax.dynamic_slice_in_dim(d, start, size, axis=2).reshape(n, t, -1)
  return jnp.matmul(jnp.swapaxes(a, 1, 2), ds).reshape(n, -1)


@jax.jit
def _gram(u, v):
  return u @ v.T


def _divisor_at_most(n: int, cap: int) -> int:
  return max(k for k in range(1, min(n, max(cap, 1)) + 1) if n % k == 0)


def structured_ntk(state: ModelState, x1: jnp.ndarray, x2: Optional[jnp.ndarray] = None,
                   block: int = 64, max_elements: int = 2 ** 25) -> jnp.ndarray:
  """Full-layer eNTK traced over classes, [n1, n2] (n2 = n1 when x2 is None), float32.

  Samples are processed in blocks of `block` (one compilation); each parameter
  tensor keeps either its per-sample Jacobian or its factors, whichever is
  smaller, and factor tensors are expanded `max_elements` at a time (output-channel
  slices), so peak memory is bounded by the factors, not by n × C × P.
  """
  sym = x2 is None
  jit_factors = jax.jit(lambda st, x: _compact(_factors(st, x)))
  slice_fn = jax.jit(_slice_jacobian, static_argnums=(3,))

  def collect(x):
    n = x.shape[0]
    parts = []
    for i in range(0, n, block):
      xb = x[i:i + block]
      m = xb.shape[0]
      if m < block:  # pad to the fixed block shape; padded rows are dropped below
        xb = jnp.concatenate([xb, jnp.repeat(xb[-1:], block - m, 0)], 0)
      parts.append(jax.tree_util.tree_map(lambda a, m=m: a[:m] if a.ndim == 2 else a,
                                          [f if not isinstance(f, tuple) else
                                           (f[0][:m], f[1][:m]) for f in jit_factors(state, xb)]))
    return [jnp.concatenate(p, 0) if not isinstance(p[0], tuple) else
            (jnp.concatenate([q[0] for q in p], 0), jnp.concatenate([q[1] for q in p], 0))
            for p in zip(*parts)]

  f1 = collect(x1)
  f2 = f1 if sym else collect(x2)
  k = jnp.zeros((x1.shape[0], (x1 if sym else x2).shape[0]), jnp.float32)
  for u, v in zip(f1, f2):
    if not isinstance(u, tuple):
      k = k + _gram(u, v)
      continue
    (a1, d1), (a2, d2) = u, v
    n, din = a1.shape[0], a1.shape[-1]
    dout, c = d1.shape[2], d1.shape[3]
    size = _divisor_at_most(dout, max_elements // max(1, n * din * c))
    for start in range(0, dout, size):
      g1 = slice_fn(a1, d1, start, size)
      g2 = g1 if sym else slice_fn(a2, d2, start, size)
      k = k + _gram(g1, g2)
  return k
