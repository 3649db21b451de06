"""Studies: every method × seed under identical initial pools per seed (paired design).

A study lives in one directory: `study.json` (what it is) and one run workdir per
(method, seed) at `<method>/seed_<s>/`. Re-running the study command with
`--resume` skips finished runs and resumes killed ones, so a study survives
kills as a whole. Because the initial pool depends only on (seed, dataset,
initial size), all methods of a seed start from the same labeled set.
"""

import json
import os
from typing import Callable, Dict, List

from al_jax import ALError
from al_jax import loop
from al_jax import results as results_lib


def run_dirname(method: str, seed: int) -> str:
  return os.path.join(method.replace("/", "_"), f"seed_{seed}")


def run_study(configs: List, workdir: str, resume: bool,
              log: Callable[[str], None] = loop.logger.info) -> Dict[str, List[Dict]]:
  """Runs (or continues) every config; returns {run dir: result rows}."""
  spec = {"runs": [{"method": c.method, "seed": c.seed, "dir": run_dirname(c.method, c.seed)}
                   for c in configs],
          "dataset": configs[0].dataset, "preset": configs[0].preset}
  path = os.path.join(workdir, "study.json")
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old != spec:
      raise ALError(f"workdir {workdir} holds a different study; use another --workdir")
    if not resume:
      raise ALError(f"workdir {workdir} already holds this study; pass --resume to continue it")
  else:
    if resume:
      raise ALError(f"--resume: workdir {workdir} holds no study (no study.json)")
    if os.path.isdir(workdir) and os.listdir(workdir):
      raise ALError(f"workdir {workdir} is not empty and holds no study; choose another")
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(spec, f, indent=2)
  out = {}
  for i, c in enumerate(configs):
    rd = os.path.join(workdir, run_dirname(c.method, c.seed))
    wd = results_lib.Workdir(rd)
    rows = wd.read_results() if wd.holds_experiment() else []
    if len(rows) >= c.al.cycles:
      log(f"[{i + 1}/{len(configs)}] {c.method} seed {c.seed}: finished, skipped")
      out[rd] = rows
      continue
    log(f"[{i + 1}/{len(configs)}] {c.method} seed {c.seed}: "
        + ("resuming" if wd.holds_experiment() else "starting"))
    out[rd] = loop.run(c, rd, resume=wd.holds_experiment(), log=log)
  return out
