"""Factorised per-sample gradient norms equal brute-force per-sample gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import per_sample as ps
from al_jax.outputs import entropy
from al_jax.models import get_model
from al_jax.state import ModelState


def _state(model, shape, n=5, seed=0):
  x = jax.random.normal(jax.random.PRNGKey(seed + 1), (n, *shape))
  v = model.init(jax.random.PRNGKey(seed), x[:1])
  if "batch_stats" in v:  # non-trivial running statistics, so x̂ ≠ x
    v = dict(v, batch_stats=jax.tree_util.tree_map(
        lambda a: a + jax.random.uniform(jax.random.PRNGKey(7), a.shape, minval=0.1,
                                         maxval=0.5), v["batch_stats"]))
  return ModelState(apply_fn=lambda vv, xx, **kw: model.apply(vv, xx, train=False),
                    variables=v), x


def _brute_force(state, x, loss_fn):
  """One grad per sample (a Python loop, on purpose), flattened parameters."""
  grad = jax.jit(jax.grad(lambda p, xi: loss_fn(
      state.apply_fn(dict(state.variables, params=p), xi[None])[0])[0]))
  out = []
  for i in range(x.shape[0]):
    g = grad(state.variables["params"], x[i])
    out.append([np.asarray(l, np.float64).ravel() for l in jax.tree_util.tree_leaves(g)])
  return out


CASES = [("small_cnn", dict(widths=(8, 16), hidden=32), (12, 12, 1)),
         ("mlp", dict(hidden=(32, 16)), (8, 8, 1)),
         ("resnet18", dict(width_multiplier=0.0625), (8, 8, 3)),
         # WRN (CRC's WRN-28-2 family): pre-activation units, TF-SAME stride-2 convs (pad
         # (0, 1)), 1×1 projection shortcuts; depth 10, width 1 to stay fast.
         ("wrn", dict(depth=10, widen_factor=1), (8, 8, 3))]


@pytest.mark.parametrize("name,kw,shape", CASES)
def test_factorised_equals_brute_force(name, kw, shape):
  state, x = _state(get_model(name, 10, **kw), shape)
  ref = _brute_force(state, x, entropy)
  want_g = [np.sqrt(sum(np.sum(l ** 2) for l in leaves)) for leaves in ref]
  want_p = [sum(np.sqrt(np.sum(l ** 2)) for l in leaves) for leaves in ref]
  # Every kernel strategy on the small models; ResNet-18 (slow to compile) with the default.
  for impl in ("auto",) if name in ("resnet18", "wrn") else ("auto", "ghost", "explicit"):
    sq = jax.jit(lambda s, x: ps.factorised_sq_norms(s, x, entropy, impl=impl))(state, x)
    assert sq is not None and len(sq) == len(ref[0])  # one entry per parameter tensor
    np.testing.assert_allclose(ps.aggregate(sq, "global"), want_g, rtol=1e-5)
    np.testing.assert_allclose(ps.aggregate(sq, "per_tensor_sum"), want_p, rtol=1e-5)


class _WithLayerNorm(nn.Module):
  @nn.compact
  def __call__(self, x, train=False, dropout=None):
    h = nn.LayerNorm()(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    return nn.Dense(3, name="head")(h), {"embedding": h, "stages": ()}


def test_unsupported_layers_fall_back_to_vmap(caplog):
  state, x = _state(_WithLayerNorm(), (4, 4, 1))
  assert ps.factorised_sq_norms(state, x, entropy) is None
  got = np.asarray(ps.aggregate(ps.per_sample_sq_norms(state, x, entropy)))
  ref = _brute_force(state, x, entropy)
  np.testing.assert_allclose(got, [np.sqrt(sum(np.sum(l ** 2) for l in r)) for r in ref],
                             rtol=1e-5)
  assert "using vmap(grad)" in caplog.text


def test_patches_match_lax_up_to_feature_order():
  for size, k, s, pad, d in [(9, (3, 3), (2, 2), "SAME", (1, 1)),
                             (8, (3, 3), (1, 1), "VALID", (1, 1)),
                             (10, (3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1)),
                             (11, (3, 3), (1, 1), "SAME", (2, 2))]:
    x = jax.random.normal(jax.random.PRNGKey(2), (2, size, size, 3))
    a = ps.conv_patches(x, k, s, pad, d)
    b = jax.lax.conv_general_dilated_patches(x, k, s, pad, rhs_dilation=d,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert a.shape == b.shape
    gram = lambda p: np.einsum("btd,bsd->bts", *(2 * [np.asarray(p).reshape(2, -1, p.shape[-1])]))
    np.testing.assert_allclose(gram(a), gram(b), atol=1e-4)


def test_gradnorm_acquisitions_factorised_equal_vmap():
  """entropy_gradnorm and egl give the same scores with impl=factorised and impl=vmap."""
  from al_jax.acquisition import ACQUISITIONS
  state, x = _state(get_model("small_cnn", 10, widths=(8, 16), hidden=32), (8, 8, 1), n=6)
  scorers = (("entropy_gradnorm", {"norm": "global"}), ("entropy_gradnorm", {"norm": "sum"}),
             ("egl", {"norm": "global"}), ("egl", {"norm": "sum", "squared": False}))

  def scores(impl):
    # Jitted, as the harness scores (acquisition.map_chunks); the four scorers of one impl in
    # one program (each its own `score`, traced as the harness traces it).
    fns = [ACQUISITIONS.get(name)(impl=impl, **kw).score for name, kw in scorers]
    return jax.jit(lambda s, xx: [f(s, xx, None) for f in fns])(state, x)

  for (name, kw), a, b in zip(scorers, scores("factorised"), scores("vmap")):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, err_msg=f"{name} {kw}")


class _ConvZoo(nn.Module):
  """Convs of every geometry the factorised conv norms handle: strided TF-SAME (pad (0, 1)),
  VALID with a non-square kernel, dilation, a strided 1×1 and asymmetric explicit padding,
  with and without bias."""

  @nn.compact
  def __call__(self, x, train=False, dropout=None):
    h = nn.relu(nn.Conv(6, (3, 3), (2, 2), padding="SAME")(x))
    h = nn.relu(nn.Conv(8, (3, 2), padding="VALID", use_bias=False)(h))
    h = nn.relu(nn.Conv(8, (3, 3), padding="SAME", kernel_dilation=(2, 2))(h))
    s = nn.Conv(8, (1, 1), (2, 2), padding="VALID", use_bias=False)(h)
    h = nn.relu(nn.Conv(8, (3, 3), (2, 2), padding=((0, 1), (1, 0)))(h)) + s
    h = jnp.mean(h, (1, 2))
    return nn.Dense(4, name="head")(h), {"embedding": h, "stages": ()}


@pytest.mark.parametrize("impl", ["explicit", "ghost", "auto"])
def test_conv_kernel_strategies_equal_vmap_grad(impl):
  """Both conv kernel-norm strategies (per-offset products, shifted pixel Gram) equal the
  per-tensor norms of vmap(grad) on every conv geometry."""
  state, x = _state(_ConvZoo(), (11, 10, 3), n=4)
  got = jax.jit(lambda s, x: ps.factorised_sq_norms(s, x, entropy, impl=impl))(state, x)
  want = jax.jit(lambda s, x: ps.vmap_sq_norms(s, x, entropy))(state, x)
  assert got is not None and set(got) == set(want)
  for k in want:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-12, err_msg=str(k))


def test_conv_kernel_costs_pick_gram_for_small_maps():
  """The auto rule's MAC counts: explicit T·K·C_in·C_out, Gram T_p²·C_in + T²·C_out + K·T²."""
  conv = ((3, 3), (1, 1), [(1, 1), (1, 1)], (1, 1))
  explicit, ghost = ps.conv_kernel_costs((1, 7, 7, 128), (1, 7, 7, 256), conv)
  assert explicit == 49 * 9 * 128 * 256 and ghost == 81 * 81 * 128 + 49 * 49 * 256 + 9 * 49 * 49
  assert ghost < ps.GHOST_EFFICIENCY * explicit  # deep, small maps: the Gram form
  explicit, ghost = ps.conv_kernel_costs((1, 32, 32, 64), (1, 32, 32, 64), conv)
  assert ghost > explicit  # wide maps: the per-offset products
