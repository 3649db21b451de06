"""Empirical neural tangent kernel (eNTK) of a classifier, traced over classes (CRC §3.1).

For a classifier f_θ: x ↦ logits ∈ R^C the empirical NTK block is
K̂(x, x') = ∇_θ f(x) ∇_θ f(x')ᵀ ∈ R^{C×C} (CRC Eq. 1); CRC replaces it by its trace
K̃(x, x') = Σ_c K̂_cc(x, x') (§3.1). θ is either the final layer (the dense layer named
`head`, CRC §3.3 / Table 2 "last", the default) or every parameter ("all").

Two native implementations, both public JAX transforms only:

* `jacobian`: per-sample Jacobians by `vmap(jacrev)`, flattened to [n, C, P], contracted
  over (c, p) in float64 (under `enable_x64`) — memory n·C·P floats per chunk.
* `ntvp`: NTK-vector products: K̃ e_j = Σ_c J_c (J_cᵀ e_j) with one `vjp` (linearised
  once over x2) and one `jvp` (linearised once over x1) per column and class — memory of a
  few parameter vectors, for large parameter counts.

`lambda_min_plus` is the smallest eigenvalue that is positive beyond rounding (CRC §3.1:
"considering only the positive eigenvalues"), computed in float64 on the host.

The `neural_tangents` backend calls `nt.empirical_ntk_fn` where neural-tangents imports
(its last release, 0.6.5, needs an old jax); otherwise it raises one `ALError`.

This module is kept importable under jax 0.4.25 (no flax, no newer-only APIs) so that the
CI cross-check can run it beside neural-tangents in a pinned environment.

A model function here is `f(p, x, rest) -> logits [n, C]`, hashable (it is a static
argument of the jitted helpers): `p` is the differentiated parameter pytree, `rest` every
other variable (e.g. BatchNorm statistics); see `ClassifierFn`.
"""

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import ALError

LAYERS = ("last", "all")
METHODS = ("jacobian", "ntvp", "structured")
BACKENDS = ("native", "neural_tangents")

# What neural-tangents 0.6.5 (its last release) needs, as measured here: import and the
# default implementation work with jax/jaxlib <= 0.5.3, all three implementations with
# <= 0.4.25, 0.6.0+ fails to import; it imports TensorFlow unconditionally.
NT_REQUIREMENT = ("neural-tangents 0.6.5 with jax/jaxlib <= 0.5.3 (all three implementations: "
                  "<= 0.4.25), numpy < 2 and TensorFlow")

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes on GPU/TPU for the contractions


def _x64():
  """Context manager enabling float64 (jax.enable_x64 on new jax; experimental on old)."""
  ctx = getattr(jax, "enable_x64", None)
  if ctx is None:
    from jax.experimental import enable_x64 as ctx  # jax <= 0.4.x
  return ctx(True)


@dataclasses.dataclass(frozen=True)
class ClassifierFn:
  """`f(p, x, rest) -> logits` for a classifier following the al_jax model contract.

  Inference mode (BatchNorm running statistics, no dropout), as the trained model that
  CRC scores with. Hashable, so it can be a static argument of a jit.

  Attributes:
    apply_fn: `apply_fn(variables, x) -> (logits, features)` (`ModelState.apply_fn`).
    layers: "last" (differentiate only `params["head"]`) or "all".
  """
  apply_fn: Callable
  layers: str = "last"

  def __post_init__(self):
    if self.layers not in LAYERS:
      raise ALError(f"unknown NTK layers {self.layers!r}; valid: {', '.join(LAYERS)}")

  def split(self, variables) -> tuple:
    """variables → (p, rest): the differentiated parameters and everything else."""
    params = variables["params"]
    others = {k: v for k, v in variables.items() if k != "params"}
    if self.layers == "all":
      return params, others
    if "head" not in params:
      raise ALError("last-layer NTK needs the classifier layer named 'head'; "
                    f"found {sorted(params)}")
    trunk = {k: v for k, v in params.items() if k != "head"}
    return params["head"], {"trunk": trunk, **others}

  def __call__(self, p, x, rest):
    if self.layers == "all":
      variables = {"params": p, **rest}
    else:
      rest = dict(rest)
      trunk = rest.pop("trunk")
      variables = {"params": {**trunk, "head": p}, **rest}
    return self.apply_fn(variables, x)[0]


# --- Jacobian contraction ----------------------------------------------------------------

def flat_jacobian(f: Callable, p, x: jnp.ndarray, rest=None) -> jnp.ndarray:
  """Per-sample Jacobians of the logits, flattened: [n, C, P] (P = number of entries of p)."""
  def one(xi):
    return jax.jacrev(lambda q: f(q, xi[None], rest)[0])(p)  # leaves [C, *shape]

  jac = jax.vmap(one)(x)  # leaves [n, C, *shape]
  leaves = jax.tree_util.tree_leaves(jac)
  n, c = leaves[0].shape[:2]
  return jnp.concatenate([l.reshape(n, c, -1) for l in leaves], axis=-1)


def traced_gram(j1: jnp.ndarray, j2: jnp.ndarray) -> jnp.ndarray:
  """Σ_c ⟨J_c(x), J_c(x')⟩ for Jacobians [n1, C, P], [n2, C, P] → [n1, n2], float64.

  Call under `_x64()` (the helpers below do): the products of float32 entries are exact in
  float64 and the sums keep ~1e-16 relative error, so the kernel resolves eigenvalues far
  below a float32 contraction's n·eps32·λ_max (docs/architecture.md: float32 gets rank and λ⁺_min wrong).
  """
  return jnp.einsum("icp,jcp->ij", j1.astype(jnp.float64), j2.astype(jnp.float64),
                    precision=_HIGHEST)


def grouped_gram(jg: jnp.ndarray, group_size: int) -> jnp.ndarray:
  """Within-group kernels: Jacobians [k·G, C, P] → [k, G, G] float64 (vmap over groups)."""
  j = jg.astype(jnp.float64).reshape(-1, group_size, *jg.shape[1:])
  return jnp.einsum("kacp,kbcp->kab", j, j, precision=_HIGHEST)


_jacobian_jit = jax.jit(flat_jacobian, static_argnums=0)
_traced_gram_jit = jax.jit(traced_gram)
_grouped_gram_jit = jax.jit(grouped_gram, static_argnums=1)


def gram(j1: jnp.ndarray, j2: jnp.ndarray) -> jnp.ndarray:
  """`traced_gram` jitted and run with float64 enabled."""
  with _x64():
    return _traced_gram_jit(j1, j2)


def group_gram(jg: jnp.ndarray, group_size: int) -> jnp.ndarray:
  """`grouped_gram` jitted and run with float64 enabled."""
  with _x64():
    return _grouped_gram_jit(jg, group_size)


def _chunks(n: int, size: int):
  return [(s, min(s + size, n)) for s in range(0, n, size)]


def _pad_to(x: jnp.ndarray, size: int) -> jnp.ndarray:
  """Pads axis 0 to `size` by repeating row 0 (fixed shapes: one compile per chunk size)."""
  pad = size - x.shape[0]
  return x if pad == 0 else jnp.concatenate([x, jnp.repeat(x[:1], pad, 0)], 0)


def jacobian_chunked(f: Callable, p, x: jnp.ndarray, rest=None, chunk_size: int = 128):
  """Jacobians of `x` in fixed-size padded chunks: list of ([chunk, C, P], n_valid)."""
  out = []
  for s, e in _chunks(x.shape[0], chunk_size):
    out.append((_jacobian_jit(f, p, _pad_to(x[s:e], chunk_size), rest), e - s))
  return out


def ntk_jacobian(f: Callable, p, x1, x2=None, rest=None, chunk_size: int = 128) -> np.ndarray:
  """Traced eNTK [n1, n2] (float64 numpy) by Jacobian contraction, blockwise over chunks."""
  j1 = jacobian_chunked(f, p, x1, rest, chunk_size)
  j2 = j1 if x2 is None else jacobian_chunked(f, p, x2, rest, chunk_size)
  rows = []
  for a, na in j1:
    rows.append(np.concatenate([np.asarray(gram(a, b))[:na, :nb] for b, nb in j2], 1))
  return np.concatenate(rows, 0)


# --- NTK-vector products ------------------------------------------------------------------

def ntvp_kernel(f: Callable, p, x1: jnp.ndarray, x2: jnp.ndarray, rest=None) -> jnp.ndarray:
  """Traced eNTK [n1, n2] from vjp/jvp products, never materialising a Jacobian.

  Column j: K̃(·, x2_j) = Σ_c J_c(x1) J_c(x2)ᵀ e_j. `f` is linearised once over x1 (jvp)
  and once over x2 (vjp); each (j, c) costs one vjp and one jvp. Classes are vmapped,
  columns mapped sequentially, so memory is ~C parameter vectors plus the residuals.
  """
  out2, vjp2 = jax.vjp(lambda q: f(q, x2, rest), p)
  _, jvp1 = jax.linearize(lambda q: f(q, x1, rest), p)
  n2, c = out2.shape

  def column(j):
    def one_class(k):
      ct = jnp.zeros((n2, c), out2.dtype).at[j, k].set(1.0)
      (u,) = vjp2(ct)              # J_kᵀ(x2) e_j, a parameter-shaped vector
      return jvp1(u)[:, k]         # J_k(x1) u
    return jax.vmap(one_class)(jnp.arange(c)).sum(0)

  return jax.lax.map(column, jnp.arange(n2)).T


_ntvp_jit = jax.jit(ntvp_kernel, static_argnums=0)


# --- neural-tangents backend ----------------------------------------------------------------

def require_neural_tangents():
  """Imports neural_tangents or raises one ALError naming the versions it needs."""
  try:
    import neural_tangents as nt  # pylint: disable=import-outside-toplevel
  except Exception as e:  # ImportError, or the AttributeErrors it raises on a newer jax
    raise ALError(
        f"--ntk_backend=neural_tangents needs {NT_REQUIREMENT}; this environment has jax "
        f"{jax.__version__} and neural_tangents does not import ({type(e).__name__}: "
        f"{str(e).splitlines()[0][:120] if str(e) else ''}). Use --ntk_backend=native "
        "(the default), or a pinned environment: jax==0.4.25 jaxlib==0.4.25 'numpy<2' "
        "neural-tangents==0.6.5 tensorflow") from None
  return nt


_NT_IMPLEMENTATIONS = {"jacobian": 1, "ntvp": 2, "structured": 3}


def nt_kernel(f: Callable, p, x1, x2=None, rest=None, implementation: str = "jacobian"):
  """Traced eNTK from `neural_tangents.empirical_ntk_fn` (trace over the class axis).

  neural-tangents divides by the size of the traced axes (its `sum_and_contract`:
  `... / size`), i.e. returns the mean over classes; CRC's K̃ is the trace (§3.1), so the
  result is multiplied by C (measured: exactly C× apart before this factor).
  """
  nt = require_neural_tangents()
  impl = nt.NtkImplementation(_NT_IMPLEMENTATIONS[implementation])
  fn = nt.empirical_ntk_fn(lambda q, x, **kw: f(q, x, kw.get("rest")), trace_axes=(-1,),
                           vmap_axes=0, implementation=impl)
  num_classes = jax.eval_shape(lambda q: f(q, x1[:1], rest), p).shape[-1]
  return num_classes * fn(x1, x2, p, **({} if rest is None else {"rest": rest}))


# --- one entry point -----------------------------------------------------------------------

def ntk(f: Callable, p, x1, x2=None, rest=None, *, method: str = "jacobian",
        backend: str = "native", chunk_size: int = 128) -> np.ndarray:
  """Traced empirical NTK K̃(x1, x2) as a host array [n1, n2].

  Args:
    f: hashable model function `f(p, x, rest) -> logits [n, C]` (e.g. `ClassifierFn`).
    p: differentiated parameters.
    x1, x2: inputs (x2 = None: x1).
    rest: the model's other variables, passed through to `f`.
    method: "jacobian" (float64 contraction, chunked), "ntvp" (float32 products) or
      "structured" (all layers, per-layer factors: `al_jax.ntk_structured`; float32).
    backend: "native" or "neural_tangents".
    chunk_size: samples per Jacobian chunk.
  """
  if method == "structured" and not isinstance(f, ClassifierFn):
    raise ALError("the structured NTK needs the model itself: pass a ClassifierFn")
  check_options(method=method, backend=backend,
                layers=f.layers if method == "structured" else "last")
  if method == "structured":
    from al_jax import ntk_structured  # imports flax; this module stays flax-free otherwise
    from al_jax.state import ModelState
    state = ModelState(apply_fn=f.apply_fn, variables={"params": p, **(rest or {})})
    return np.asarray(ntk_structured.structured_ntk(state, x1, x2))
  if backend == "neural_tangents":
    return np.asarray(nt_kernel(f, p, x1, x2, rest, method))
  if method == "jacobian":
    return ntk_jacobian(f, p, x1, x2, rest, chunk_size)
  return np.asarray(_ntvp_jit(f, p, x1, x1 if x2 is None else x2, rest))


def check_options(method: str = "jacobian", backend: str = "native",
                  layers: str = "last") -> None:
  """Validates NTK options; the neural-tangents backend must also import."""
  for name, v, valid in (("method", method, METHODS), ("backend", backend, BACKENDS),
                         ("layers", layers, LAYERS)):
    if v not in valid:
      raise ALError(f"unknown NTK {name} {v!r}; valid: {', '.join(valid)}")
  if method == "structured" and (layers != "all" or backend != "native"):
    raise ALError("the structured NTK is the native all-layer kernel: use layers='all' and "
                  "ntk_backend='native' with method='structured'")
  if backend == "neural_tangents":
    require_neural_tangents()


# --- the smallest positive eigenvalue ----------------------------------------------------------

def positive_tolerance(lam_max: np.ndarray, n: int, kernel_dtype,
                       jacobian_dtype=np.float32) -> np.ndarray:
  """Threshold below which an eigenvalue of an n×n eNTK is indistinguishable from 0.

  * float32 kernel (contracted in float32: ntvp, neural-tangents): numpy `matrix_rank`'s
    rule on K itself, λ_max · n · eps32 — by Weyl's inequality each eigenvalue moves by at
    most ‖δK‖₂ ≤ n · max|δK_ij| ≈ n · eps32 · λ_max under the entries' rounding.
  * float64 kernel contracted from float32 Jacobians (the native Jacobian path): K = ΦΦᵀ,
    so λ_i = σ_i(Φ)². `matrix_rank`'s rule on the float32 Jacobian Φ counts σ_i above
    σ_max · n · eps32, i.e. λ_i above λ_max · (n · eps32)²; never below the float64
    rounding floor λ_max · n · eps64 of the contraction and eigensolve.
  """
  lam_max = np.asarray(lam_max, np.float64)
  if np.dtype(kernel_dtype) == np.float64:
    eps_j = np.finfo(jacobian_dtype).eps
    rel = max((n * eps_j) ** 2, n * np.finfo(np.float64).eps)
  else:
    rel = n * np.finfo(kernel_dtype).eps
  return lam_max * rel


def spectrum(k: np.ndarray, jacobian_dtype=np.float32):
  """Eigenvalues (ascending, float64) and numerical rank of a (batch of) kernel(s).

  The kernel is symmetrised and the eigensolve is float64 on the host (`np.linalg.eigvalsh`,
  batched); the rank counts eigenvalues above `positive_tolerance`, whose rule depends on
  the kernel's dtype (how it was contracted).

  Returns:
    (w [..., n], rank [...]).
  """
  k = np.asarray(k)
  kernel_dtype = k.dtype
  if k.ndim < 2 or k.shape[-1] != k.shape[-2]:
    raise ALError(f"an eNTK spectrum needs square matrices, got shape {k.shape}")
  k = k.astype(np.float64)
  k = 0.5 * (k + np.swapaxes(k, -1, -2))
  w = np.linalg.eigvalsh(k)  # ascending
  tol = positive_tolerance(w[..., -1:], k.shape[-1], kernel_dtype, jacobian_dtype)
  return w, (w > tol).sum(-1)


def lambda_min_plus(k: np.ndarray, jacobian_dtype=np.float32, return_rank: bool = False):
  """λ⁺_min: the smallest eigenvalue above `positive_tolerance` (CRC §3.1, Alg. 1).

  Works on one kernel [n, n] or a batch [..., n, n]; a kernel with no positive eigenvalue
  scores 0.

  Args:
    k: kernel(s); its dtype says how it was contracted (see `positive_tolerance`).
    jacobian_dtype: dtype of the Jacobians a float64 kernel was contracted from.
    return_rank: also return the number of eigenvalues above the tolerance.
  """
  w, rank = spectrum(k, jacobian_dtype)
  n = w.shape[-1]
  idx = np.clip(n - rank, 0, n - 1)[..., None]
  lam = np.where(rank > 0, np.take_along_axis(w, idx, -1)[..., 0], 0.0)
  if return_rank:
    return lam, rank
  return lam
