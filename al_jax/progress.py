"""Where a long run is: progress bars on a terminal, periodic lines in logs, TensorBoard events.

A paper-preset run is hours long, so the loop reports progress *within* a cycle (training
steps, scoring chunks), not only at its end:

* `Progress("bar")`: a tqdm bar with rate and ETA, on a terminal (stderr is a TTY);
* `Progress("lines")`: when output goes to a file or CI log, where a bar's carriage returns
  would be noise, one plain line every `interval` seconds with the same numbers;
* `TensorBoardWriter`: per-epoch training metrics and per-cycle test metrics as TensorBoard
  event files (tensorboardX), so runs can be compared live.

The library is silent by default (`ActiveLearner(progress=None)`); `experiments.main` turns
progress on.
"""

import math
import os
import sys
import time
from typing import Callable, Dict, Optional, TextIO


def _fmt_seconds(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(round(s))
  h, rem = divmod(s, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Task:
  """Progress of one counted piece of work (the steps of a cycle, the chunks of a scoring)."""

  def __init__(self, progress: "Progress", desc: str, total: int, unit: str):
    self.desc, self.total, self.unit = desc, max(int(total), 0), unit
    self.done = 0
    self.postfix = ""
    self._p = progress
    self._t0 = self._last = time.monotonic()
    self._bar = None
    if progress.mode == "bar":
      from tqdm import tqdm  # a dependency of tensorflow-datasets, declared in pyproject
      # leave=False: a finished bar disappears, the cycle's summary line stays.
      # A terminal that reports no size (a pty nobody sized) would get no bar at all: tqdm
      # hides bars below the screen's last row.
      cols, rows = _terminal_size(progress.stream)
      self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=progress.stream,
                       leave=False, dynamic_ncols=cols > 0, ncols=None if cols else 100,
                       nrows=None if rows else 24, mininterval=0.5)

  def update(self, n: int = 1) -> None:
    if n <= 0:
      return
    self.done += n
    if self._bar is not None:
      self._bar.update(n)
      return
    now = time.monotonic()
    if now - self._last >= self._p.interval and self.done < self.total:
      self._last = now
      self._p.log(self.line())

  def set_postfix(self, text: str) -> None:
    self.postfix = text
    if self._bar is not None:
      self._bar.set_postfix_str(text, refresh=False)

  def line(self) -> str:
    """`desc: done/total unit (pct%) | elapsed | ETA | postfix` — the plain-line form."""
    elapsed = time.monotonic() - self._t0
    frac = self.done / self.total if self.total else 1.0
    eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
    return (f"{self.desc}: {self.done}/{self.total} {self.unit}s ({100 * frac:.0f}%) | "
            f"elapsed {_fmt_seconds(elapsed)} | ETA {_fmt_seconds(eta)}"
            + (f" | {self.postfix}" if self.postfix else ""))

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> "Task":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class Progress:
  """Makes `Task`s in one display mode.

  Args:
    mode: "bar" (tqdm), "lines" (plain periodic lines through `log`), "off", or "auto":
      "bar" when `stream` is a terminal, else "lines".
    interval: seconds between two plain lines of one task.
    log: where plain lines go (the run's logger).
    stream: where bars go (stderr by default, so stdout stays a clean log).
  """

  MODES = ("auto", "bar", "lines", "off")

  def __init__(self, mode: str = "auto", interval: float = 60.0,
               log: Callable[[str], None] = print, stream: Optional[TextIO] = None):
    if mode not in self.MODES:
      raise ValueError(f"progress mode must be one of {self.MODES}, got {mode!r}")
    self.stream = stream or sys.stderr
    if mode == "auto":
      mode = "bar" if _isatty(self.stream) else "lines"
    self.mode, self.interval, self.log = mode, float(interval), log

  def task(self, desc: str, total: int, unit: str = "step") -> Task:
    return Task(self, desc, total, unit)


def _terminal_size(stream) -> tuple:
  try:
    size = os.get_terminal_size(stream.fileno())
    return size.columns, size.lines
  except (AttributeError, ValueError, OSError):
    return 0, 0


def _isatty(stream) -> bool:
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False


class TensorBoardWriter:
  """TensorBoard event files of one run, under `<workdir>/tensorboard/{train,test}`.

  `train/*` scalars are per epoch at step = cycle × epochs + epoch (one continuous axis over
  the run); `test/*` scalars are per cycle at step = number of labels (the learning curve).
  Two subfolders keep the two axes apart, and on resume each starts with `purge_step` at the
  first step being redone, so TensorBoard drops what a killed run wrote past its last
  checkpoint.
  """

  def __init__(self, workdir: str, train_purge_step: Optional[int] = None,
               test_purge_step: Optional[int] = None):
    try:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    except ImportError as e:  # a dependency in pyproject; a broken install lands here
      from al_jax import ALError  # pylint: disable=g-import-not-at-top
      raise ALError(f"--tensorboard needs tensorboardX: pip install tensorboardX ({e})") from e
    root = os.path.join(workdir, "tensorboard")
    self.path = root
    self._train = SummaryWriter(os.path.join(root, "train"), purge_step=train_purge_step,
                                flush_secs=30)
    self._test = SummaryWriter(os.path.join(root, "test"), purge_step=test_purge_step,
                               flush_secs=30)

  def train_epoch(self, step: int, metrics: Dict[str, float]) -> None:
    for k, v in sorted(metrics.items()):
      self._train.add_scalar(f"train/{k}", float(v), step)

  def test_cycle(self, num_labeled: int, metrics: Dict[str, float]) -> None:
    for k, v in sorted(metrics.items()):
      self._test.add_scalar(f"test/{k}", float(v), num_labeled)
    # A finished cycle is worth seeing at once, not after flush_secs.
    self._train.flush()
    self._test.flush()

  def close(self) -> None:
    self._train.close()
    self._test.close()
