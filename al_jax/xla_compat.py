"""Workarounds for known XLA miscompilations, applied where al_jax's kernels hit them.

jaxlib 0.10.2 turned on XLA:CPU's YNNPACK ("ynn") fusions, which silently return wrong
values for some broadcast-multiply-reduce fusions (jax-ml/jax#39103, #39257). Measured
here: the structured eNTK's BatchNorm-scale Jacobian (Σ_t x̂_t δ^c_t over a [10, 56, 784, 64]
cotangent batch) came out wrong by 150% at 56 samples per block and right at 48; the plain
`jnp.sum(a[None] * d, 2)` reproduces it (`tests/test_xla_compat.py`). Turning the fusion
off globally (XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=) halves the small CNN's
CPU train-step throughput and is not safe either (a ResNet-18 train-mode gradient then
deviates from float64 by 1e-2 relative, vs 1.5e-6 by default), so it is turned off per
compiled function instead, only for kernels checked against float64 / brute-force
references (structured eNTK, factorised per-sample norms).
"""

import functools
from typing import Callable

import jax

# Compiler options that disable XLA:CPU's ynn fusions (an empty fusion-type list).
CPU_NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


def cpu_safe_jit(fun: Callable = None, **jit_kwargs) -> Callable:
  """`jax.jit(fun, **jit_kwargs)`, compiled without ynn fusions when running on CPU.

  The backend is read at the first call (not at import, so XLA_FLAGS and
  `jax.distributed.initialize` still take effect); other backends get a plain jit.
  """
  if fun is None:
    return functools.partial(cpu_safe_jit, **jit_kwargs)
  compiled = {}

  @functools.wraps(fun)
  def wrapped(*args, **kwargs):
    backend = jax.default_backend()
    if backend not in compiled:
      opts = CPU_NO_YNN if backend == "cpu" else None
      compiled[backend] = jax.jit(fun, compiler_options=opts, **jit_kwargs)
    return compiled[backend](*args, **kwargs)

  return wrapped
