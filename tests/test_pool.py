import numpy as np
import pytest

from al_jax import ALError
from al_jax.data import Pool

Y = np.repeat(np.arange(5), 20).astype(np.int32)  # 100 points, 5 classes


def test_label_returns_new_pool_and_hides_unlabeled_labels():
  p = Pool(Y, [0, 1])
  q = p.label([5, 7])
  assert p.num_labeled == 2 and q.num_labeled == 4
  assert q.labeled.tolist() == [0, 1, 5, 7]
  vis = q.visible_labels()
  assert (vis[[0, 1, 5, 7]] == Y[[0, 1, 5, 7]]).all()
  assert (np.delete(vis, [0, 1, 5, 7]) == -1).all()
  assert len(q.unlabeled) == 96 and not np.isin(q.unlabeled, q.labeled).any()


@pytest.mark.parametrize("idx,msg", [([3, 3], "duplicates"), ([1], "already labeled"),
                                     ([100], "out of range"), ([-1], "out of range")])
def test_label_refuses_bad_indices(idx, msg):
  with pytest.raises(ALError, match=msg):
    Pool(Y, [0, 1]).label(idx)


def test_class_balanced_initial_pool():
  p = Pool.initial(Y, 10, np.random.default_rng(0), class_balanced=True, num_classes=5)
  assert np.bincount(Y[p.labeled], minlength=5).tolist() == [2] * 5


def test_initial_pool_errors_and_determinism():
  a = Pool.initial(Y, 10, np.random.default_rng(1))
  b = Pool.initial(Y, 10, np.random.default_rng(1))
  assert (a.labeled == b.labeled).all()
  with pytest.raises(ALError, match="larger"):
    Pool.initial(Y, 101, np.random.default_rng(0))
  with pytest.raises(ALError, match="multiple"):
    Pool.initial(Y, 7, np.random.default_rng(0), class_balanced=True, num_classes=5)
