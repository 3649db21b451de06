"""Which preset an --objective override starts from when no --method is given."""

from al_jax.methods import METHODS, preset_method


def test_preset_method_for_objective_overrides():
  assert preset_method("supervised", "random") == "random"        # default already fits
  assert preset_method("aral", "random") == "aral"                # named after the objective
  assert preset_method("vaal", "random") == "vaal"
  assert preset_method("mean_teacher", "random") == "random_mt"   # same acquisition as default
  m = preset_method("critic", "random")
  assert METHODS[m].objective == "critic"
  assert preset_method("tod_ema", "entropy") in METHODS
