"""CLI config resolution: --objective/--acquisition overrides start from the right preset."""

from absl import flags

from experiments import main as cli


def _parse(*args):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["main", *args])


def test_objective_without_method_uses_its_own_preset():
  try:
    _parse("--objective=aral", "--acquisition=bald")
    (m,) = cli.resolve_methods()
    c = cli.build_config(m, 0)
    ref = cli.build_config("aral", 0)
    assert (c.objective, c.acquisition, c.method) == ("aral", "bald", "aral+bald")
    assert c.model == ref.model and c.al == ref.al and c.objective_kwargs == ref.objective_kwargs
    _parse("--method=tod", "--objective=supervised")  # explicit --method wins
    assert cli.resolve_methods() == ["tod"]
    c = cli.build_config("tod", 0)
    assert c.objective == "supervised" and not c.objective_kwargs  # λ not passed on
  finally:
    flags.FLAGS.unparse_flags()
