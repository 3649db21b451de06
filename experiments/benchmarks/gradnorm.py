"""Per-sample entropy-gradient-norm throughput (LPLgrad / Ent-GradNorm scoring).

    python -m experiments.benchmark --sections=gradnorm [--quick]

For each model, samples/s of three implementations of ‖∇_θ H(p(y|x))‖ per sample:
(a) `factorised`: per-layer norms from one batched backward pass (`al_jax.per_sample`,
    what `entropy_gradnorm(impl="factorised")` runs),
(b) `vmap(grad)` over sub-batches, the way `entropy_gradnorm` scores by default,
(c) a Python loop of one jitted single-sample `grad` per sample (the public code's loop,
    compiled). Chunk sizes are swept for (a) and (b) and the best is reported. Inputs are
random, parameters freshly initialised, BatchNorm in inference mode; only steady-state calls
are timed. The small CNN is widened to ~0.4M parameters (the fast-kernel benchmark setting).

`bound_s` is one batched forward+backward of the summed entropy to all parameters (at the
factorised chunk sizes, best): the forward and the backward to every layer output that any
per-sample method needs, plus the batched weight-gradient products, which the factorised path
replaces by its per-sample norm contractions. `*_pct` is each path's samples/s as % of it
(100% = per-sample norms for the price of one batched gradient), `speedup_vs_best` the
factorised path over the faster of (b) and (c).
"""

import jax
import jax.numpy as jnp

from al_jax.acquisition.gradnorm import entropy_grad_norm, factorised_entropy_grad_norms
from al_jax.models import get_model
from al_jax.outputs import entropy
from al_jax.state import ModelState
from experiments.benchmarks import section
from experiments.benchmarks.timing import time_fn

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


def _rate(fn, state, x, chunk, repeats):
  pieces = [x[i:i + chunk] for i in range(0, x.shape[0] - x.shape[0] % chunk, chunk)]
  t = time_fn(lambda: [fn(state, p) for p in pieces], repeats=repeats)
  return chunk * len(pieces) / t["best_s"], t["first_s"]


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
    loop = n / time_fn(lambda: [_one_norm(state, s) for s in singles],
                       repeats=repeats)["best_s"]
    vmap, vchunk = max((_rate(_chunk_norms, state, x, c, repeats)[0], c) for c in vchunks)
    fact, fchunk = max((_rate(_factorised, state, x, c, repeats)[0], c) for c in fchunks)
    bound = max(_rate(_batched_fwd_bwd, state, x, c, repeats)[0] for c in fchunks)
    pct = lambda r: 100.0 * r / bound
    rows.append({"model": name, "input": "x".join(map(str, shape)), "params": params,
                 "samples": n, "bound_s": bound, "factorised_s": fact, "f_pct": pct(fact),
                 "f_chunk": fchunk, "vmap_s": vmap, "v_pct": pct(vmap), "v_chunk": vchunk,
                 "loop_s": loop, "loop_pct": pct(loop),
                 "speedup_vs_best": fact / max(vmap, loop)})
  return rows
