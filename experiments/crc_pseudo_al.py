"""CRC's pseudo-AL setting (§4.3.1, Table 3) — a diagnostic, not an active-learning method.

    python -m experiments.crc_pseudo_al --dataset=digits --per_class=1 --initial_per_class=2

Every query is one candidate group of G = Q = R·C images holding R images of each class
(CRC searched over such groups); the initial pool holds R0 images per class. Building the
groups needs the candidates' true labels, which acquisitions never see (`SelectContext` has
none): this harness reads them from the oracle and passes them explicitly to
`al_jax.acquisition.crc.select_pseudo_al`. Results go to the workdir as for any run.
"""

import os
import sys
import tempfile
import time

import numpy as np
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("method", "crc", "A method whose acquisition is crc (crc, crc_fixmatch).")
flags.DEFINE_string("dataset", "digits", "Dataset name.")
flags.DEFINE_string("preset", "cpu", "Preset: cpu or paper.")
flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
flags.DEFINE_integer("per_class", 1, "R: images of each class per query (Q = G = R·C).",
                     lower_bound=1)
flags.DEFINE_integer("initial_per_class", 2, "R0: images of each class in the initial pool.",
                     lower_bound=1)
flags.DEFINE_integer("cycles", 3, "Training rounds.", lower_bound=1)
flags.DEFINE_integer("epochs", None, "Epochs per cycle (default: the preset's).",
                     lower_bound=1)
flags.DEFINE_string("workdir", None, "Output directory (default: a temporary directory).")


def pseudo_al_select(per_class: int):
  """A `select_fn` for `ActiveLearner`: CRC over class-balanced groups of `per_class` images
  of each class, built from the oracle's labels (handed over explicitly)."""
  # JAX is imported here, not at the top, so that a flag error is reported before JAX starts
  # (as for experiments.main).
  import jax

  from al_jax import ALError
  from al_jax.acquisition import SelectContext, Selection
  from al_jax.acquisition import crc as crc_lib

  def select(learner, cycle, state, pool, prev_variables):
    del prev_variables  # CRC scores the current model only
    if not isinstance(learner.acquisition, crc_lib.CRC):
      raise ALError(f"pseudo-AL needs the crc acquisition, not {learner.config.acquisition!r}")
    t0 = time.perf_counter()
    candidates = pool.unlabeled
    ctx = SelectContext(state=learner.objective.model_state(state), x_all=learner.x_dev,
                        labeled=pool.labeled, candidates=candidates, prep=learner.prep,
                        chunk_size=learner.config.eval.chunk_size, dp=learner.dp, cycle=cycle)
    labels = learner.y_train[candidates]  # the oracle's labels, handed over explicitly
    idx = crc_lib.select_pseudo_al(learner.acquisition, ctx, labels, per_class,
                                   learner.dataset.num_classes,
                                   jax.random.fold_in(learner.k_acq, cycle))
    # A batch-mode selector: scoring and choosing are one step (as in `acquire`).
    return Selection(indices=np.asarray(idx, np.int64), candidates=candidates, scores=None,
                     score_seconds=0.0, select_seconds=time.perf_counter() - t0)

  return select


def make_learner(config, per_class, workdir=None, log=print):
  """An ActiveLearner whose selection is CRC over class-balanced groups (labels passed in)."""
  from al_jax.loop import ActiveLearner
  return ActiveLearner(config, workdir, log, select_fn=pseudo_al_select(per_class))


def main(argv):
  from al_jax import ALError
  from al_jax.data import DATASETS
  from experiments import cli
  from experiments.configs import cpu, get_config
  if len(argv) > 1:
    cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    cli.check_dir_or_new("--workdir", FLAGS.workdir)
    config = get_config(FLAGS.method, FLAGS.dataset, FLAGS.preset)
    if config.acquisition != "crc":
      raise ALError(f"--method={FLAGS.method}: pseudo-AL needs a method whose acquisition is "
                    f"crc (crc, crc_fixmatch), not {config.acquisition!r}")
    num_classes = DATASETS.get(FLAGS.dataset)(data_dir=config.get("data_dir") or None,
                                              seed=FLAGS.seed).num_classes
    over = {"al.initial": FLAGS.initial_per_class * num_classes, "al.class_balanced": True,
            "al.budget": FLAGS.per_class * num_classes, "al.cycles": FLAGS.cycles,
            "acquisition_kwargs.group_size": FLAGS.per_class * num_classes}
    if FLAGS.epochs:
      over["train.epochs"] = FLAGS.epochs
    cpu.apply_overrides(config, over)
    config.seed = FLAGS.seed
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="al_jax_pseudo_al_")
    rows = make_learner(config, FLAGS.per_class, workdir).run()
  except ALError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  for r in rows:
    print(f"{r['num_labeled']} labels ({r['num_labeled'] // num_classes} per class): "
          f"test accuracy {r['test_accuracy']:.4f}")
  print(f"results in {os.path.join(workdir, 'results.jsonl')}")


if __name__ == "__main__":
  from experiments import cli as _cli
  _cli.run(main)
