"""Per-sample entropy-gradient-norm throughput (LPLgrad / Ent-GradNorm scoring).

    python -m experiments.benchmark --sections=gradnorm [--quick]

For each model, samples/s of (a) `vmap(grad)` over chunks of `chunk` samples, the way
`entropy_gradnorm` scores, and (b) a Python loop of one jitted single-sample `grad` per
sample (the public code's loop, compiled). Inputs are random, parameters freshly
initialised, BatchNorm in inference mode; only steady-state calls are timed.
"""

import jax
import jax.numpy as jnp

from al_jax.acquisition.gradnorm import entropy_grad_norm
from al_jax.models import get_model
from al_jax.state import ModelState
from experiments.benchmarks import section
from experiments.benchmarks.timing import time_fn

# (model, input shape, samples, vmap chunk sizes); --quick uses the second set.
_FULL = (("small_cnn", (28, 28, 1), 512, (16, 32, 64, 256)),
         ("resnet18", (32, 32, 3), 64, (16, 32)))
_QUICK = (("small_cnn", (28, 28, 1), 128, (64,)),
          ("resnet18", (32, 32, 3), 16, (16,)))


def _model_state(name, shape, key):
  model = get_model(name, 10)
  variables = model.init(key, jnp.zeros((1, *shape)))
  apply = lambda v, x, **kw: model.apply(v, x, **kw)
  return ModelState(apply_fn=apply, variables=dict(variables))


@jax.jit
def _chunk_norms(state, x):
  return jax.vmap(lambda x1: entropy_grad_norm(state, x1))(x)


@jax.jit
def _one_norm(state, x1):
  return entropy_grad_norm(state, x1)


@section("gradnorm")
def gradnorm_throughput(args):
  rows = []
  for name, shape, n, chunks in (_QUICK if args.quick else _FULL):
    k_init, k_x = jax.random.split(jax.random.PRNGKey(0))
    state = _model_state(name, shape, k_init)
    params = sum(a.size for a in jax.tree_util.tree_leaves(state.variables["params"]))
    x = jax.random.normal(k_x, (n, *shape))
    singles = [x[i] for i in range(n)]
    repeats = 1 if name == "resnet18" else 3
    loop_s = time_fn(lambda: [_one_norm(state, s) for s in singles], repeats=repeats)["best_s"]
    for chunk in chunks:
      pieces = [x[i:i + chunk] for i in range(0, n - n % chunk, chunk)]
      m = chunk * len(pieces)
      vmap_s = time_fn(lambda: [_chunk_norms(state, p) for p in pieces],
                       repeats=repeats)["best_s"]
      vmap_rate, loop_rate = m / vmap_s, n / loop_s
      rows.append({"model": name, "input": "x".join(map(str, shape)), "params": params,
                   "samples": n, "chunk": chunk, "vmap_samples_s": vmap_rate,
                   "loop_samples_s": loop_rate, "vmap_over_loop": vmap_rate / loop_rate})
  return rows
