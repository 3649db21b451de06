"""CRC selection time (CRC's speed target): 10,000-point pool, 200 labeled, G = 20, Q = 100.

    python -m experiments.benchmark --sections=crc

Fashion-MNIST 28×28 (Debian files, else TFDS), the cpu preset's small CNN (widths (32, 64),
hidden 128) trained briefly with Mean Teacher on the 200 labeled points, then
`acquire(crc)` over a random 10,000-point unlabeled subset, with the last-layer eNTK
(CRC's default, Jacobian path) and the all-layer eNTK from per-layer factors
(`method="structured"`, fast kernels); --quick (1,000 points) also times the all-layer
Jacobian path (measured 827 s at 10,000 points). "first_s" includes compilation;
"second_s" is a second selection with the same shapes (a later cycle's cost).
"""

import time

import jax

from experiments.benchmarks import section


@section("crc")
def crc_selection(args):
  from al_jax import acquisition as acq_lib
  from al_jax.acquisition import crc as crc_lib
  from al_jax.loop import ActiveLearner
  from experiments.configs import cpu, get_config
  pool = 1000 if args.quick else 10000
  cfg = get_config("crc", "fashion_mnist", "cpu")
  cpu.apply_overrides(cfg, {"al.initial": 200, "al.budget": 100, "al.cycles": 2,
                            "train.epochs": 3, "al.subset": pool, "log_every": 1000})
  learner = ActiveLearner(cfg, workdir=None, log=lambda s: None)
  p0 = learner.initial_pool()
  state = learner.train(0, p0)
  mstate = learner.objective.model_state(state)
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(mstate.variables["params"]))
  rows = []
  runs = [("last", "jacobian"), ("all", "structured")]
  if args.quick:
    runs.append(("all", "jacobian"))
  for layers, method in runs:
    acq = crc_lib.CRC(group_size=20, layers=layers, method=method)
    times = []
    for rep in range(1 if (layers, method) == ("all", "jacobian") else 2):
      t = time.perf_counter()
      out = acq_lib.acquire(acq, mstate, learner.x_dev, p0, 100, jax.random.PRNGKey(rep),
                            learner.prep, cfg.eval.chunk_size, pool)
      times.append(time.perf_counter() - t)
    rows.append({"layers": layers, "method": method, "pool": len(out.candidates),
                 "labeled": p0.num_labeled, "G": 20, "Q": 100,
                 "groups": len(out.candidates) // 20, "params": int(n_params),
                 "first_s": round(times[0], 2),
                 "second_s": round(times[1], 2) if len(times) > 1 else ""})
  return rows
