"""The structured full-layer eNTK equals J Jᵀ from jax.jacrev on flattened parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax.models import get_model
from al_jax.ntk_structured import structured_ntk
from al_jax.state import ModelState


@jax.jit  # one program per model (eagerly, jacrev compiles each of its hundreds of ops)
def _jjt(state, x1, x2):
  f = lambda p, x: state.apply_fn(dict(state.variables, params=p), x)[0]
  flat = lambda x: jnp.concatenate([l.reshape(l.shape[0], l.shape[1], -1) for l in
                                    jax.tree_util.tree_leaves(jax.jacrev(f)(
                                        state.variables["params"], x))], -1)
  return jnp.einsum("ncp,mcp->nm", flat(x1), flat(x2))  # trace over classes (CRC §3.1)


@pytest.mark.parametrize("name,kw,shape", [
    ("small_cnn", dict(widths=(8, 16), hidden=32), (12, 12, 1)),
    ("resnet18", dict(width_multiplier=0.0625), (8, 8, 3)),
    # WRN (CRC §4.1's WRN-28-2 family): pre-activation, TF-SAME stride-2 convs; depth 10, width 1.
    ("wrn", dict(depth=10, widen_factor=1), (8, 8, 3))])
def test_structured_ntk_equals_jacobian(name, kw, shape):
  m = get_model(name, 10, **kw)
  x = jax.random.normal(jax.random.PRNGKey(1), (10, *shape))
  v = m.init(jax.random.PRNGKey(0), x[:1])
  st = ModelState(apply_fn=lambda vv, xx, **k: m.apply(vv, xx, train=False), variables=v)
  ref = np.asarray(_jjt(st, x, x))
  scale = np.abs(ref).max()
  # block 4 → padded last block; a tiny element budget forces output-channel slicing.
  got = np.asarray(structured_ntk(st, x, block=4, max_elements=2 ** 10))
  np.testing.assert_allclose(got, ref, atol=1e-5 * scale)
  if name == "wrn":
    return  # the cross-kernel path is covered by the other models (one compile fewer)
  # A cross kernel against 11 other points (n1 ≠ n2, the second side padded by one row): both
  # sides are 3 blocks of 4, so their feature passes reuse the square call's compiled block.
  idx = np.r_[6:10, 0:7]
  cross = np.asarray(structured_ntk(st, x, x[idx], block=4))
  np.testing.assert_allclose(cross, ref[:, idx], atol=1e-5 * scale)


def test_kernel_pieces_and_group_kernels_match_jacobian():
  """`features`/`kernel`/`group_kernel` (what CRC's structured path uses) agree with J Jᵀ,
  and the model exercises both per-pair forms (ghost for Dense, explicit for convs)."""
  from al_jax import ntk_structured as ns
  m = get_model("small_cnn", 10, widths=(8, 16), hidden=32)
  x = jax.random.normal(jax.random.PRNGKey(2), (12, 12, 12, 1))
  v = m.init(jax.random.PRNGKey(0), x[:1])
  st = ModelState(apply_fn=lambda vv, xx, **k: m.apply(vv, xx, train=False), variables=v)
  ref = np.asarray(_jjt(st, x, x))
  scale = np.abs(ref).max()
  feats, n = ns.features(st, x, block=5)  # ⌈12/5⌉ = 3 equal blocks of 4: no padding
  facs = [f for f in feats if isinstance(f, ns.Factor)]
  kinds = {ns._ghost_cheaper(f) for f in facs}
  assert kinds == {True, False}
  np.testing.assert_allclose(np.asarray(ns.kernel(feats))[:n, :n], ref, atol=1e-5 * scale)
  groups = np.asarray(ns.group_kernel(ns.trim(feats, n), 4))  # 3 groups of 4
  for i in range(3):
    np.testing.assert_allclose(groups[i], ref[4 * i:4 * i + 4, 4 * i:4 * i + 4],
                               atol=1e-5 * scale)
  head, _ = ns.features(st, x[:3], block=2)  # padded: 2 blocks of 2 for 3 samples
  np.testing.assert_allclose(np.asarray(ns.kernel(head, feats))[:3, :n], ref[:3],
                             atol=1e-5 * scale)
