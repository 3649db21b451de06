"""Per-sample gradient norms without materialising per-sample gradients.

For a batch of independent per-sample losses L_i (inference-mode BatchNorm, so
samples do not interact), one batched forward/backward pass gives, for every
layer, its inputs a_i and the gradients of its outputs δ_i = ∂L_i/∂z_i. The
per-sample gradient of a layer's weights is a function of (a_i, δ_i) alone:

* Dense / Conv kernel (a_{i,t} = the input patch at output position t; T positions):
  ∇W_i = Σ_t a_{i,t} δ_{i,t}ᵀ, so
  ‖∇W_i‖² = Σ_{t,t'} (a_{i,t}·a_{i,t'}) (δ_{i,t}·δ_{i,t'})   ("ghost norm", Goodfellow 2015)
          = ‖A_iᵀ Δ_i‖²_F                                    (explicit)
  chosen per layer by cost; with T = 1 both reduce to ‖a_i‖²‖δ_i‖². For a conv neither form
  unfolds the input (Rochette et al. 2019 use the same per-offset view): with K = kh·kw kernel
  offsets k and x_{i,k} the input map shifted by k, ∇W_i[k] = x_{i,k}ᵀ Δ_i, so explicit is
  Σ_k ‖x_{i,k}ᵀ Δ_i‖² (O(T·K·C_in·C_out)), and the patch Gram a_{i,t}·a_{i,t'} is the sum
  over k of the padded input's pixel Gram at (t + k, t' + k) (O(T_p²·C_in + T²·C_out + K·T²),
  T_p = padded input positions), K× cheaper on the input side than unfolded patches.
* biases: ‖Σ_t δ_{i,t}‖²; BatchNorm scale: ‖Σ_t x̂_{i,t} ⊙ δ_{i,t}‖² with x̂ the
  normalised input under the running statistics.

Layer inputs and output gradients are captured with `flax.linen.intercept_methods`:
each Dense/Conv/BatchNorm output gets an added zero "perturbation" whose gradient
is δ (the trick behind `Module.perturb`, applied without touching model code).
Models with parameters in other layer types, shared layers, grouped/masked convs or
batch-statistics BatchNorm fall back to `vmap(grad)` (logged once per model).
"""

import logging
from typing import Callable, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from al_jax.state import ModelState

logger = logging.getLogger("al_jax")
_WARNED = set()

Path = Tuple[str, ...]


def params_at(tree, path: Path):
  for p in path:
    tree = tree[p]
  return tree


def conv_padding(padding, nd: int):
  """Flax Conv padding → what `lax.conv_general_dilated_patches` takes, or None if unsupported."""
  if isinstance(padding, str):
    return padding if padding in ("SAME", "VALID") else None
  if isinstance(padding, int):
    return [(padding, padding)] * nd
  out = []
  for p in padding:
    out.append((p, p) if isinstance(p, int) else tuple(p))
  return out if len(out) == nd else None


def spatial_tuple(v, nd):
  if v is None:
    return (1,) * nd
  return (v,) * nd if isinstance(v, int) else tuple(v)


def conv_geometry(shape, kernel_size, strides, padding, dilation):
  """Explicit (lo, hi) pads per spatial dim and the output size (H', W') of a 2-D conv."""
  _, h, w, _ = shape
  (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
  if isinstance(padding, str):
    pads = []
    for size, k, st, dl in ((h, kh, sh, dh), (w, kw, sw, dw)):
      out = -(-size // st) if padding == "SAME" else -(-(size - (k - 1) * dl) // st)
      total = max((out - 1) * st + (k - 1) * dl + 1 - size, 0) if padding == "SAME" else 0
      pads.append((total // 2, total - total // 2))
  else:
    pads = list(padding)
  hp, wp = h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1]
  ho = (hp - (kh - 1) * dh - 1) // sh + 1
  wo = (wp - (kw - 1) * dw - 1) // sw + 1
  return pads, (ho, wo)


def conv_views(x: jnp.ndarray, kernel_size, strides, padding, dilation):
  """The kh·kw shifted inputs [B, H', W', C] that the kernel offsets see, and the padded input.

  View k = (i, j) holds, at output position (h, w), the input pixel that kernel tap (i, j)
  multiplies, so conv(x, W)[t] = Σ_k x_k[t] · W[k].
  """
  pads, (ho, wo) = conv_geometry(x.shape, kernel_size, strides, padding, dilation)
  (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  views = [xp[:, i * dh:i * dh + (ho - 1) * sh + 1:sh, j * dw:j * dw + (wo - 1) * sw + 1:sw, :]
           for i in range(kh) for j in range(kw)]
  return views, xp


def conv_patches(x: jnp.ndarray, kernel_size, strides, padding, dilation) -> jnp.ndarray:
  """Unfolded 2-D patches [B, H', W', kh·kw·C] by padding and strided slicing.

  Equivalent (up to feature order, which no norm depends on) to
  `lax.conv_general_dilated_patches`, which XLA lowers to a convolution with a
  one-hot kernel: 8× slower here for a 14×14×32 map with a 3×3 kernel.
  """
  return jnp.concatenate(conv_views(x, kernel_size, strides, padding, dilation)[0], axis=-1)


def _supported(module) -> bool:
  if isinstance(module, nn.Dense):
    return True
  if isinstance(module, nn.Conv):
    nd = len(module.kernel_size)
    return (nd == 2 and module.feature_group_count == 1 and module.mask is None
            and conv_padding(module.padding, nd) is not None
            and getattr(module, "input_dilation", None) in (None, 1, (1, 1)))
  if isinstance(module, nn.BatchNorm):
    return module.use_running_average is True and module.axis in (-1,)
  return False


def discover_layers(state: ModelState, x) -> Dict[Path, dict]:
  """Layer paths, kinds and output shapes of one forward pass (trace-time only)."""
  layers, unsupported = {}, []

  def icpt(next_fun, args, kwargs, ctx):
    out = next_fun(*args, **kwargs)
    m = ctx.module
    if ctx.method_name == "__call__" and isinstance(m, (nn.Dense, nn.Conv, nn.BatchNorm)):
      path = tuple(m.path)
      if path in layers or not _supported(m):
        unsupported.append(path)
      else:
        layers[path] = {"module": m, "shape": out.shape, "dtype": out.dtype}
    return out

  with nn.intercept_methods(icpt):
    jax.eval_shape(lambda v, x: state.apply_fn(v, x), state.variables, x)
  return layers, unsupported


def forward_capture(state: ModelState, x, perts):
  """Forward pass adding `perts[path]` to each captured layer's output; returns its inputs."""
  inputs = {}

  def icpt(next_fun, args, kwargs, ctx):
    out = next_fun(*args, **kwargs)
    path = tuple(ctx.module.path)
    if ctx.method_name == "__call__" and path in perts:
      inputs[path] = args[0]
      out = out + perts[path]
    return out

  with nn.intercept_methods(icpt):
    logits, _ = state.apply_fn(state.variables, x)
  return logits, inputs


def layers_cover_params(layers, params) -> bool:
  """True if every parameter belongs to an intercepted layer."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  for keypath, _ in leaves:
    names = tuple(k.key for k in keypath)
    if names[:-1] not in layers:
      return False
  return True


def _kernel_sq_norm(a: jnp.ndarray, d: jnp.ndarray, impl: str) -> jnp.ndarray:
  """‖Σ_t a_t δ_tᵀ‖²_F per sample; a [B,T,Din], d [B,T,Dout] (Dense layers)."""
  _, t, din = a.shape
  dout = d.shape[-1]
  if t == 1:
    return jnp.sum(a[:, 0] ** 2, -1) * jnp.sum(d[:, 0] ** 2, -1)
  ghost = t * t * (din + dout) < t * din * dout
  if impl == "ghost" or (impl == "auto" and ghost):
    aa = jnp.einsum("btd,bsd->bts", a, a)
    dd = jnp.einsum("bte,bse->bts", d, d)
    return jnp.sum(aa * dd, (1, 2))
  g = jnp.einsum("btd,bte->bde", a, d)
  return jnp.sum(g * g, (1, 2))


# The Gram form's contractions (T_p × T_p and T × T outputs from short C contractions) and
# its K shifted slice-adds ran at about half the explicit per-offset products' speed on
# XLA:CPU (jax 0.12; 14×14 and 16×16 maps: ghost 0.6× the explicit MACs still took longer),
# so "auto" takes it only when it costs under half as many MACs.
GHOST_EFFICIENCY = 0.5


def conv_kernel_costs(x_shape, d_shape, conv) -> Tuple[int, int]:
  """Per-sample multiply-adds of the (explicit, ghost) conv kernel norms; `conv` as in
  `_conv_kernel_sq_norm`."""
  kernel_size, strides, padding, dilation = conv
  _, (ho, wo) = conv_geometry(x_shape, kernel_size, strides, padding, dilation)
  hp, wp = _gram_extent(x_shape, conv, (ho, wo))
  k = kernel_size[0] * kernel_size[1]
  t, tp, cin, cout = ho * wo, hp * wp, x_shape[-1], d_shape[-1]
  return t * k * cin * cout, tp * tp * cin + t * t * cout + k * t * t


def _gram_extent(x_shape, conv, out_hw):
  """Rows and columns of the padded input that some kernel tap reads."""
  kernel_size, strides, _, dilation = conv
  return tuple((o - 1) * s + (k - 1) * dl + 1
               for o, k, s, dl in zip(out_hw, kernel_size, strides, dilation))


def _conv_kernel_sq_norm(x: jnp.ndarray, d: jnp.ndarray, conv, impl: str) -> jnp.ndarray:
  """‖∇W_i‖²_F of a 2-D conv kernel per sample, without unfolding the input.

  Args:
    x: layer input [B, H, W, C_in].
    d: output gradients [B, H', W', C_out].
    conv: (kernel_size, strides, padding, dilation) as tuples / `conv_padding` output.
    impl: "explicit" (Σ_k ‖x_kᵀ Δ‖²), "ghost" (Σ_{t,t'} (Σ_k x_k[t]·x_k[t'])(δ_t·δ_t')) or
      "auto" (the cheaper by `conv_kernel_costs`, ghost weighted by `GHOST_EFFICIENCY`).
  """
  b = x.shape[0]
  ho, wo = d.shape[1], d.shape[2]
  explicit, ghost = conv_kernel_costs(x.shape, d.shape, conv)
  if impl == "explicit" or (impl == "auto" and ghost >= GHOST_EFFICIENCY * explicit):
    views, _ = conv_views(x, *conv)
    total = 0.0
    for v in views:  # one [C_in, C_out] product per kernel offset, as the weight gradient
      g = jnp.einsum("bhwc,bhwe->bce", v, d)
      total = total + jnp.sum(g * g, (1, 2))
    return total
  kernel_size, strides, _, dilation = conv
  (kh, kw), (sh, sw), (dh, dw) = kernel_size, strides, dilation
  _, xp = conv_views(x, *conv)
  hp, wp = _gram_extent(x.shape, conv, (ho, wo))
  xp = xp[:, :hp, :wp, :].reshape(b, hp * wp, -1)
  gx = jnp.einsum("bpc,bqc->bpq", xp, xp).reshape(b, hp, wp, hp, wp)
  rows = lambda o, st, n: slice(o, o + (n - 1) * st + 1, st)
  aa = 0.0
  for i in range(kh):
    for j in range(kw):
      r, c = rows(i * dh, sh, ho), rows(j * dw, sw, wo)
      aa = aa + gx[:, r, c, r, c]
  d2 = d.reshape(b, ho * wo, -1)
  dd = jnp.einsum("bte,bse->bts", d2, d2).reshape(b, ho, wo, ho, wo)
  return jnp.sum(aa * dd, (1, 2, 3, 4))


def _layer_sq_norms(module, params, stats, a, d, impl) -> Dict[str, jnp.ndarray]:
  b = a.shape[0]
  out = {}
  if isinstance(module, nn.Dense):
    a2 = a.reshape(b, -1, a.shape[-1]).astype(jnp.float32)
    d2 = d.reshape(b, -1, d.shape[-1]).astype(jnp.float32)
    out["kernel"] = _kernel_sq_norm(a2, d2, impl)
    if module.use_bias:
      out["bias"] = jnp.sum(jnp.sum(d2, 1) ** 2, -1)
  elif isinstance(module, nn.Conv):
    nd = len(module.kernel_size)
    conv = (tuple(module.kernel_size), spatial_tuple(module.strides, nd),
            conv_padding(module.padding, nd), spatial_tuple(module.kernel_dilation, nd))
    d = d.astype(jnp.float32)
    out["kernel"] = _conv_kernel_sq_norm(a.astype(jnp.float32), d, conv, impl)
    if module.use_bias:
      out["bias"] = jnp.sum(jnp.sum(d.reshape(b, -1, d.shape[-1]), 1) ** 2, -1)
  else:  # BatchNorm, inference mode: y = γ x̂ + β with running statistics
    c = a.shape[-1]
    a2 = a.reshape(b, -1, c).astype(jnp.float32)
    d2 = d.reshape(b, -1, c).astype(jnp.float32)
    xhat = (a2 - stats["mean"]) * jax.lax.rsqrt(stats["var"] + module.epsilon)
    if module.use_scale:
      out["scale"] = jnp.sum(jnp.sum(xhat * d2, 1) ** 2, -1)
    if module.use_bias:
      out["bias"] = jnp.sum(jnp.sum(d2, 1) ** 2, -1)
  return out


def factorised_sq_norms(state: ModelState, x: jnp.ndarray,
                        loss_fn: Callable[[jnp.ndarray], jnp.ndarray],
                        impl: str = "auto") -> Dict[Path, jnp.ndarray]:
  """Per-sample squared gradient norms per parameter tensor, by factorisation.

  Args:
    state: the model (BatchNorm must be in inference mode).
    x: preprocessed inputs [B, ...].
    loss_fn: logits [B, K] → per-sample losses [B] (samples must not interact).
    impl: "auto" (cheapest per layer), "ghost" or "explicit" for kernels.

  Returns:
    {(layer path..., param name): [B] squared norms}, or None when the model has
    parameters this factorisation does not cover (use `vmap_sq_norms`).
  """
  layers, unsupported = discover_layers(state, x)
  params = state.variables["params"]
  if unsupported or not layers_cover_params(layers, params):
    return None
  perts = {p: jnp.zeros(l["shape"], l["dtype"]) for p, l in layers.items()}

  def total_loss(perts):
    logits, inputs = forward_capture(state, x, perts)
    return jnp.sum(loss_fn(logits)), inputs

  deltas, inputs = jax.grad(total_loss, has_aux=True)(perts)
  stats_all = state.variables.get("batch_stats", {})
  out = {}
  for path, layer in layers.items():
    stats = params_at(stats_all, path) if isinstance(layer["module"], nn.BatchNorm) else None
    for name, v in _layer_sq_norms(layer["module"], params_at(params, path), stats,
                                   inputs[path], deltas[path], impl).items():
      out[path + (name,)] = v
  return out


def vmap_sq_norms(state: ModelState, x: jnp.ndarray,
                  loss_fn: Callable[[jnp.ndarray], jnp.ndarray]) -> Dict[Path, jnp.ndarray]:
  """Reference path: `vmap(grad)` of each sample's loss (materialises per-sample grads)."""
  def one(xi):
    def loss(params):
      v = dict(state.variables, params=params)
      logits, _ = state.apply_fn(v, xi[None])
      return loss_fn(logits)[0]
    g = jax.grad(loss)(state.variables["params"])
    flat = jax.tree_util.tree_flatten_with_path(g)[0]
    return {tuple(k.key for k in kp): jnp.sum(leaf.astype(jnp.float32) ** 2)
            for kp, leaf in flat}
  return jax.vmap(one)(x)


def per_sample_sq_norms(state: ModelState, x, loss_fn, impl: str = "factorised"):
  """Per-tensor squared norms by `impl` ("factorised" with fallback, or "vmap")."""
  if impl == "factorised":
    out = factorised_sq_norms(state, x, loss_fn)
    if out is not None:
      return out
    key = getattr(state.apply_fn, "__qualname__", str(state.apply_fn))
    if key not in _WARNED:
      _WARNED.add(key)
      logger.warning("per-sample gradient norms: model has layers the factorisation does not "
                     "cover; using vmap(grad)")
  return vmap_sq_norms(state, x, loss_fn)


def aggregate(sq: Dict[Path, jnp.ndarray], how: str = "global") -> jnp.ndarray:
  """"global": ‖∇θ‖₂ over all parameters (LPLgrad Eq. 8); "per_tensor_sum": Σ_tensors ‖∇θ_t‖₂
  (the public Ent-GradNorm/LPLgrad code)."""
  vals = list(sq.values())
  if how == "global":
    return jnp.sqrt(sum(vals))
  if how == "per_tensor_sum":
    return sum(jnp.sqrt(v) for v in vals)
  raise ValueError(f"unknown aggregation {how!r}; valid: global, per_tensor_sum")
