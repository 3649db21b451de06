"""TOD's output-discrepancy acquisitions (Huang et al., ICCV 2021).

* `cod` (Eq. 5): ‖f(x; w_c) − f(x; w_{c−1})‖, the discrepancy between the models
  at the end of the current and the previous cycle (in the first cycle, the
  untrained initial model: §4.2). The loop provides w_{c−1} in
  `state.prev_variables` (and restores it on resume from the checkpoint).
* `emaod` (§5.4 ablation): ‖f(x; w) − f(x; w̃)‖ with w̃ the EMA model kept by the
  `tod_ema` objective (`state.aux["ema"]`).

f is the softmax by default (the official code scores ½‖softmax − softmax‖²,
which ranks exactly as the norm); `output="logits"` scores raw logits. Both
models run in inference mode.
"""

import jax.numpy as jnp

from al_jax import ALError
from al_jax.acquisition.base import ACQUISITIONS, Acquisition, top_k
from al_jax.outputs import OUTPUTS, tod_output

FIRST_CYCLE = ("largest", "lowest")


class _OutputDiscrepancy(Acquisition):
  """‖f(x; now) − f(x; baseline)‖₂ over classes; subclasses pick the baseline model."""

  def __init__(self, output: str = "softmax", **kwargs):
    super().__init__(**kwargs)
    if output not in OUTPUTS:
      raise ALError(f"unknown TOD output {output!r}; valid: {', '.join(OUTPUTS)}")
    self.output = output

  def baseline_logits(self, state, x):
    raise NotImplementedError

  def score(self, state, x, rng):
    del rng
    now = tod_output(state(x)[0], self.output)
    then = tod_output(self.baseline_logits(state, x), self.output)
    return jnp.linalg.norm(now - then, axis=-1)


@ACQUISITIONS.register("cod")
class CyclicOutputDiscrepancy(_OutputDiscrepancy):
  """COD, TOD Eq. 5: the largest discrepancy to the previous cycle's model is queried.

  Args:
    output: f, "softmax" (default) or "logits".
    first_cycle: "largest" (the paper, §4.2) or "lowest" (the public code picks the
      lowest COD against the random initial model in the first cycle). "lowest" needs
      the cycle number, so the acquisition then runs as a batch-mode selector.
  """
  name = "cod"
  needs_previous = True

  def __init__(self, output: str = "softmax", first_cycle: str = "largest", **kwargs):
    super().__init__(output=output, **kwargs)
    if first_cycle not in FIRST_CYCLE:
      raise ALError(f"unknown cod first_cycle {first_cycle!r}; valid: {', '.join(FIRST_CYCLE)}")
    self.first_cycle = first_cycle
    self.kind = "select" if first_cycle == "lowest" else "score"

  def select(self, ctx, budget, rng):
    scores = ctx.map_chunks(self.score, ctx.candidates, rng)
    if ctx.cycle == 0:
      scores = -scores  # main_TOD.py: `arg[:ADDENDUM]` in the first cycle
    return top_k(scores, ctx.candidates, budget)

  def baseline_logits(self, state, x):
    if state.prev_variables is None:
      raise ALError("cod needs the previous cycle's model (state.prev_variables)")
    return state.apply_fn(state.prev_variables, x)[0]


@ACQUISITIONS.register("emaod")
class EMAOutputDiscrepancy(_OutputDiscrepancy):
  """EMAOD, TOD §5.4: discrepancy to the EMA model of the `tod_ema` objective."""
  name = "emaod"
  requires = ("ema",)

  def baseline_logits(self, state, x):
    if "ema" not in state.aux:
      raise ALError("emaod needs an objective that keeps an EMA model (tod_ema)")
    return state.aux_apply["ema"](state.aux["ema"], x)[0]
