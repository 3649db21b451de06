"""Saves a small classifier's eNTKs for the neural-tangents cross-check (main environment).

    python -m experiments.ntk_crosscheck OUT.npz

Builds al_jax's `mlp` (Flax; hidden (16,), 10 classes) on 12 `digits` images and saves its
parameters, the normalised inputs, its logits and our traced eNTKs over the last layer and
over all layers (Jacobian path, float64 contraction). `tests/ntk_crosscheck/compare_nt.py`
reloads them in a pinned environment where neural-tangents imports and compares
`nt.empirical_ntk_fn` (all three implementations) and al_jax.ntk under that old jax.
"""

import sys

import jax
import numpy as np


def main(out: str) -> None:
  from al_jax import ntk
  from al_jax.data import DATASETS, Preprocess
  from al_jax.models import get_model
  ds = DATASETS.get("digits")()
  prep = Preprocess.for_dataset(ds, augment=False)
  x = prep.eval(ds.x_train[:12])
  model = get_model("mlp", 10, hidden=(16,))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  apply_fn = lambda v, x, **kw: model.apply(v, x, train=False)
  arrays = {"x": np.asarray(x), "logits": np.asarray(apply_fn(variables, x)[0])}
  for layer, leaves in variables["params"].items():
    for name, value in leaves.items():
      arrays[f"param/{layer}/{name}"] = np.asarray(value)
  for layers in ntk.LAYERS:
    f = ntk.ClassifierFn(apply_fn, layers)
    p, rest = f.split(variables)
    arrays[f"ntk_{layers}"] = ntk.ntk(f, p, x, None, rest, method="jacobian")
    arrays[f"ntvp_{layers}"] = ntk.ntk(f, p, x, None, rest, method="ntvp")
  np.savez(out, jax_version=jax.__version__, **arrays)
  print(f"saved {out}: eNTKs of mlp(16) on {x.shape[0]} digits, jax {jax.__version__}")


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python -m experiments.ntk_crosscheck OUT.npz")
  main(sys.argv[1])
