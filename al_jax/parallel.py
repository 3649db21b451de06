"""Data parallelism with `jax.sharding`: a 1-D mesh over devices, the batch axis sharded.

The jitted steps gather their batches from a replicated copy of the (uint8)
training set by index; sharding the index arrays along the batch axis makes
XLA's SPMD partitioner shard the whole step — forward, backward and the gradient
all-reduce — with no change to objectives or acquisition functions. Parameters
and optimiser state stay replicated.

Several processes (experiments.main --distributed, after `jax.distributed.initialize()`):
the mesh spans every process's devices, in `jax.devices()` order (process 0's first), and
one run is one SPMD program that every process executes. Every process loads the same
dataset and draws the same host-side indices (same seeds), so each builds the global arrays
from its own identical host copy: `shard`/`replicate` hand JAX, through
`jax.make_array_from_callback`, only the slices that live on the process's own devices
(a batch's rows k·B/n … (k+1)·B/n for device k of n). Outputs sharded over the batch axis
span devices of other processes and are gathered to every host by `fetch`
(`multihost_utils.process_allgather`), so host-side selection sees the same scores
everywhere. Process 0 alone writes the workdir (al_jax.results); `broadcast_json` carries
its answers (a resumed run's rows, a failed write's message) to the others, and
`check_same` verifies that a cycle's selection is the same on every process.
"""

import hashlib
import json
from typing import Any, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from al_jax import ALError


def process_count() -> int:
  """The number of processes of this run: 1 unless `jax.distributed.initialize()` ran. Asks
  no JAX backend in that case, so that code that only reads workdirs (report tools, a
  study's parent process, which leaves the accelerators to its workers) starts none."""
  return jax.process_count() if jax.distributed.is_initialized() else 1


def is_writer() -> bool:
  """Whether this process writes the run's files and logs (process 0; the only one alone)."""
  return process_count() == 1 or jax.process_index() == 0


class DataParallel:
  """A mesh with one axis, "data", over `num_devices` devices (0 = all, of every process)."""

  def __init__(self, num_devices: int = 0):
    devices = jax.devices()
    n = len(devices) if num_devices in (0, None) else num_devices
    if n > len(devices):
      raise ALError(f"asked for {n} devices, only {len(devices)} available")
    if jax.process_count() > 1 and n != len(devices):
      # A mesh over a prefix of the devices would leave some processes without a device
      # while they still run the program.
      raise ALError(f"parallel.devices={n}: a run over {jax.process_count()} processes uses "
                    f"all their {len(devices)} devices (set parallel.devices=0)")
    self.mesh = Mesh(np.array(devices[:n]), ("data",))
    self.size = n
    self.replicated = NamedSharding(self.mesh, P())
    self.multi_process = jax.process_count() > 1

  def check_divisible(self, what: str, n: int) -> None:
    if n % self.size:
      raise ALError(f"{what} {n} is not divisible by the {self.size} data-parallel devices")

  def batch(self, ndim: int = 1, axis: int = 0) -> NamedSharding:
    """Sharding of an array whose `axis` is the batch axis."""
    spec = [None] * ndim
    spec[axis] = "data"
    return NamedSharding(self.mesh, P(*spec))

  def _put(self, tree, sharding_of):
    if not self.multi_process:
      # One process: plain device_put (unchanged placement, bit-identical runs).
      return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding_of(x)), tree)

    def put(x):
      if isinstance(x, jax.Array):
        return jax.device_put(x, sharding_of(x))  # already on device: JAX reshards it
      # Host data, identical on every process: each process supplies the slices of its
      # own devices from its copy (the global array is never assembled on one host).
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, sharding_of(x), lambda index: x[index])
    return jax.tree_util.tree_map(put, tree)

  def shard(self, x, axis: int = 0):
    return self._put(x, lambda leaf: self.batch(np.ndim(leaf), axis))

  def replicate(self, x):
    return self._put(x, lambda leaf: self.replicated)


def uncommitted(tree):
  """The tree's committed arrays as uncommitted copies on the default device (a host round
  trip); other leaves unchanged.

  jit keys its executables on whether each input is committed to a device. A fresh run's
  state is uncommitted, while orbax restores a checkpoint committed, so a resumed run on one
  device would compile its train step again, twice over (committed inputs make committed
  outputs, a second pattern)."""
  def put(x):
    if not isinstance(x, jax.Array) or not x.committed:
      return x
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(np.asarray(jax.random.key_data(x)),
                                      impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x))
  return jax.tree_util.tree_map(put, tree)


def maybe_data_parallel(num_devices: int) -> Optional[DataParallel]:
  """None on a single device (plain placement), else a DataParallel over the devices."""
  n = jax.device_count() if num_devices in (0, None) else num_devices
  return DataParallel(n) if n > 1 or jax.process_count() > 1 else None


def fetch(tree) -> Any:
  """Host (numpy) copies of device arrays. One process: `jax.device_get`. Several: an
  array that spans other processes' devices is gathered to every process (a collective:
  every process calls this in the same order); a replicated one is read locally."""
  if process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils

  def get(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
      return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return jax.tree_util.tree_map(get, tree)


def broadcast_bytes(data: Optional[bytes]) -> bytes:
  """Process 0's `data` on every process (others pass None); a collective."""
  if process_count() == 1:
    return data
  from jax.experimental import multihost_utils
  writer = is_writer()
  # Two broadcasts: the length (every process must pass the same shape), then the bytes.
  n = int(multihost_utils.broadcast_one_to_all(
      np.array(len(data) if writer else 0, np.int32)))
  buf = np.frombuffer(data, np.uint8) if writer else np.zeros(n, np.uint8)
  return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf), np.uint8))


def broadcast_json(obj: Any = None) -> Any:
  """Process 0's JSON-able `obj` on every process (others' `obj` is ignored)."""
  if process_count() == 1:
    return obj
  text = json.dumps(obj).encode() if is_writer() else None
  return json.loads(broadcast_bytes(text).decode())


def check_same(what: str, values: Sequence) -> None:
  """One-line ALError unless `values` (host integers: a cycle's selection) is the same on
  every process. The processes compute it independently from identical data and seeds,
  so they agree unless the hosts' data or software differ; this finds that at the cycle it
  happens instead of letting each process train on its own labeled set. A 64-bit digest is
  gathered (8 bytes per process, one tiny collective), not the values."""
  if process_count() == 1:
    return
  from jax.experimental import multihost_utils
  digest = hashlib.sha256(np.ascontiguousarray(np.asarray(values, np.int64)).tobytes())
  mine = np.frombuffer(digest.digest()[:8], np.int32)  # int32: no x64 needed
  every = np.asarray(multihost_utils.process_allgather(mine)).reshape(jax.process_count(), -1)
  differ = [p for p in range(len(every)) if not np.array_equal(every[p], every[0])]
  if differ:
    raise ALError(f"{what} differs between processes (processes {differ} disagree with "
                  "process 0): every process must load the same dataset and run the same "
                  "code and settings")


def on_writer(fn, *args, **kwargs) -> Any:
  """`fn(*args, **kwargs)` on process 0 alone (a write); its result stays there (None
  elsewhere). Its failure stops every process: an ALError with the same line everywhere; any
  other exception is re-raised on process 0 and named in an ALError on the others, which
  would otherwise wait in the next collective for a process that is gone. One process:
  just the call."""
  if process_count() == 1:
    return fn(*args, **kwargs)
  out, err, exc = None, None, None
  if is_writer():
    try:
      out = fn(*args, **kwargs)
    except ALError as e:
      err = str(e)
    except Exception as e:  # pylint: disable=broad-except  (re-raised below)
      exc, err = e, f"process 0 failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
  err = broadcast_json(err)
  if exc is not None:
    raise exc
  if err is not None:
    raise ALError(err)
  return out


def gather_json(obj: Any) -> list:
  """Every process's JSON-able `obj`, in process order, on every process; a collective."""
  if process_count() == 1:
    return [obj]
  from jax.experimental import multihost_utils
  data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.array(len(data), np.int32)))
  buf = np.zeros(int(sizes.max()), np.uint8)
  buf[:len(data)] = data
  every = np.asarray(multihost_utils.process_allgather(buf)).reshape(len(sizes), -1)
  return [json.loads(bytes(every[p, :int(sizes[p])]).decode()) for p in range(len(sizes))]


def first_error(message: Optional[str]) -> Optional[str]:
  """The first process's error message (process 0 first), or None when no process has one:
  every process ends a run with the same outcome."""
  return next((m for m in gather_json(message) if m is not None), None)


def local_copy(tree) -> Any:
  """`tree` for work that process 0 does alone (drawing a run's artifacts): unchanged on one
  process; with several, host copies of its replicated arrays, so that jitted code on them
  runs on this process's devices only instead of waiting for the others."""
  if process_count() == 1:
    return tree

  def get(x):
    if isinstance(x, jax.Array) and not (x.is_fully_addressable or x.is_fully_replicated):
      raise ALError("a state array is sharded over several processes; only replicated "
                    "state can be used by one process alone")
    return np.asarray(x)
  return jax.tree_util.tree_map(get, tree)
