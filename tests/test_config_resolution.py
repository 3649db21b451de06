"""One pairing, one configuration: settings resolved by component, derived values from the
final config, declared contracts checked before any work, and --print_config."""

import os
import subprocess
import sys

import pytest

from al_jax import ALError
from al_jax.data import DATASETS
from al_jax.methods import METHODS, canonical_method, check_pairing
from experiments.configs import cpu, paper, resolve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU_DATASETS = tuple(cpu.DATASETS)
PAPER_DATASETS = tuple(paper.DATASET_BASE) + ("mnist",)


def _spellings(method, dataset, preset, protocol=""):
  m = METHODS[method]
  named = resolve(method, dataset, preset, protocol).config.to_dict()
  spelled = resolve(None, dataset, preset, protocol, objective=m.objective,
                    acquisition=m.acquisition).config.to_dict()
  return named, spelled


@pytest.mark.parametrize("preset,datasets", [("cpu", CPU_DATASETS), ("paper", PAPER_DATASETS)])
def test_every_method_resolves_the_same_spelled_both_ways(preset, datasets):
  """--method=X and --objective=A --acquisition=B (X = A × B) are one run, on every dataset
  the preset covers. An alias (confidence) differs only in its name; a named variant
  (aral_labels_only) spelled as its pairing is the pairing's own method."""
  checked = 0
  for dataset in datasets:
    for method, m in sorted(METHODS.items()):
      try:
        named, spelled = _spellings(method, dataset, preset)
      except ALError:  # no paper table for this (method, dataset)
        continue
      own = canonical_method(m.objective, m.acquisition)
      if m.variant:
        assert spelled == resolve(own, dataset, preset).config.to_dict()
        continue
      assert spelled.pop("method") == own
      assert named.pop("method") == method
      assert named == spelled, (method, dataset)
      checked += 1
  assert checked >= (60 if preset == "cpu" else 30)


def test_an_ablation_pair_has_one_config_however_it_is_spelled():
  # The pairing of the problem report: fixmatch × coreset, via --method=coreset
  # --objective=fixmatch or via --objective/--acquisition: FixMatch's own settings either way.
  a = resolve("coreset", "digits", "cpu", objective="fixmatch").config
  b = resolve(None, "digits", "cpu", objective="fixmatch", acquisition="coreset").config
  assert a.to_dict() == b.to_dict()
  assert a.method == "fixmatch+coreset"
  assert (a.train.unlabeled_batch_size, a.objective_kwargs.ema_decay, a.optim.schedule) == (
      7 * a.train.batch_size, 0.9, "constant")
  # A pair that a method names is that method: supervised × cod is TOD's Base+Active.
  assert resolve("tod", "digits", "cpu", objective="supervised").config.method == (
      "tod_active_only")


def test_derived_values_follow_the_command_line():
  # Mean Teacher's ramp-up: 40% of the cycle's steps after --epochs=4 (4 × 20 steps).
  c = resolve("random_mt", "digits", "cpu", overrides=[("train.epochs", 4)]).config
  assert c.objective_kwargs.rampup_steps == int(0.4 * 4 * 20)
  # FixMatch's μ = 7 after a batch-size change.
  c = resolve("random_fixmatch", "digits", "cpu", overrides=[("train.batch_size", 8)]).config
  assert c.train.unlabeled_batch_size == 56
  # LL4AL's detach after 60% of the cycle's epochs, whatever the dataset's epochs.
  for dataset, epochs in (("digits", 40), ("fashion_mnist", 20), ("cifar10", 15)):
    c = resolve("ll4al", dataset, "cpu").config
    assert c.objective_kwargs.detach_epoch == round(0.6 * epochs) < c.train.epochs
  c = resolve("ll4al", "cifar10", "paper").config
  assert c.objective_kwargs.detach_epoch == 120  # LL4AL §4.1: 120 of 200 epochs
  # An explicit value of a derived setting wins over its ratio.
  c = resolve("random_fixmatch", "digits", "cpu",
              overrides=[("train.unlabeled_batch_size", 100)]).config
  assert c.train.unlabeled_batch_size == 100
  # G = Q follows the final budget (a ledger member's derive.group_fraction = 1).
  c = resolve("crc", "digits", "cpu", overrides=[("al.budget", 30)],
              member=[("derive.group_fraction", 1.0)]).config
  assert c.acquisition_kwargs.group_size == 30


def test_member_settings_win_and_conflicts_are_refused():
  with pytest.raises(ALError, match="conflicts with the ledger member"):
    resolve("crc", "digits", "cpu", overrides=[("al.cycles", 1)], member=[("al.cycles", 3)])


def test_swapping_the_model_drops_the_previous_models_settings():
  # The dataset's small-CNN settings do not reach another model...
  c = resolve("random", "fashion_mnist", "cpu", overrides=[("model.name", "mlp")]).config
  assert c.model.kwargs.to_dict() == {}
  # ...and a later layer's model starts from its own settings (ARAL's CNN under a ResNet
  # protocol).
  c = resolve("aral", "cifar10", "paper", "crtcl").config
  assert c.model.name == "resnet18" and "widths" not in c.model.kwargs


def test_sources_name_the_layer_that_set_each_value():
  r = resolve("lplgrad", "fashion_mnist", "cpu", overrides=[("optim.lr", 3e-3)])
  assert r.sources["optim.lr"] == "command line"
  assert r.sources["al.initial"] == "dataset (fashion_mnist)"
  assert r.sources["model.kwargs.widths"] == "model (small_cnn)"
  assert r.sources["objective_kwargs.margin"] == "objective (loss_pred)"
  assert r.sources["acquisition_kwargs.grad_batch"] == "acquisition (entropy_gradnorm)"
  assert r.sources["objective_kwargs.module_lr_decay"] == "method (lplgrad)"
  assert r.sources["objective_kwargs.detach_epoch"].startswith("derived: derive.detach")
  assert "train.batch_size" not in r.sources  # a base default
  text = r.describe()
  assert "optim.lr = 0.003    # command line" in text


def test_contracts_are_declared_and_checked():
  check_pairing("loss_pred", "predicted_loss")
  check_pairing("critic_no_gen", "critic")
  for obj, acq, fix in (("supervised", "predicted_loss", "loss_pred"),
                        ("supervised", "critic", "critic"),
                        ("mean_teacher", "emaod", "tod_ema"),
                        ("aral_no_encoder", "aral_sampler", "aral"),
                        ("supervised", "vaal", "vaal")):
    with pytest.raises(ALError, match=f"--objective={fix}"):
      check_pairing(obj, acq)
  # Every registered method is a compatible pairing.
  for name, m in METHODS.items():
    check_pairing(m.objective, m.acquisition)


def _main(*args, timeout=120):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout)


def test_incompatible_pairing_fails_before_training():
  r = _main("--method=random", "--acquisition=predicted_loss", "--progress=off")
  assert r.returncode == 2
  assert r.stderr.strip().count("\n") == 0
  assert "needs the 'loss_net' side model" in r.stderr and "--objective=loss_pred" in r.stderr
  assert "cycle" not in r.stdout  # refused before any training


def test_print_config_shows_the_resolved_settings_and_their_sources():
  r = _main("--method=lplgrad", "--dataset=fashion_mnist", "--set", "optim.lr=0.003",
            "--print_config")
  assert r.returncode == 0, r.stderr
  lines = r.stdout.splitlines()
  assert lines[0] == "# lplgrad seed 0 (cpu preset)"
  assert "optim.lr = 0.003    # command line" in lines
  assert "objective_kwargs.detach_epoch = 12    # derived: derive.detach_fraction " \
         "(fraction × train.epochs)" in lines
  assert "train.batch_size = 32" in lines
  assert "test accuracy" not in r.stdout and "done |" not in r.stdout


def test_the_crtcl_protocol_continues_every_members_model():
  """CrtCl §IV-A follows TOD's code for all settings: every method of its comparison keeps its
  model across cycles (not only TOD and LL4AL), at cpu and paper scale."""
  from experiments.configs.protocols import PROTOCOLS
  for method in PROTOCOLS["crtcl"].methods:
    for preset, dataset in (("cpu", "digits"), ("paper", "cifar10")):
      assert resolve(method, dataset, preset, "crtcl").config.train.warm_start, (method, preset)


def test_pt4al_scores_its_whole_batch_and_continues_its_network_everywhere():
  """PT4AL's selection reads one pretext batch per cycle, all of it (johnsk95/PT4AL main.py:
  no random subset), with one network trained on across cycles: under every preset, dataset
  and protocol that resolves."""
  from experiments.configs.protocols import PROTOCOLS
  resolved = 0
  for preset in ("cpu", "paper"):
    for dataset in DATASETS.names():
      for protocol in ("",) + tuple(PROTOCOLS):
        try:
          c = resolve("pt4al", dataset, preset, protocol).config
        except ALError:
          continue  # no preset or no protocol schedule for this dataset
        resolved += 1
        assert c.al.subset == 0 and c.train.warm_start, (preset, dataset, protocol)
  assert resolved >= 10


def test_pt4al_refuses_fewer_batches_than_cycles_when_resolved():
  with pytest.raises(ALError, match="num_batches=5: pt4al selects from batch k \\+ 1 after "
                                    "cycle k, so 6 cycles need at least 6 batches"):
    resolve("pt4al", "digits", "cpu", overrides=[("al.cycles", 6)])
  resolve("pt4al", "digits", "cpu", overrides=[("al.cycles", 6),
                                                ("acquisition_kwargs.num_batches", 6)])
