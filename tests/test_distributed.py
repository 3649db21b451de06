"""One experiment over 2 processes × 1 CPU device (--distributed) equals the same experiment in
1 process × 2 forced CPU devices, and process 0 alone writes.

Both runs execute the same SPMD program on a 2-device mesh ("data": 2); they differ only in
whether the two devices live in one process or in two (gloo collectives between them). The
only cross-device reductions (the gradient all-reduce of each step) then add exactly two
partial sums, and a + b == b + a bit for bit in floating point, so the two runs must agree
exactly: selections, labeled sets and every metric are compared with ==, not a tolerance (a
tolerance would hide a batch built from the wrong rows on one process, which changes the
metrics by far less than any useful tolerance on a 2-cycle run).
"""

import json
import os
import shutil
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--method=entropy", "--dataset=synthetic", "--cycles=2", "--initial=20", "--budget=10",
        "--epochs=2", "--progress=off"]
TIMEOUT = 300


def _env(devices: int):
  # No persistent compilation cache: a cold one hung 2-process CPU runs (BUILD_NOTES,
  # "--compilation_cache=auto is off under --distributed"); the driver below uses jax directly.
  return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR="",
              XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
              + f" --xla_force_host_platform_device_count={devices}")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _cmd(*extra):
  return [sys.executable, "-m", "experiments.main", *ARGS, *extra]


def _start_pair(workdirs, *extra):
  """Processes 0 and 1 of one --distributed run; process i is given --workdir=workdirs[i]."""
  port = _free_port()
  return [subprocess.Popen(
      _cmd("--distributed", f"--coordinator_address=localhost:{port}", "--num_processes=2",
           f"--process_id={i}", f"--workdir={workdirs[i]}", *extra),
      cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]


def _finish(procs):
  outs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=TIMEOUT)
      outs.append((p.returncode, out, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return outs


def _ours(text):
  """Output lines of al_jax (gloo prints its connection line from C++ on stdout)."""
  return [line for line in text.splitlines() if line.strip() and not line.startswith("[Gloo]")]


def _rows(workdir):
  with open(os.path.join(workdir, "results.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  # Wall-clock timings are the only fields that may differ.
  from al_jax.recording import TIMING_FIELDS
  return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]


def _pools(workdir):
  import numpy as np
  d = os.path.join(workdir, "pools")
  return {name: np.load(os.path.join(d, name)).tolist() for name in sorted(os.listdir(d))}


def _environment(workdir):
  with open(os.path.join(workdir, "config.json")) as f:
    return json.load(f)["environment"]


def test_two_processes_equal_one_process_with_two_devices(tmp_path):
  single, dist, other = tmp_path / "single", tmp_path / "dist", tmp_path / "process1"
  # The reference run (1 process × 2 devices) alongside the pair (2 processes × 1 device).
  ref = subprocess.Popen(_cmd(f"--workdir={single}"), cwd=ROOT, env=_env(2),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  pair = _start_pair([dist, other])
  (rc_ref, out_ref, err_ref), (rc0, out0, err0), (rc1, out1, err1) = _finish([ref] + pair)
  assert rc_ref == 0, err_ref[-3000:]
  assert rc0 == 0 and rc1 == 0, (err0[-3000:], err1[-3000:])
  assert _environment(single)["device_count"] == 2
  env = _environment(dist)
  assert (env["device_count"], env["process_count"], env["process_index"]) == (2, 2, 0)

  # Same selections (pools/cycle_K.npy is each cycle's labeled set) and the same metrics.
  assert _pools(dist) == _pools(single)
  assert len(_pools(single)["cycle_1.npy"]) == 30
  assert _rows(dist) == _rows(single)

  # One writer: process 1 was pointed at its own --workdir and never created it; process 0
  # wrote exactly the files the one-process run writes; process 1 printed nothing.
  assert not other.exists()
  assert sorted(os.listdir(dist)) == sorted(os.listdir(single))
  assert sorted(os.listdir(dist / "checkpoints")) == ["0", "1"]
  assert "test accuracy" in out0 and _ours(out1) == [], out1[-2000:]
  assert "cycle 1/2 done" in out0 and "cycle 1/2 done" not in out1 + err1

  # Resume across processes: without the last checkpoint, process 0 reads checkpoint 0 and
  # results.jsonl and hands the model state and labeled set to process 1; the redone cycle
  # equals the uninterrupted one.
  shutil.rmtree(dist / "checkpoints" / "1")
  (rc0, out0, err0), (rc1, out1, err1) = _finish(_start_pair([dist, other], "--resume"))
  assert rc0 == 0 and rc1 == 0, (err0[-3000:], err1[-3000:])
  assert "resuming after cycle 0" in out0 and _ours(out1) == [], out1[-2000:]
  assert _rows(dist) == _rows(single)
  assert _pools(dist) == _pools(single)
  assert not other.exists()


def test_a_failure_on_the_writer_stops_every_process_with_its_line(tmp_path):
  """Process 0's workdir refuses the run: both processes exit 2 with process 0's one line,
  instead of process 1 waiting for a writer that is gone."""
  taken = tmp_path / "taken"
  taken.mkdir()
  (taken / "notes.txt").write_text("not an experiment")
  outs = _finish(_start_pair([taken, tmp_path / "process1"]))
  for rc, _, err in outs:
    assert rc == 2, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"error: workdir {taken} is not empty and holds no experiment; choose another --workdir")
  assert not (tmp_path / "process1").exists()
  assert sorted(os.listdir(taken)) == ["notes.txt"]


DRIVER = r"""
import sys
import jax
import numpy as np
pid, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=pid)
from al_jax import ALError, parallel
dp = parallel.maybe_data_parallel(0)
assert dp is not None and dp.size == 2 and dp.multi_process
# The global batch: process k's device holds rows 4k..4k+3 of its own host copy.
x = np.arange(16, dtype=np.int32).reshape(8, 2)
batch = dp.shard(x)
assert not batch.is_fully_addressable
[shard] = batch.addressable_shards
np.testing.assert_array_equal(np.asarray(shard.data), x[4 * pid:4 * pid + 4])
np.testing.assert_array_equal(parallel.fetch(batch * 10), x * 10)  # gathered to every host
rep = dp.replicate({"w": np.full(3, 2.0, np.float32)})
assert rep["w"].is_fully_replicated and float(parallel.fetch(rep["w"]).sum()) == 6.0
assert parallel.broadcast_json({"from": pid}) == {"from": 0}
assert parallel.gather_json(pid * 3) == [0, 3]
assert parallel.first_error(None) is None
assert parallel.first_error("bad on 1" if pid == 1 else None) == "bad on 1"
parallel.check_same("cycle 0 selection", [5, 7, 9])  # the same everywhere: no error
try:
  parallel.check_same("cycle 3 selection", [5, 7, 9 + pid])
except ALError as e:
  print("ALError:", e)
else:
  print("no error")
def write():  # fails on process 0, the only process that runs it
  raise ALError("disk full on the writer")
try:
  parallel.on_writer(write)
except ALError as e:
  print("writer ALError:", e)
print("DONE", pid)
"""


def test_collectives_build_the_global_batch_and_catch_disagreeing_selections(tmp_path):
  """The pieces the loop relies on, on 2 processes: each process supplies its own rows of a
  global batch, sharded outputs are gathered to every host, process 0's answers reach the
  others, and selections that differ between processes stop both with one line."""
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(i), str(port)], cwd=ROOT,
                            env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  for pid, (rc, out, err) in enumerate(_finish(procs)):
    assert rc == 0 and f"DONE {pid}" in out, out[-2000:] + err[-3000:]
    assert ("ALError: cycle 3 selection differs between processes (processes [1] disagree "
            "with process 0)") in out, out
    assert "writer ALError: disk full on the writer" in out, out


def test_distributed_flags_are_checked_before_jax_starts():
  for extra, message in (
      (["--coordinator_address=localhost:1", "--process_id=1"],
       "error: --coordinator_address, --process_id only apply with --distributed"),
      (["--distributed", "--seeds=0,1"],
       "error: --distributed runs one experiment (one method, one seed)")):
    r = subprocess.run(_cmd(*extra), cwd=ROOT, env=_env(1), capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 2 and r.stderr.strip().startswith(message), r.stderr[-2000:]
