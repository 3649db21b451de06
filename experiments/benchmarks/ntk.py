"""Full-layer empirical NTK: structured (per-layer factors) vs Jacobian contraction.

    python -m experiments.benchmark --sections=ntk [--quick]

The fast-kernel setting: the traced eNTK of 220 samples (--quick: 44) under a 28×28 small CNN
widened to ~0.4M parameters (widths (64, 128, 256), hidden 128), all layers. Each method
runs in a fresh process so its peak resident memory (VmHWM, including the ~0.35 GB of the
JAX runtime and model) is its own: "first_s" includes compilation, "second_s" is a second
call with the same shapes. "rel_err" is max |K − K_jacobian| / max |K_jacobian| against the
float64-contracted Jacobian path.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from experiments.benchmarks import section

_MODEL = dict(widths=(64, 128, 256), hidden=128)
_METHODS = ("structured", "jacobian")


def _worker(method: str, n: int, out: str) -> None:
  import jax
  from al_jax import ntk
  from al_jax.models import get_model
  model = get_model("small_cnn", 10, **_MODEL)
  x = jax.random.normal(jax.random.PRNGKey(1), (n, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  f = ntk.ClassifierFn(lambda v, xx, **kw: model.apply(v, xx, train=False), "all")
  p, rest = f.split(variables)
  times = []
  for _ in range(2 if method == "structured" else 1):
    t = time.perf_counter()
    k = np.asarray(ntk.ntk(f, p, x, rest=rest, method=method))
    times.append(time.perf_counter() - t)
  hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
  np.save(out + ".npy", k)
  with open(out + ".json", "w") as fh:
    json.dump({"params": int(sum(a.size for a in jax.tree_util.tree_leaves(p))),
               "first_s": times[0], "second_s": times[-1] if len(times) > 1 else None,
               "peak_rss_mb": hwm / 1024}, fh)


@section("ntk")
def ntk_full_layer(args):
  n = 44 if args.quick else 220
  rows, kernels = [], {}
  with tempfile.TemporaryDirectory() as tmp:
    for method in _METHODS:
      out = os.path.join(tmp, method)
      subprocess.run([sys.executable, "-m", "experiments.benchmarks.ntk", method, str(n), out],
                     check=True)
      with open(out + ".json") as fh:
        row = json.load(fh)
      kernels[method] = np.load(out + ".npy")
      rows.append({"method": method, "samples": n, **row})
  ref = kernels["jacobian"]
  for r in rows:
    r["rel_err"] = float(np.abs(kernels[r["method"]] - ref).max() / np.abs(ref).max())
    if r["second_s"] is None:
      r["second_s"] = ""
  return rows


if __name__ == "__main__":
  _worker(sys.argv[1], int(sys.argv[2]), sys.argv[3])
