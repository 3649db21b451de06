"""Per-method throughput: train steps, acquisition scoring/selection, pool-size scaling, compiles.

Sections:
  train        train-step images/s and compile seconds of every objective (small CNN on
               28×28×1, ResNet-18 on 32×32×3; `--quick`: small CNN only)
  acquisition  every registered acquisition: seconds and samples/s at pool sizes
               1k/4k/16k (small CNN; `--quick`: 1k/4k) and at 1k with ResNet-18
  recompiles   a short AL run per objective: train-step compilations per cycle
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from al_jax import acquisition as acq_lib
from al_jax import objectives as obj_lib
from al_jax.data import Pool, Preprocess
from al_jax.methods import METHODS
from al_jax.models import get_model
from experiments.benchmarks import section
from experiments.benchmarks.timing import time_fn
from experiments.configs import get_config

SHAPES = {"small_cnn": (28, 28, 1), "resnet18": (32, 32, 3)}


def _objective_names():
  return sorted({m.objective for m in METHODS.values()})


def _method_for(kind: str, name: str) -> str:
  return sorted(m for m, v in METHODS.items() if getattr(v, kind) == name)[0]


def build(objective: str, model: str, batch: int = 32, seed: int = 0):
  """An objective (with its cpu-preset settings), its initial state and fake uint8 data."""
  cfg = get_config(_method_for("objective", objective), "digits", "cpu")
  shape = SHAPES[model]
  obj = obj_lib.OBJECTIVES.get(objective)(
      model=get_model(model, 10), prep=Preprocess(mean=(0.5,) * shape[-1], std=(0.25,) * shape[-1]),
      num_classes=10, optim_cfg=cfg.optim, epochs=cfg.train.epochs,
      **cfg.objective_kwargs.to_dict())
  rs = np.random.default_rng(seed)
  x = rs.integers(0, 256, (batch, *shape), dtype=np.uint8)
  state = obj.init(jax.random.PRNGKey(seed), x[:1])
  return obj, state, x


@section("train")
def train_section(flags):
  rows = []
  models = ["small_cnn"] if flags.quick else ["small_cnn", "resnet18"]
  for model in models:
    batch = 32
    for name in _objective_names():
      obj, state, x = build(name, model, batch)
      y = jnp.asarray(np.arange(batch) % 10, jnp.int32)
      labeled = {"x": jnp.asarray(x), "y": y, "mask": jnp.ones(batch)}
      unl = {"x": jnp.asarray(x)} if obj.uses_unlabeled else None
      step = jax.jit(obj.train_step)
      key = jax.random.PRNGKey(1)
      t = time.perf_counter()
      state, _ = step(state, labeled, unl, key)
      jax.block_until_ready(state)
      compile_s = time.perf_counter() - t
      n = 3 if model == "resnet18" else 20
      t = time.perf_counter()
      for _ in range(n):
        state, m = step(state, labeled, unl, key)
      jax.block_until_ready(state)
      dt = (time.perf_counter() - t) / n
      rows.append({"model": model, "objective": name, "batch": batch,
                   "compile_s": compile_s, "step_s": dt, "images_per_s": batch / dt})
  return rows


@section("acquisition")
def acquisition_section(flags):
  rows = []
  sizes = (1000, 4000) if flags.quick else (1000, 4000, 16000)
  plan = [("small_cnn", s) for s in sizes] + ([] if flags.quick else [("resnet18", 1000)])
  for model, n_pool in plan:
    for name in acq_lib.ACQUISITIONS.names():
      obj_name = METHODS[_method_for("acquisition", name)].objective if any(
          v.acquisition == name for v in METHODS.values()) else "supervised"
      obj, state, _ = build(obj_name, model)
      shape = SHAPES[model]
      labeled_n = 200
      x_all = jnp.asarray(np.random.default_rng(0).integers(
          0, 256, (n_pool + labeled_n, *shape), dtype=np.uint8))
      y = np.arange(n_pool + labeled_n) % 10
      pool = Pool(y, np.arange(labeled_n))
      acq = acq_lib.ACQUISITIONS.get(name)(**_acq_kwargs(name))
      mstate = obj.model_state(state)
      if acq.needs_previous:
        mstate = mstate.replace(prev_variables=jax.tree_util.tree_map(lambda a: a * 0.99,
                                                                      mstate.variables))
      chunk = 32 if model == "resnet18" else 256
      run = lambda: acq_lib.acquire(acq, mstate, x_all, pool, 100, jax.random.PRNGKey(0),
                                    obj.prep, chunk_size=chunk)
      t = time.perf_counter()
      run()
      first = time.perf_counter() - t
      t = time.perf_counter()
      out = run()
      total = time.perf_counter() - t
      rows.append({"model": model, "acquisition": name, "pool": n_pool,
                   "first_call_s": first, "total_s": total,
                   "score_s": out.score_seconds, "select_s": out.select_seconds,
                   "samples_per_s": n_pool / total})
  return rows


def _acq_kwargs(name):
  cfg = get_config(_method_for("acquisition", name), "digits", "cpu") if any(
      v.acquisition == name for v in METHODS.values()) else None
  return cfg.acquisition_kwargs.to_dict() if cfg is not None else {}


@section("recompiles")
def recompiles_section(flags):
  """Train-step compilations per cycle in a short digits run, for each objective."""
  from al_jax.loop import ActiveLearner
  from experiments.configs.cpu import apply_overrides
  rows = []
  for name in _objective_names():
    cfg = get_config(_method_for("objective", name), "digits", "cpu")
    apply_overrides(cfg, {"al.cycles": 3, "train.epochs": 2})
    rs = ActiveLearner(cfg, log=lambda s: None).run()
    prev = 0
    for r in rs:
      rows.append({"objective": name, "cycle": r["cycle"], "num_labeled": r["num_labeled"],
                   "train_step_compiles": r["compiles"] - prev})
      prev = r["compiles"]
  return rows
