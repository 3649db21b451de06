"""Loss-estimation figures of score-based acquisitions (TOD Figs. 5–6, CrtCl's critic).

    python -m experiments.loss_estimation --methods=tod,crtcl --dataset=digits --seeds=0,1,2 \\
        --workdir=/tmp/loss_est
    # prints, per method and cycle, mean ± std over seeds of: Spearman(score, true loss) on the
    # unlabeled probe, top-k overlap at k = budget, and AUROC of the score at flagging
    # misclassified test points (for the critic acquisition: the critic's AUROC at telling
    # correct from incorrect test predictions), with least confidence as a reference.

Each (method, seed) is a normal cpu-preset run with `--diagnostics` (its workdir holds
`diagnostics/cycle_K.json`); an existing finished workdir is read instead of rerun.
"""

import json
import os

import numpy as np
from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", ["tod", "crtcl"], "Methods (score-based acquisitions).")
flags.DEFINE_string("dataset", "digits", "Dataset.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_string("preset", "cpu", "Preset.")
flags.DEFINE_string("workdir", "/tmp/al_jax_loss_estimation", "Parent of the run workdirs.")


def _run(method, seed):
  from al_jax import loop
  from experiments.configs import get_config
  wd = os.path.join(FLAGS.workdir, f"{method}_{FLAGS.dataset}_s{seed}")
  cfg = get_config(method, FLAGS.dataset, FLAGS.preset)
  cfg.seed, cfg.diagnostics = int(seed), True
  done = os.path.join(wd, "diagnostics", f"cycle_{cfg.al.cycles - 1}.json")
  if not os.path.exists(done):
    resume = os.path.exists(os.path.join(wd, "config.json"))
    loop.run(cfg, wd, resume=resume, log=lambda s: None)
  reps = []
  for k in range(cfg.al.cycles):
    with open(os.path.join(wd, "diagnostics", f"cycle_{k}.json")) as f:
      reps.append(json.load(f))
  return reps


def _fmt(vals):
  vals = np.array([np.nan if v is None else v for v in vals], float)
  return f"{np.nanmean(vals):+.3f} ± {np.nanstd(vals):.3f}"


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
  for method in FLAGS.methods:
    runs = [_run(method, s) for s in FLAGS.seeds]
    print(f"\n## {method} on {FLAGS.dataset} ({FLAGS.preset}), seeds {','.join(FLAGS.seeds)}")
    print("cycle | labeled | spearman(score, loss) unl. | top-k@budget unl. | "
          "AUROC(score → incorrect) test | LC spearman unl. | LC AUROC test")
    for k in range(len(runs[0])):
      reps = [r[k] for r in runs]
      g = lambda probe, src, key: [rep[probe][src][key] for rep in reps]
      print(f"{k} | {reps[0]['num_labeled']} | {_fmt(g('unlabeled', 'score', 'spearman'))} | "
            f"{_fmt(g('unlabeled', 'score', 'top_k_budget'))} | "
            f"{_fmt(g('test', 'score', 'auroc_incorrect'))} | "
            f"{_fmt(g('unlabeled', 'least_confidence', 'spearman'))} | "
            f"{_fmt(g('test', 'least_confidence', 'auroc_incorrect'))}")


if __name__ == "__main__":
  app.run(main)
