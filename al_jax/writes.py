"""Failed writes as one line: the path and the errno (ENOSPC, EDQUOT, EROFS, EACCES, ...).

A full disk or a read-only mount is the user's situation, not a bug: a run stops with one
ALError line naming the file it could not write and why, and `--resume` continues after
space is freed. orbax/tensorstore do not raise OSError; their status text names the cause
(a full disk is RESOURCE_EXHAUSTED). Kept free of JAX so that the report tools import fast.
"""

import contextlib
import errno
import os
from typing import Iterator, Optional

from al_jax import ALError

# Errnos that mean "this place cannot take the write" (not a bug in the program).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOENT, errno.ENOTDIR, errno.EIO, errno.EFBIG)
# How libraries that do not raise OSError (tensorstore under orbax) spell them.
_MESSAGE_ERRNOS = (("No space left", errno.ENOSPC), ("RESOURCE_EXHAUSTED", errno.ENOSPC),
                   ("Disk quota exceeded", errno.EDQUOT),
                   ("Read-only file system", errno.EROFS),
                   ("Permission denied", errno.EACCES), ("PERMISSION_DENIED", errno.EACCES))


def write_errno(e: BaseException) -> Optional[int]:
  """The errno behind a failed write, from the exception or its chain; None if it is not one."""
  seen, todo = set(), [e]
  while todo:
    x = todo.pop(0)
    if x is None or id(x) in seen:
      continue
    seen.add(id(x))
    if isinstance(x, OSError) and x.errno in _WRITE_ERRNOS:
      return x.errno
    for text, code in _MESSAGE_ERRNOS:
      if text in str(x):
        return code
    todo += [x.__cause__, x.__context__]
  return None


def write_error(path: str, e: BaseException) -> Optional[ALError]:
  """One line naming the path and the errno, or None when `e` is not a failed write."""
  code = write_errno(e)
  if code is None:
    return None
  return ALError(f"cannot write {path}: {errno.errorcode[code]} ({os.strerror(code)}); "
                 "the finished cycles' files are kept: free space (or fix the permissions) "
                 "and rerun with --resume")


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
  """Turns a failed write under this block into the one-line ALError of `write_error`."""
  try:
    yield
  except ALError:
    raise
  except Exception as e:  # OSError, or a library's own type wrapping one (orbax)
    err = write_error(path, e)
    if err is None:
      raise
    raise err from None
