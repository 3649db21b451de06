"""A spawned process's view of its BLAS threads, for tests/test_study_workers.py.

Imports numpy at the top, as the study's main module does: a process spawned with a function
of this module as its target loads numpy (and OpenBLAS sizes its thread pool) while the target
is unpickled, before the target runs. Kept apart from the test module so the child imports
only numpy.
"""

import os

import numpy  # noqa: F401  (loaded for its side effect: OpenBLAS starts its thread pool)


def report(out):
  """Puts (OPENBLAS_NUM_THREADS of the exec-time environment, this process's thread count)."""
  with open("/proc/self/environ", "rb") as f:  # the environment the process was exec'd with
    env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
  out.put((env.get(b"OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task"))))
