"""The linear-probe floor: logistic regression on raw pixels of random labeled images.

An AL study is only informative when its classifier learns more from the labels than a linear
model would: a network that trails logistic regression on the same number of random labels is
under-trained, and methods compared on it rank differently than in the papers' regime. Every
study report (`experiments.report`) shows this floor beside the methods' curves.

    python -m experiments.floors --dataset=fashion_mnist --labels=100,200,300,400,500 \\
        --seeds=0,1,2
    # per label count: mean ± std test accuracy of LogisticRegression(max_iter=2000)

Seed s labels the first n images of one random permutation of the training set (drawn from
`numpy.random.default_rng([s, n_train])`), so the label sets of one seed are nested, as an
AL run's are. Pixels are scaled to [0, 1]; the test set is the dataset's full test split.
"""

import json
import os
from typing import Dict, Sequence

import numpy as np
from absl import flags

from experiments import cli


def _flat(x: np.ndarray) -> np.ndarray:
  return x.reshape(len(x), -1).astype(np.float32) / 255.0


def linear_probe(dataset, labels: Sequence[int], seeds: Sequence[int]) -> Dict[int, list]:
  """{label count: [test accuracy per seed]} of logistic regression on random labels."""
  import warnings
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.linear_model import LogisticRegression
  x_train, x_test = _flat(dataset.x_train), _flat(dataset.x_test)
  out = {int(n): [] for n in labels}
  for s in seeds:
    perm = np.random.default_rng([int(s), len(x_train)]).permutation(len(x_train))
    for n in out:
      idx = perm[:n]
      if len(np.unique(dataset.y_train[idx])) < 2:
        out[n].append(float(np.mean(dataset.y_test == dataset.y_train[idx[0]])))
        continue
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=2000).fit(x_train[idx], dataset.y_train[idx])
      out[n].append(float(np.mean(clf.predict(x_test) == dataset.y_test)))
  return out


def cached_linear_probe(workdir: str, dataset_name: str, labels: Sequence[int],
                        seeds: Sequence[int], data_dir: str = "") -> Dict[int, list]:
  """`linear_probe`, cached in `workdir/floors.json` (keyed by dataset, labels and seeds)."""
  path = os.path.join(workdir, "floors.json")
  key = {"dataset": dataset_name, "labels": sorted(int(n) for n in labels),
         "seeds": sorted(int(s) for s in seeds)}
  if os.path.exists(path):
    try:
      with open(path) as f:
        cached = json.load(f)
      if cached.get("key") == key:
        return {int(n): v for n, v in cached["floors"].items()}
    except (OSError, ValueError, KeyError):
      pass
  from al_jax.data import DATASETS
  ds = DATASETS.get(dataset_name)(data_dir=data_dir or None, seed=0)
  floors = linear_probe(ds, key["labels"], key["seeds"])
  from al_jax.results import _atomic_write
  _atomic_write(path, json.dumps({"key": key, "floors": floors}, indent=2))
  return floors


FLAGS = flags.FLAGS


def define_flags():
  """The command-line flags, defined only when this module runs as a program, so that
  modules importing it (the ledger imports the report) keep their own flags."""
  flags.DEFINE_string("dataset", "digits", "Dataset name.")
  flags.DEFINE_string("data_dir", "", "TFDS data directory.")
  flags.DEFINE_list("labels", ["40", "80", "120", "160", "200"], "Label counts.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")


def main(argv):
  from al_jax import ALError
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    try:
      labels = [int(n) for n in FLAGS.labels]
    except ValueError:
      raise ALError(f"--labels must be positive integers, got {','.join(FLAGS.labels)}") from None
    if not labels or min(labels) < 1:
      raise ALError(f"--labels must be positive integers, got {','.join(FLAGS.labels)}")
    seeds = cli.parse_seeds(FLAGS.seeds)
    from al_jax.data import DATASETS
    ds = DATASETS.get(FLAGS.dataset)(data_dir=FLAGS.data_dir or None, seed=0)
    if max(labels) > len(ds.y_train):
      raise ALError(f"--labels {max(labels)} is more than the {len(ds.y_train)} training images")
  except ALError as e:
    cli.fail(e)
  for n, acc in linear_probe(ds, labels, seeds).items():
    a = np.array(acc)
    print(f"{FLAGS.dataset} {n:>6} labels: linear probe {a.mean():.4f} ± "
          f"{a.std(ddof=1) if len(a) > 1 else 0.0:.4f} (seeds {','.join(map(str, seeds))})")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
