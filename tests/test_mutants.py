"""The mutant table (`experiments/mutants.py`): its rows are well-formed, and the runner applies,
tests and restores a mutant (on a toy repository, no JAX). Running the table itself is a
separate command (`python -m experiments.mutants`), not part of the test run."""

import ast
import os
import subprocess

import pytest

from experiments import mutants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _test_functions(path):
  """Top-level test function names (and Class::method) of a test file, by parsing it."""
  tree = ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read())
  names = set()
  for node in tree.body:
    if isinstance(node, ast.FunctionDef):
      names.add(node.name)
    elif isinstance(node, ast.ClassDef):
      names.update(f"{node.name}::{f.name}" for f in node.body if isinstance(f, ast.FunctionDef))
  return names


def test_table_rows_are_well_formed():
  rows = mutants.MUTANTS
  assert len(rows) >= 40
  assert len({m.name for m in rows}) == len(rows), "mutant names must be unique"
  functions = {}
  for m in rows:
    assert m.text != m.replacement and m.breaks and m.tests, m.name
    with open(os.path.join(ROOT, m.file), encoding="utf-8") as f:
      n = f.read().count(m.text)
    assert n == 1, f"{m.name}: its text occurs {n} times in {m.file} (re-anchor the row)"
    for test_id in m.tests:
      path, _, func = test_id.partition("::")
      func = func.split("[")[0]  # a parametrised case names its function
      if path not in functions:
        functions[path] = _test_functions(path)
      assert func in functions[path], f"{m.name}: no test {test_id}"


def test_select_by_name_and_file():
  rows = mutants.MUTANTS
  fix = mutants.select(rows, files=["al_jax/objectives/fixmatch.py"])
  assert fix and all(m.file == "al_jax/objectives/fixmatch.py" for m in fix)
  one = mutants.select(rows, only=[rows[0].name])
  assert one == [rows[0]]
  with pytest.raises(SystemExit):
    mutants.select(rows, only=["no_such_mutant"])


def test_runner_kills_survives_and_reports_moved_text(tmp_path):
  repo = tmp_path / "repo"
  (repo / "tests").mkdir(parents=True)
  (repo / "toy.py").write_text("def double(x):\n  return 2 * x\n")
  (repo / "tests" / "test_toy.py").write_text(
      "from toy import double\n\ndef test_double():\n  assert double(3) == 6\n")
  subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
  subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
  copy = tmp_path / "copy"
  mutants.copy_tracked(str(repo), str(copy))
  assert (copy / "tests" / "test_toy.py").exists()
  test = ("tests/test_toy.py::test_double",)
  M = mutants.Mutant
  status, _ = mutants.run_mutant(str(copy), M("m", "toy.py", "2 * x", "3 * x", test, "d"))
  assert status == "killed"
  assert (copy / "toy.py").read_text() == (repo / "toy.py").read_text()  # restored
  status, _ = mutants.run_mutant(str(copy), M("m", "toy.py", "2 * x", "x * 2", test, "d"))
  assert status == "survived"
  status, _ = mutants.run_mutant(str(copy), M("m", "toy.py", "4 * x", "5 * x", test, "d"))
  assert status == "no longer applies"
