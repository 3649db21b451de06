"""Name → factory registries (big_vision/scenic style) with errors that list valid names."""

from typing import Callable, Dict, Generic, Iterator, TypeVar

from al_jax import ALError

T = TypeVar("T")


class Registry(Generic[T]):
  """A mapping from names to factories.

  `get` of an unknown name raises an `ALError` listing every valid name, so a
  typo on the command line gives a one-line, actionable message.
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._items: Dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def deco(obj: T) -> T:
      if name in self._items:
        raise ValueError(f"{self.kind} {name!r} registered twice")
      self._items[name] = obj
      return obj
    return deco

  def get(self, name: str) -> T:
    if name not in self._items:
      raise ALError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}")
    return self._items[name]

  def names(self):
    return sorted(self._items)

  def __contains__(self, name: str) -> bool:
    return name in self._items

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
