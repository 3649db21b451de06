"""al_jax: a JAX/Flax benchmark suite for deep active learning."""

__version__ = "0.1.0"


class ALError(Exception):
  """A user-facing error: the CLI prints its message on one line and exits non-zero."""
