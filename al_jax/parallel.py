"""Data parallelism with `jax.sharding`: a 1-D mesh over devices, the batch axis sharded.

The jitted steps gather their batches from a replicated copy of the (uint8)
training set by index; sharding the index arrays along the batch axis makes
XLA's SPMD partitioner shard the whole step — forward, backward and the gradient
all-reduce — with no change to objectives or acquisition functions. Parameters
and optimiser state stay replicated. Multi-host: call `jax.distributed.initialize()`
first (experiments.main --distributed), then the mesh spans every process's devices.
"""

from typing import Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from al_jax import ALError


class DataParallel:
  """A mesh with one axis, "data", over `num_devices` devices (0 = all)."""

  def __init__(self, num_devices: int = 0):
    devices = jax.devices()
    n = len(devices) if num_devices in (0, None) else num_devices
    if n > len(devices):
      raise ALError(f"asked for {n} devices, only {len(devices)} available")
    self.mesh = Mesh(np.array(devices[:n]), ("data",))
    self.size = n
    self.replicated = NamedSharding(self.mesh, P())

  def check_divisible(self, what: str, n: int) -> None:
    if n % self.size:
      raise ALError(f"{what} {n} is not divisible by the {self.size} data-parallel devices")

  def batch(self, ndim: int = 1, axis: int = 0) -> NamedSharding:
    """Sharding of an array whose `axis` is the batch axis."""
    spec = [None] * ndim
    spec[axis] = "data"
    return NamedSharding(self.mesh, P(*spec))

  def shard(self, x, axis: int = 0):
    return jax.device_put(x, self.batch(np.ndim(x), axis))

  def replicate(self, x):
    return jax.device_put(x, self.replicated)


def maybe_data_parallel(num_devices: int) -> Optional[DataParallel]:
  """None on a single device (plain placement), else a DataParallel over the devices."""
  n = jax.device_count() if num_devices in (0, None) else num_devices
  return DataParallel(n) if n > 1 else None
