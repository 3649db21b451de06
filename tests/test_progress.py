"""Progress within a cycle (bars on a terminal, plain lines otherwise) and TensorBoard events."""

import io
import os
import re
import time

import pytest

from al_jax import loop
from al_jax import progress as progress_lib
from tests.conftest import tiny_config


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_auto_mode_is_a_bar_on_a_terminal_and_lines_otherwise():
  assert progress_lib.Progress("auto", stream=_Terminal()).mode == "bar"
  assert progress_lib.Progress("auto", stream=io.StringIO()).mode == "lines"
  with pytest.raises(ValueError):
    progress_lib.Progress("sparkles")


def test_bar_shows_count_rate_and_eta():
  term = _Terminal()
  p = progress_lib.Progress("bar", stream=term)
  with p.task("cycle 1/3 train", 40) as t:
    t.set_postfix("epoch 4/4 loss 0.1")
    t.update(39)
    time.sleep(0.6)  # bars redraw at most every 0.5 s
    t.update(1)
  out = term.getvalue()
  assert "cycle 1/3 train" in out and "40/40" in out and "epoch 4/4 loss 0.1" in out
  assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", out)  # elapsed<remaining (the ETA)


def test_plain_lines_every_interval_with_eta():
  lines = []
  p = progress_lib.Progress("lines", interval=0.0, log=lines.append)
  with p.task("cycle 2/3 score", 4, "chunk") as t:
    for _ in range(4):
      t.update(1)
  # A line per update except the last (the cycle's own summary line follows it).
  assert len(lines) == 3
  assert lines[0].startswith("cycle 2/3 score: 1/4 chunks (25%) | elapsed ")
  assert all(" | ETA " in l for l in lines)


def test_run_reports_steps_and_chunks_and_writes_tensorboard_events(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator
  wd = str(tmp_path / "run")
  cfg = tiny_config("entropy", "synthetic", **{"al.cycles": 2, "train.epochs": 3})
  lines = []
  prog = progress_lib.Progress("lines", interval=0.0, log=lines.append)
  rows = loop.run(cfg, wd, log=lines.append, progress=prog, tensorboard=True)
  # Training steps: 20 labels / batch 16 = 2 steps × 3 epochs in cycle 1.
  # Finished steps are counted as they complete (dispatch is asynchronous), so the first
  # line may come at any step.
  assert any(re.match(r"cycle 1/2 train: [1-5]/6 steps \(\d+%\) \| elapsed .* \| ETA ", l)
             for l in lines), lines
  assert any(l.startswith("cycle 1/2 score: ") and "chunks" in l for l in lines), lines

  def scalars(sub):
    acc = event_accumulator.EventAccumulator(os.path.join(wd, "tensorboard", sub))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"]}

  train, test = scalars("train"), scalars("test")
  # Per epoch, one axis over the run: cycle × epochs + epoch.
  assert [s for s, _ in train["train/loss"]] == [0, 1, 2, 3, 4, 5]
  # Per cycle at the number of labels: the learning curve, equal to results.jsonl.
  assert [s for s, _ in test["test/accuracy"]] == [r["num_labeled"] for r in rows]
  for tag, key in (("test/accuracy", "test_accuracy"), ("test/ece", "test_ece"),
                   ("test/nll", "test_nll")):
    assert [v for _, v in test[tag]] == pytest.approx([r[key] for r in rows], rel=1e-6)
  assert {"test/brier", "test/train_seconds", "test/query_seconds"} <= set(test)
