"""Paper presets as tables: every (method, dataset) of `experiments/configs/paper.py` asserts the
numbers its paper states, with the table/section in the test id, so a wrong preset value fails.

Each row is (method, dataset, source, {dotted config key: paper value}). Values a paper leaves
open and that come from its public code say so in the source string.
"""

import pytest

from experiments.configs import get_config
from experiments.configs.paper import PAPER_PRESETS, PROTOCOL_EXEMPT
from experiments.configs.protocols import PROTOCOLS


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
_RESNET_SGD = {"model.name": "resnet18", "optim.name": "sgd", "optim.lr": 0.1,
               "optim.momentum": 0.9, "optim.weight_decay": 5e-4, "train.epochs": 200,
               "train.batch_size": 128}
_TOD_CODE = {  # siyuhuang/TOD config/{cifar10,cifar100,svhn}.py: START, ADDENDUM, SUBSET
    "cifar10": (5000, 2500, 25000), "cifar100": (5000, 2500, 25000),
    "svhn": (7324, 3662, 29302)}
_TOD_METHODS = ("tod", "tod_semi_only", "tod_active_only", "tod_emaod")
_LPL_TABLE2 = {"cifar10": (1000, 25000, 10000), "cifar100": (2500, 25000, 20000),
               "svhn": (1000, 25000, 10000)}  # B, R, A (Table II, high A)
_LPL_LR = {"cifar10": (0.1, (160,)), "cifar100": (0.1, (160,)), "svhn": (0.01, (40,))}
_CRTCL = {"cifar10": (1200, 200, 0.04), "cifar100": (1200, 200, 0.04),
          "svhn": (500, 500, 0.02)}  # start k, per-cycle t, γ (§V.A)


def _supervised_family_rows():
  rows = []
  for d, (start, budget, subset) in _TOD_CODE.items():
    for m in _TOD_METHODS:
      rows.append((m, d, "TOD Table 5", {**_RESNET_SGD, "al.cycles": 7}))
      rows.append((m, d, "TOD code config", {
          "al.initial": start, "al.budget": budget, "al.subset": subset,
          "optim.milestones": (160,), "train.augment": True, "train.crop_pad": 4,
          "train.flip": "on", "train.warm_start": True}))
      if m != "tod_active_only":
        rows.append((m, d, "TOD Table 5 alpha lambda", {
            "objective_kwargs.ema_decay": 0.999, "objective_kwargs.lam": 0.05,
            "train.unlabeled_batch_size": 128}))
    rows.append(("tod_active_only", d, "TOD Table 1 Base+Active",
                 {"objective": "supervised", "acquisition": "cod"}))
  for d, (b, r, a) in _LPL_TABLE2.items():
    lr, milestones = _LPL_LR[d]
    sched = {**_RESNET_SGD, "optim.lr": lr, "optim.milestones": milestones,
             "optim.gamma": 0.1, "al.initial": b, "al.budget": b, "al.subset": r,
             "al.cycles": a // b, "train.warm_start": True}
    for m in ("lplgrad", "ll4al", "ent_gradnorm", "coreset"):
      rows.append((m, d, "LPLgrad Tables I-II and sec IV-A", sched))
    loss_module = {"objective_kwargs.margin": 1.0, "objective_kwargs.weight": 1.0,
                   "objective_kwargs.detach_epoch": 120, "objective_kwargs.hidden": 128}
    rows.append(("ll4al", d, "LL4AL sec 4.1", {**loss_module,
                                               "objective_kwargs.module_lr_decay": True}))
    rows.append(("lplgrad", d, "LPLgrad Eq 2-4 and public main.py",
                 {**loss_module, "objective_kwargs.module_lr_decay": False}))
    rows.append(("lplgrad", d, "LPLgrad Eq 8", {"acquisition_kwargs.norm": "global"}))
  for d, (start, per_cycle, gamma) in _CRTCL.items():
    sched = {**_RESNET_SGD, "optim.milestones": (160,), "al.initial": start,
             "al.budget": per_cycle, "al.cycles": 7, "train.augment": True,
             "train.crop_pad": 0, "train.flip": "on"}
    rows.append(("crtcl", d, "CrtCl sec IV-A and V-A", {
        **sched, "objective_kwargs.gamma": gamma, "objective_kwargs.critic_lr": 1e-3,
        "objective_kwargs.stop_fraction": 130 / 200}))
    rows.append(("pt4al", d, "CrtCl sec V-A schedule, PT4AL rotation.py", {
        **sched, "al.subset": 0, "acquisition_kwargs.num_batches": 7,
        "acquisition_kwargs.model": "resnet18", "acquisition_kwargs.epochs": 120,
        "acquisition_kwargs.batch_size": 256}))
  for m in ("crtcl_loss_only", "crtcl_select_only"):
    rows.append((m, "cifar10", "CrtCl Figs 4-5 ablations", {
        **_RESNET_SGD, "al.initial": 1200, "al.budget": 200, "al.cycles": 7,
        "train.crop_pad": 0, "train.flip": "on"}))
  rows.append(("crtcl_loss_only", "cifar10", "CrtCl sec V-E-1",
               {"objective": "critic", "acquisition": "random",
                "objective_kwargs.gamma": 0.04}))
  rows.append(("crtcl_select_only", "cifar10", "CrtCl sec V-E-2",
               {"objective": "critic_no_gen", "acquisition": "critic"}))
  return rows


ROWS_SUPERVISED_FAMILIES = _supervised_family_rows()
SUPERVISED_FAMILIES = {m for m, _, _, _ in ROWS_SUPERVISED_FAMILIES}

# --- ARAL, VAAL, CRC (Mean Teacher, FixMatch) and their baselines ----------------------------
ROWS_GENERATIVE_SSL = []

ROWS = ROWS_SUPERVISED_FAMILIES + ROWS_GENERATIVE_SSL


@pytest.mark.parametrize("method,dataset,source,want", ROWS,
                         ids=[f"{m}-{d}-{s}" for m, d, s, _ in ROWS])
def test_paper_preset_holds_the_papers_numbers(method, dataset, source, want):
  c = get_config(method, dataset, "paper")
  for key, value in want.items():
    assert _norm(_get(c, key)) == _norm(value), f"{method}/{dataset} {key} ({source})"


def test_every_supervised_family_preset_has_rows():
  have = {(m, d) for m, d, _, _ in ROWS_SUPERVISED_FAMILIES}
  missing = sorted(k for k in PAPER_PRESETS if k[0] in SUPERVISED_FAMILIES and k not in have)
  assert not missing, missing


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_protocol_runs_every_method_of_its_table_on_one_schedule(name):
  """Baseline parity: under a protocol, every method of the paper's comparison gets the same
  schedule, optimiser, pools and subset R, on every dataset of the paper's table."""
  proto = PROTOCOLS[name]
  for dataset, sched in proto.paper.items():
    configs = {m: get_config(m, dataset, "paper", name) for m in proto.methods}
    for key in sched:
      values = {m: _norm(_get(c, key)) for m, c in configs.items()
                if key not in PROTOCOL_EXEMPT.get(m, ())}
      assert len(set(map(repr, values.values()))) == 1, f"{name}/{dataset} {key}: {values}"
      assert next(iter(values.values())) == _norm(sched[key])
    assert all(c.protocol == name for c in configs.values())
  cpu_configs = {m: get_config(m, "digits", "cpu", name) for m in proto.methods}
  for key, value in proto.cpu.items():
    assert {repr(_norm(_get(c, key))) for c in cpu_configs.values()} == {repr(_norm(value))}


def test_lplgrad_protocol_puts_entropy_on_lplgrads_schedule():
  # Without a protocol the baseline keeps LL4AL's setting (the shared CIFAR baseline); under
  # LPLgrad's, CIFAR-100 is 2,500 per round, R = 25,000, 8 rounds, and SVHN lr 0.01 @ 40.
  plain = get_config("entropy", "cifar100", "paper")
  assert (plain.al.budget, plain.al.subset) == (1000, 10000)
  c = get_config("entropy", "cifar100", "paper", "lplgrad")
  assert (c.al.initial, c.al.budget, c.al.subset, c.al.cycles) == (2500, 2500, 25000, 8)
  s = get_config("random", "svhn", "paper", "lplgrad")
  assert (s.optim.lr, tuple(s.optim.milestones), s.train.warm_start) == (0.01, (40,), True)
