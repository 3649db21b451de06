"""Paper presets as tables: every (method, dataset) of `experiments/configs/paper.py` asserts the
numbers its paper states, with the table/section in the test id, so a wrong preset value fails.

Each row is (method, dataset, source, {dotted config key: paper value}). Values a paper leaves
open and that come from its public code say so in the source string.
"""

import pytest

from experiments.configs import get_config
from experiments.configs.paper import PAPER_PRESETS


def _get(config, dotted):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _norm(v):
  """ConfigDict values come back as lists/ConfigDicts; compare as plain tuples/dicts."""
  if isinstance(v, (list, tuple)):
    return tuple(_norm(x) for x in v)
  if hasattr(v, "to_dict"):
    return {k: _norm(x) for k, x in v.to_dict().items()}
  if isinstance(v, dict):
    return {k: _norm(x) for k, x in v.items()}
  return v


# --- TOD, LPLgrad / LL4AL / Ent-GradNorm / core-set, CrtCl, PT4AL --------------------------
ROWS_SUPERVISED_FAMILIES = []

# --- ARAL, VAAL, CRC (Mean Teacher, FixMatch) and their baselines ----------------------------
ROWS_GENERATIVE_SSL = []

ROWS = ROWS_SUPERVISED_FAMILIES + ROWS_GENERATIVE_SSL


@pytest.mark.parametrize("method,dataset,source,want", ROWS,
                         ids=[f"{m}-{d}-{s}" for m, d, s, _ in ROWS])
def test_paper_preset_holds_the_papers_numbers(method, dataset, source, want):
  c = get_config(method, dataset, "paper")
  for key, value in want.items():
    assert _norm(_get(c, key)) == _norm(value), f"{method}/{dataset} {key} ({source})"
