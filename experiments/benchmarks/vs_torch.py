"""al_jax beside a PyTorch eager reference of the same networks (`torch_reference`).

    python -m experiments.benchmark --sections=vs_torch [--quick]

For the small CNN on 28×28×1 (the cpu preset's 28×28 model: widths (32, 64, 128), flatten,
Adam 2e-3, batch 32) and the CIFAR ResNet-18 on 32×32×3 (the paper preset's: SGD 0.1,
momentum 0.9, weight decay 5e-4; batch 64, half the preset's 128, to fit a 2-core machine),
with the same weights in both frameworks (al_jax's initialisation ported by
`torch_reference.port_variables`, and the inference logits checked to agree before anything
is timed):

* train: supervised steps/s (normalise, train-mode forward, cross-entropy, backward,
  optimiser update; no augmentation in either, which PyTorch code does in its data loader);
  al_jax's jitted `Supervised.train_step`, PyTorch eager (`torch_reference.train_step`).
* entropy: pool scoring samples/s; al_jax's `acquire` path (`map_chunks` of the entropy
  score in fixed chunks), PyTorch batched under `torch.no_grad()` with the same batch size.
* gradnorm: per-sample ‖∇_θ H‖ samples/s (sum of per-tensor norms, the public code's);
  al_jax's default `entropy_gradnorm` (factorised, `map_chunks`), PyTorch's batch-1 backward
  loop of LPLgrad's public code.

Rates are medians over interleaved rounds (al_jax, PyTorch, PyTorch 1-thread, al_jax, ...),
after one warm-up call each (al_jax's compile is not timed), so a load change on a shared
machine hits all sides alike; `ratio` = al_jax / PyTorch (> 1: al_jax faster). PyTorch gets
as many threads as XLA:CPU's pool has: the cores the process may run on (`taskset -c 0
python -m experiments.benchmark ...` compares both on one core). `torch_1t`/`ratio_1t`
repeat PyTorch with one thread: on a machine shared beyond its cores, OpenMP's spinning
barriers made 2-thread PyTorch up to 10× slower than 1-thread (BUILD_NOTES "PyTorch
reference"), so both are shown. `n` is the batch (train) or the samples scored; `load1` the
1-minute load average when the model's rows start; `logit_err` the largest |Δ logit| of the
weight-port check. `--quick`: fewer samples and rounds, and ResNet-18 at width 1/4 with batch
32. Without PyTorch the section prints how to install it and returns no rows.
"""

import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks import section
from experiments.benchmarks import torch_reference as tr

# model, kwargs beyond the preset's, input, (method, dataset, preset) giving model + optimiser,
# train batch, train steps per round, pool for entropy, chunk, gradnorm samples, gradnorm chunk.
_FULL = (
    ("small_cnn", {}, (28, 28, 1), ("entropy", "fashion_mnist", "cpu"), 32, 10, 4096, 256,
     128, 64),
    ("resnet18", {}, (32, 32, 3), ("lplgrad", "cifar10", "paper"), 64, 1, 256, 128, 16, 16),
)
_QUICK = (
    ("small_cnn", {}, (28, 28, 1), ("entropy", "fashion_mnist", "cpu"), 32, 5, 512, 256,
     64, 64),
    ("resnet18", {"width_multiplier": 0.25}, (32, 32, 3), ("lplgrad", "cifar10", "paper"), 32,
     2, 256, 128, 16, 16),
)
_ROUNDS = {False: 3, True: 2}


def _median_rates(fns, items, rounds):
  """Interleaved rounds of each zero-argument fn (blocking); median items/s per name."""
  secs = {k: [] for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      t = time.perf_counter()
      fn()
      secs[k].append(time.perf_counter() - t)
  return {k: items[k] / statistics.median(v) for k, v in secs.items()}


def _with_threads(fn, n):
  """fn run with PyTorch's intra-op pool set to n threads (restored after)."""
  import torch

  def run():
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
      return fn()
    finally:
      torch.set_num_threads(before)
  return run


def _rates(jax_fn, torch_fn, n, rounds):
  """al_jax, PyTorch (all cores) and PyTorch (1 thread) items/s, interleaved, and ratios."""
  r = _median_rates({"jax": jax_fn, "torch": torch_fn, "torch_1t": _with_threads(torch_fn, 1)},
                    {"jax": n, "torch": n, "torch_1t": n}, rounds)
  return {"al_jax": r["jax"], "torch": r["torch"], "torch_1t": r["torch_1t"],
          "ratio": r["jax"] / r["torch"], "ratio_1t": r["jax"] / r["torch_1t"]}


def _setup(name, extra, shape, preset, seed=0):
  from al_jax.data import Preprocess
  from al_jax.models import get_model
  from al_jax.objectives.supervised import Supervised
  from experiments.configs import get_config
  cfg = get_config(*preset)
  kwargs = {**cfg.model.kwargs.to_dict(), **extra}
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
  prep = Preprocess(mean=(0.5,) * shape[-1], std=(0.25,) * shape[-1])
  obj = Supervised(model=get_model(name, 10, **kwargs), prep=prep, num_classes=10,
                   optim_cfg=cfg.optim, epochs=cfg.train.epochs)
  x = np.random.default_rng(seed).integers(0, 256, (8, *shape), dtype=np.uint8)
  state = obj.init(jax.random.PRNGKey(seed), jnp.asarray(x[:1]))
  tmodel = tr.build(name, 10, shape, **kwargs)
  tr.load_variables(tmodel, {"params": state.params, "batch_stats": state.batch_stats})
  # The guard that both sides run the same network: inference logits on the ported weights.
  lj = np.asarray(obj.apply_model({"params": state.params, "batch_stats": state.batch_stats},
                                  prep.eval(jnp.asarray(x)))[0])
  lt = tr.eval_logits(tmodel, tr.to_nchw(x), prep.mean, prep.std).numpy()
  err = float(np.max(np.abs(lj - lt)))
  assert err < 1e-4, f"{name}: ported logits differ by {err}"
  return cfg, obj, state, tmodel, prep, err


def _train_row(name, obj, state, tmodel, cfg, prep, shape, batch, steps, rounds):
  import torch
  rs = np.random.default_rng(1)
  x = rs.integers(0, 256, (batch, *shape), dtype=np.uint8)
  y = np.arange(batch) % 10
  labeled = {"x": jnp.asarray(x), "y": jnp.asarray(y, jnp.int32), "mask": jnp.ones(batch)}
  step = jax.jit(obj.train_step, donate_argnums=0)  # as the loop's (al_jax.training)
  key = jax.random.PRNGKey(2)
  box = {"s": jax.tree_util.tree_map(jnp.copy, state)}  # the step donates its input

  def jax_steps():
    s = box["s"]
    for _ in range(steps):
      s, _ = step(s, labeled, None, key)
    jax.block_until_ready(s)
    box["s"] = s

  opt = tr.make_optimizer(tmodel, cfg.optim)
  xt, yt = tr.to_nchw(x), torch.as_tensor(y)
  clip = float(cfg.optim.get("grad_clip", 0.0))

  def torch_steps():
    for _ in range(steps):
      tr.train_step(tmodel, opt, xt, yt, prep.mean, prep.std, clip)

  t = time.perf_counter()
  jax_steps()
  compile_s = time.perf_counter() - t
  torch_steps()
  return {"task": "train_step", "unit": "steps/s", "n": batch,
          **_rates(jax_steps, torch_steps, steps, rounds), "compile_s": compile_s}


def _acq_rows(name, obj, state, tmodel, prep, shape, pool, chunk, gn_n, gn_chunk, rounds):
  from al_jax import acquisition as acq_lib
  from al_jax.acquisition.base import map_chunks
  mstate = obj.model_state(state)
  x = np.random.default_rng(3).integers(0, 256, (pool, *shape), dtype=np.uint8)
  x_all, xt = jnp.asarray(x), tr.to_nchw(x)
  rows = []
  plan = (("entropy", acq_lib.ACQUISITIONS.get("entropy")(), pool, chunk,
           lambda: tr.entropy_scores(tmodel, xt, prep.mean, prep.std, chunk)),
          ("gradnorm", acq_lib.ACQUISITIONS.get("entropy_gradnorm")(norm="sum"), gn_n, gn_chunk,
           lambda: tr.entropy_gradnorms(tmodel, xt[:gn_n], prep.mean, prep.std, "sum")))
  for task, acq, n, c, torch_fn in plan:
    idx = np.arange(n)
    jax_fn = lambda: map_chunks(acq.score, mstate, x_all, idx, prep, c)  # host arrays: blocks
    t = time.perf_counter()
    sj = jax_fn()
    compile_s = time.perf_counter() - t
    st = torch_fn().numpy()
    # Same quantity on both sides (float32 rounding apart).
    np.testing.assert_allclose(sj, st, rtol=1e-3, atol=1e-5, err_msg=f"{name} {task}")
    rows.append({"task": task, "unit": "samples/s", "n": n,
                 **_rates(jax_fn, torch_fn, n, rounds), "compile_s": compile_s})
  return rows


@section("vs_torch")
def vs_torch(args):
  if not tr.available():
    print(f"vs_torch: PyTorch is not installed; {tr.INSTALL_HINT}")
    return []
  import torch
  # The cores this process may run on (`taskset` narrows them; XLA:CPU sizes its pool so).
  threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  torch.set_num_threads(threads)
  rows = []
  rounds = _ROUNDS[bool(args.quick)]
  for (name, extra, shape, preset, batch, steps, pool, chunk, gn_n,
       gn_chunk) in (_QUICK if args.quick else _FULL):
    load = os.getloadavg()[0]
    cfg, obj, state, tmodel, prep, err = _setup(name, extra, shape, preset)
    label = name + ("" if not extra else "(" + ",".join(f"{k}={v}" for k, v in extra.items())
                    + ")")
    head = {"model": label, "input": "x".join(map(str, shape))}
    # Scores first: they compare both sides' numbers on the same (ported) weights, which
    # training then changes.
    got = _acq_rows(name, obj, state, tmodel, prep, shape, pool, chunk, gn_n, gn_chunk, rounds)
    got += [_train_row(name, obj, state, tmodel, cfg, prep, shape, batch, steps, rounds)]
    for r in got:
      rows.append({**head, **r, "threads": threads, "load1": round(load, 1),
                   "logit_err": err})
  return rows
