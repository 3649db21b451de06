"""Per-sample entropy-gradient-norm throughput (LPLgrad / Ent-GradNorm scoring).

    python -m experiments.benchmark --sections=gradnorm [--quick]

For each model, samples/s of three implementations of ‖∇_θ H(p(y|x))‖ per sample:
(a) `factorised`: per-layer norms from one batched backward pass (`al_jax.per_sample`,
    what `entropy_gradnorm(impl="factorised")` runs),
(b) `vmap(grad)` over sub-batches (`impl="vmap"`),
(c) a Python loop of one jitted single-sample `grad` per sample (the public code's loop,
    compiled). Chunk sizes are swept for (a) and (b) and the best is reported. Inputs are
random, parameters freshly initialised, BatchNorm in inference mode; only steady-state calls
are timed. The small CNN is widened to ~0.4M parameters (the fast-kernel benchmark setting).

`bound_s` is one batched forward+backward of the summed entropy to all parameters (at the
factorised chunk sizes, best): the forward and the backward to every layer output that any
per-sample method needs, plus the batched weight-gradient products, which the factorised path
replaces by its per-sample norm contractions. `*_pct` is each path's samples/s as % of it
(100% = per-sample norms for the price of one batched gradient), `speedup_vs_best` the
factorised path over the faster of (b) and (c). All calls are timed in interleaved rounds
(best of each), so on a shared machine every path sees the same load.
"""

import time

import jax
import jax.numpy as jnp

from al_jax.acquisition.gradnorm import entropy_grad_norm, factorised_entropy_grad_norms
from al_jax.models import get_model
from al_jax.outputs import entropy
from al_jax.state import ModelState
from experiments.benchmarks import section

# (model, kwargs, input shape, samples, vmap chunks, factorised chunks); --quick: second set.
# Factorised chunks start at 16: under jax 0.12 on 2 cores, small-CNN chunks of 16 ran ~1.35×
# the samples/s of 64–256 (activations stay in cache), the batched bound likewise.
_FULL = (("small_cnn", dict(widths=(64, 128, 256), hidden=128), (28, 28, 1), 512,
          (16, 64), (16, 64, 256)),
         ("resnet18", {}, (32, 32, 3), 64, (16,), (16, 32, 64)))
_QUICK = (("small_cnn", dict(widths=(64, 128, 256), hidden=128), (28, 28, 1), 64,
           (16,), (16, 64)),
          ("resnet18", dict(width_multiplier=0.25), (32, 32, 3), 16, (16,), (16,)))


def _model_state(name, kwargs, shape, key):
  model = get_model(name, 10, **kwargs)
  variables = model.init(key, jnp.zeros((1, *shape)))
  apply = lambda v, x, **kw: model.apply(v, x, **kw)
  return ModelState(apply_fn=apply, variables=dict(variables))


@jax.jit
def _chunk_norms(state, x):
  return jax.vmap(lambda x1: entropy_grad_norm(state, x1))(x)


@jax.jit
def _one_norm(state, x1):
  return entropy_grad_norm(state, x1)


@jax.jit
def _factorised(state, x):
  return factorised_entropy_grad_norms(state, x, "global")


@jax.jit
def _batched_fwd_bwd(state, x):
  """∇θ Σ_i H(p(y|x_i)): the batched forward+backward that bounds any per-sample method."""
  def total(params):
    logits = state.apply_fn(dict(state.variables, params=params), x, train=False)[0]
    return jnp.sum(entropy(logits))
  return jax.grad(total)(state.variables["params"])


def _interleaved_rates(calls, n, repeats):
  """samples/s of each `calls[key]()` (all covering n samples), best of `repeats` rounds.

  Every round times each call once in turn, so on a shared machine the paths see the same
  load (timed one after another, a load change between sweeps moved the ratios by 2×).
  """
  best = {}
  for key, call in calls.items():
    jax.block_until_ready(call())  # compile
    best[key] = float("inf")
  for _ in range(repeats):
    for key, call in calls.items():
      t = time.perf_counter()
      jax.block_until_ready(call())
      best[key] = min(best[key], time.perf_counter() - t)
  return {key: n / t for key, t in best.items()}


def _chunked(fn, state, x, chunk):
  pieces = [x[i:i + chunk] for i in range(0, x.shape[0] - x.shape[0] % chunk, chunk)]
  return lambda: [fn(state, p) for p in pieces]


@section("gradnorm")
def gradnorm_throughput(args):
  rows = []
  for name, kw, shape, n, vchunks, fchunks in (_QUICK if args.quick else _FULL):
    k_init, k_x = jax.random.split(jax.random.PRNGKey(0))
    state = _model_state(name, kw, shape, k_init)
    params = sum(a.size for a in jax.tree_util.tree_leaves(state.variables["params"]))
    x = jax.random.normal(k_x, (n, *shape))
    repeats = 2 if name == "resnet18" and not args.quick else 3
    # Same numbers from all three (a guard that the timed functions are the same quantity).
    ref = _chunk_norms(state, x[:4])
    assert jnp.allclose(_factorised(state, x[:4]), ref, rtol=1e-4), "factorised ≠ vmap"
    singles = [x[i] for i in range(n)]
    calls = {("loop", 1): lambda: [_one_norm(state, s) for s in singles]}
    calls.update({("vmap", c): _chunked(_chunk_norms, state, x, c) for c in vchunks})
    calls.update({("fact", c): _chunked(_factorised, state, x, c) for c in fchunks})
    calls.update({("bound", c): _chunked(_batched_fwd_bwd, state, x, c) for c in fchunks})
    rates = _interleaved_rates(calls, n, repeats)
    best = lambda kind: max((r, c) for (k, c), r in rates.items() if k == kind)
    (loop, _), (vmap, vchunk), (fact, fchunk), (bound, _) = map(best, ("loop", "vmap", "fact",
                                                                        "bound"))
    pct = lambda r: 100.0 * r / bound
    rows.append({"model": name, "input": "x".join(map(str, shape)), "params": params,
                 "samples": n, "bound_s": bound, "factorised_s": fact, "f_pct": pct(fact),
                 "f_chunk": fchunk, "vmap_s": vmap, "v_pct": pct(vmap), "v_chunk": vchunk,
                 "loop_s": loop, "loop_pct": pct(loop),
                 "speedup_vs_best": fact / max(vmap, loop)})
  return rows
