"""Runs in the pinned environment (jax 0.4.25 + neural-tangents 0.6.5); not a pytest file.

    python tests/ntk_crosscheck/compare_nt.py SAVED.npz

Rebuilds the saved `mlp` in plain jax.numpy (Dense → ReLU → Dense "head", as Flax's Dense:
x @ kernel + bias), checks it reproduces the saved logits, then compares with the saved
al_jax eNTKs (main environment, modern jax):
  * neural_tangents.empirical_ntk_fn, trace over classes, implementations 1, 2, 3, called
    through al_jax.ntk's own neural-tangents backend (`ntk.ntk(..., backend=...)`),
  * al_jax.ntk's native Jacobian and NTK-vector-product paths under this old jax.
Exit status 1 on any mismatch above 1e-5 relative to the kernel's largest entry.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from al_jax import ntk  # noqa: E402  (al_jax.ntk imports neither flax nor a newer jax API)

RTOL = 1e-5


def mlp(params, x, rest=None):
  del rest
  h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params["Dense_0"]["kernel"]
                  + params["Dense_0"]["bias"])
  return h @ params["head"]["kernel"] + params["head"]["bias"]


def mlp_last(head, x, rest):
  return mlp({"Dense_0": rest, "head": head}, x)


def main(path: str) -> int:
  import neural_tangents as nt
  d = np.load(path)
  params = {}
  for key in d.files:
    if key.startswith("param/"):
      _, layer, name = key.split("/")
      params.setdefault(layer, {})[name] = jnp.asarray(d[key])
  x = jnp.asarray(d["x"])
  print(f"pinned env: jax {jax.__version__}, neural-tangents {nt.__version__}, "
        f"numpy {np.__version__}; saved by jax {d['jax_version']}")
  failures = 0
  err = float(np.max(np.abs(np.asarray(mlp(params, x)) - d["logits"])))
  print(f"logits: max |diff| {err:.2e}")
  failures += err > 1e-5
  cases = {"last": (mlp_last, params["head"], params["Dense_0"]),
           "all": (mlp, params, None)}
  for layers, (f, p, rest) in cases.items():
    ref = d[f"ntk_{layers}"]
    scale = float(np.max(np.abs(ref)))
    got = {f"neural_tangents/{impl}": ntk.ntk(f, p, x, None, rest, method=impl,
                                              backend="neural_tangents")
           for impl in ("jacobian", "ntvp")}
    got["neural_tangents/structured"] = np.asarray(
        ntk.nt_kernel(f, p, x, None, rest, "structured"))
    got["al_jax/jacobian (jax 0.4.25)"] = ntk.ntk(f, p, x, None, rest, method="jacobian")
    got["al_jax/ntvp (jax 0.4.25)"] = ntk.ntk(f, p, x, None, rest, method="ntvp")
    got["al_jax/ntvp (saved)"] = d[f"ntvp_{layers}"]
    for name, k in got.items():
      rel = float(np.max(np.abs(np.asarray(k, np.float64) - ref))) / scale
      ok = rel <= RTOL and np.asarray(k).shape == ref.shape
      failures += not ok
      print(f"{layers:>4} layers | {name:<30} | max rel diff {rel:.2e} | "
            f"{'ok' if ok else 'MISMATCH'}")
  print("cross-check passed" if not failures else f"cross-check FAILED ({failures})")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1]))
