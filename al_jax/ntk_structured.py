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


def _kernel_block(a1, d1, a2, d2) -> jnp.ndarray:
  """Σ_c ⟨Σ_t a1_t d1^cᵀ_t, Σ_s a2_s d2^cᵀ_s⟩ for all pairs, the cheaper way."""
  c, n, t, dout = d1.shape
  m, din = a2.shape[0], a1.shape[-1]
  explicit = c * (n + m) * t * din * dout + c * n * m * din * dout
  ghost = n * m * t * t * (din + c * dout)
  if explicit <= ghost:
    g1 = jnp.einsum("ntd,cnte->cnde", a1, d1)
    g2 = jnp.einsum("ntd,cnte->cnde", a2, d2)
    return jnp.einsum("cnde,cmde->nm", g1, g2)
  aa = jnp.einsum("ntd,msd->nmts", a1, a2)
  dd = jnp.einsum("cnte,cmse->nmts", d1, d2)
  return jnp.sum(aa * dd, (2, 3))


def _cross(f1, f2) -> jnp.ndarray:
  k = 0.0
  for u, v in zip(f1, f2):
    if isinstance(u, tuple):
      k = k + _kernel_block(u[0], u[1], v[0], v[1])
    else:
      k = k + jnp.einsum("cnd,cmd->nm", u, v)
  return k


def structured_ntk(state: ModelState, x1: jnp.ndarray, x2: Optional[jnp.ndarray] = None,
                   block: int = 64) -> jnp.ndarray:
  """Full-layer eNTK traced over classes, [n1, n2] (n2 = n1 when x2 is None), float32.

  Args:
    state: the model (inference-mode BatchNorm).
    x1, x2: preprocessed inputs.
    block: samples per block; peak memory grows with block², not with n.
  """
  sym = x2 is None
  x2 = x1 if sym else x2
  jit_factors = jax.jit(_factors)
  jit_cross = jax.jit(_cross)
  pad = lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], block - x.shape[0], 0)], 0)
  chunks = lambda x: [x[i:i + block] for i in range(0, x.shape[0], block)]
  c1, c2 = chunks(x1), (None if sym else chunks(x2))
  # Factors of one block at a time, padded to a fixed shape (one compilation).
  f1 = [jit_factors(state, pad(b)) for b in c1]
  f2 = f1 if sym else [jit_factors(state, pad(b)) for b in c2]
  sizes1 = [b.shape[0] for b in c1]
  sizes2 = sizes1 if sym else [b.shape[0] for b in c2]
  rows = []
  for i, fa in enumerate(f1):
    row = []
    for j, fb in enumerate(f2):
      if sym and j < i:
        row.append(rows[j][i].T)
        continue
      row.append(jit_cross(fa, fb)[:sizes1[i], :sizes2[j]])
    rows.append(row)
  return jnp.concatenate([jnp.concatenate(r, 1) for r in rows], 0)
