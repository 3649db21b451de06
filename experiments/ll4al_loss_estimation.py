"""How well does LL4AL's loss predictor rank unlabeled samples by their true loss?

    python -m experiments.ll4al_loss_estimation --dataset=digits [--method=ll4al] [--preset=cpu]

Runs the method's AL cycles; after each cycle's training it scores the unlabeled pool (or a
random probe of it) with the loss-prediction module and with the softmax entropy, and
reports the Spearman rank correlation of each with the true per-sample cross-entropy, as the
TOD paper's Fig. 6 compares loss estimators. The true losses need the labels of unlabeled
points: only this harness reads them (`y_train`), never the method. It also prints the
module's ranking loss over the first and last epochs of each cycle.
"""

import numpy as np
from absl import app, flags

from al_jax.diagnostics import spearman

FLAGS = flags.FLAGS
flags.DEFINE_string("method", "ll4al", "A method whose objective is loss_pred.")
flags.DEFINE_string("dataset", "digits", "Dataset name.")
flags.DEFINE_string("preset", "cpu", "Preset: cpu or paper.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("probe", 0, "Unlabeled points scored per cycle (0 = all).")
flags.DEFINE_integer("cycles", None, "Override the preset's number of cycles.")


def _logits(state, x, rng):
  del rng
  return state(x)[0]


def run(method, dataset, preset="cpu", seed=0, probe=0, cycles=None, log=print):
  """Runs the AL cycles; returns one dict per cycle with the correlations."""
  import jax
  from al_jax import ALError
  from al_jax import acquisition as acq_lib
  from al_jax.loop import ActiveLearner
  from experiments.configs import get_config
  config = get_config(method, dataset, preset)
  if config.objective != "loss_pred":
    raise ALError(f"method {method!r} has no loss predictor (objective {config.objective!r})")
  config.seed, config.log_every = seed, 1
  if cycles:
    config.al.cycles = cycles
  lines = []
  learner = ActiveLearner(config, log=lines.append)
  predicted = acq_lib.ACQUISITIONS.get("predicted_loss")()
  entropy = acq_lib.ACQUISITIONS.get("entropy")()
  chunk = config.eval.chunk_size
  pool, prev, rows = learner.initial_pool(), None, []
  for cycle in range(config.al.cycles):
    lines.clear()
    state = learner.train(cycle, pool, prev)
    module = [float(l.split("module_loss ")[1].split(" ")[0]) for l in lines
              if "module_loss" in l and "| epoch" in l]
    ms = learner.objective.model_state(state)
    idx = pool.unlabeled
    if 0 < probe < len(idx):
      idx = np.sort(np.random.default_rng([seed, cycle]).choice(idx, probe, replace=False))
    score = lambda fn: acq_lib.map_chunks(fn, ms, learner.x_dev, idx, learner.prep, chunk)
    logits = score(_logits)
    true_ce = np.asarray(jax.nn.logsumexp(logits, -1) -
                         np.take_along_axis(logits, learner.y_train[idx][:, None], 1)[:, 0])
    pred, ent = score(predicted.score), score(entropy.score)
    test = learner.evaluate(state, learner.dataset.x_test, learner.dataset.y_test)
    row = {"cycle": cycle, "labeled": pool.num_labeled, "probe": len(idx),
           "module_loss_first": module[0], "module_loss_last": module[-1],
           "spearman_predicted": spearman(pred, true_ce),
           "spearman_entropy": spearman(ent, true_ce), "test_accuracy": test["accuracy"]}
    rows.append(row)
    log(" | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                   for k, v in row.items()))
    if cycle + 1 < config.al.cycles:
      pool = pool.label(learner.select(cycle, state, pool)["indices"])
    prev = state
  return rows


def main(argv):
  del argv
  rows = run(FLAGS.method, FLAGS.dataset, FLAGS.preset, FLAGS.seed, FLAGS.probe, FLAGS.cycles)
  rho = [r["spearman_predicted"] for r in rows]
  print(f"mean Spearman(predicted loss, true CE) over {len(rows)} cycles: {np.mean(rho):.4f}; "
        f"entropy: {np.mean([r['spearman_entropy'] for r in rows]):.4f}")


if __name__ == "__main__":
  app.run(main)
