"""Tests of the classifier contract in `al_jax.models`: shapes, BatchNorm modes, dropout
switches, the reshape max-pool and the registry.

Shapes and parameter counts use `jax.eval_shape` (no compilation). Tests that run a model use
tiny widths, and keys with the "rbg" PRNG: with the default threefry keys, XLA on CPU spends
~5 s compiling the random initialisers of even a 1/16-width ResNet-18 (~1.5 s with rbg).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import ALError
from al_jax.models import MODELS, get_model, max_pool_2x2


def _key(seed: int) -> jax.Array:
  return jax.random.key(seed, impl="rbg")


# Tiny variants; dropout is on wherever the model has a dropout layer so dropout tests bite.
TINY = {
    "mlp": dict(hidden=(16, 8), dropout_rate=0.5),
    "small_cnn": dict(widths=(4, 8), hidden=16, dropout_rate=0.5),
    "resnet18": dict(width_multiplier=1 / 16, dropout_rate=0.5),
    "wrn": dict(depth=10, widen_factor=1, dropout_rate=0.5),
}

# Expected (stage shapes without batch, embedding width) per tiny model and input size.
EXPECTED = {
    ("mlp", 8): ([(1, 1, 16), (1, 1, 8)], 8),
    ("mlp", 32): ([(1, 1, 16), (1, 1, 8)], 8),
    # Pools after each block; 8×8 stops at 2×2.
    ("small_cnn", 8): ([(4, 4, 4), (2, 2, 8)], 16),
    ("small_cnn", 32): ([(16, 16, 4), (8, 8, 8)], 16),
    # CIFAR stem keeps the input size; stages 2–4 halve it.
    ("resnet18", 8): ([(8, 8, 4), (4, 4, 8), (2, 2, 16), (1, 1, 32)], 32),
    ("resnet18", 32): ([(32, 32, 4), (16, 16, 8), (8, 8, 16), (4, 4, 32)], 32),
    ("wrn", 8): ([(8, 8, 16), (4, 4, 32), (2, 2, 64)], 64),
    ("wrn", 32): ([(32, 32, 16), (16, 16, 32), (8, 8, 64)], 64),
}

INPUTS = {8: (2, 8, 8, 1), 32: (2, 32, 32, 3)}
NUM_CLASSES = 10


def _shapes(model: nn.Module, shape, **kwargs):
  """(logits, features) and variables as ShapeDtypeStructs, without compiling anything."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.eval_shape(lambda k, x: model.init_with_output(k, x, **kwargs), _key(0), x)


def _num_params(variables) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("size", sorted(INPUTS))
@pytest.mark.parametrize("name", sorted(TINY))
def test_output_and_feature_shapes(name, size):
  shape = INPUTS[size]
  model = get_model(name, NUM_CLASSES, **TINY[name])
  for train in (False, True):
    (logits, features), variables = _shapes(model, shape, train=train)
    assert logits.shape == (2, NUM_CLASSES) and logits.dtype == jnp.float32
    assert set(features) == {"stages", "embedding"}
    assert isinstance(features["stages"], tuple)
    stages, dim = EXPECTED[(name, size)]
    assert [s.shape for s in features["stages"]] == [(2,) + s for s in stages]
    assert features["embedding"].shape == (2, dim)
    # The classifier layer is found by name (last-layer NTK, gradient embeddings).
    assert variables["params"]["head"]["kernel"].shape == (dim, NUM_CLASSES)


@pytest.mark.parametrize("shape,stages", [
    ((2, 16, 16, 1), [(2, 8, 8, 32), (2, 4, 4, 64)]),
    ((2, 28, 28, 1), [(2, 14, 14, 32), (2, 7, 7, 64)]),
    # Odd sizes take the nn.max_pool fallback, which floors: 7 → 3 → 1.
    ((2, 7, 7, 1), [(2, 3, 3, 32), (2, 1, 1, 64)]),
    # Maps of 2×2 or smaller are not pooled further.
    ((2, 4, 4, 1), [(2, 2, 2, 32), (2, 2, 2, 64)]),
])
def test_small_cnn_default_widths_and_pool_rule(shape, stages):
  model = get_model("small_cnn", NUM_CLASSES)
  (logits, features), _ = _shapes(model, shape)
  assert [s.shape for s in features["stages"]] == stages
  assert features["embedding"].shape == (2, 128)
  assert logits.shape == (2, NUM_CLASSES)


def test_full_width_resnet18_and_wrn28_2():
  (logits, features), variables = _shapes(get_model("resnet18", 10), (2, 32, 32, 3))
  assert _num_params(variables) == 11_173_962  # kuangliu/pytorch-cifar ResNet18: 11.17M
  assert [s.shape for s in features["stages"]] == [
      (2, 32, 32, 64), (2, 16, 16, 128), (2, 8, 8, 256), (2, 4, 4, 512)]
  assert features["embedding"].shape == (2, 512) and logits.shape == (2, 10)

  (logits, features), variables = _shapes(get_model("wrn28_2", 10), (2, 32, 32, 3))
  assert _num_params(variables) == 1_467_610  # WRN-28-2 of Oliver et al. 2018: 1.47M
  assert [s.shape for s in features["stages"]] == [
      (2, 32, 32, 32), (2, 16, 16, 64), (2, 8, 8, 128)]
  assert features["embedding"].shape == (2, 128) and logits.shape == (2, 10)
  # 4 units per group.
  assert sum(k.startswith("unit_") and k != "unit_last_bn" for k in variables["params"]) == 12


@pytest.fixture(scope="module")
def built():
  """Initialised tiny models on 8×8×1 input, shared by the tests that run them."""
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 8, 8, 1)), jnp.float32)
  out = {}
  for name, kwargs in TINY.items():
    model = get_model(name, NUM_CLASSES, **kwargs)
    variables = jax.jit(model.init)(_key(0), x)
    out[name] = (model, variables)
  return out, x


@pytest.mark.parametrize("name", sorted(TINY))
def test_train_mode_updates_batch_stats(built, name):
  models, x = built
  model, variables = models[name]
  (logits, _), updates = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                     rngs={"dropout": _key(3)})
  assert logits.shape == (4, NUM_CLASSES)
  if name == "mlp":  # No BatchNorm.
    assert "batch_stats" not in variables and not updates.get("batch_stats")
    return
  old, new = variables["batch_stats"], updates["batch_stats"]
  assert jax.tree.structure(old) == jax.tree.structure(new)
  for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
    assert not np.allclose(a, b), "every running mean/var should move on random input"
  # Inference mode reads batch_stats and needs no mutable collection.
  l1, _ = model.apply(variables, x)
  l2, _ = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(l1, l2)


@pytest.mark.parametrize("name", sorted(TINY))
def test_dropout_switch(built, name):
  models, x = built
  model, variables = models[name]
  mc = jax.jit(lambda v, k: model.apply(v, x, train=False, dropout=True, rngs={"dropout": k}))
  # Off by default at inference: deterministic and no dropout RNG needed.
  l1, f1 = model.apply(variables, x)
  l2, _ = model.apply(variables, x, train=False, dropout=False)
  np.testing.assert_array_equal(l1, l2)
  # MC dropout with BatchNorm in inference mode (no mutable batch_stats requested).
  la, fa = mc(variables, _key(5))
  lb, fb = mc(variables, _key(6))
  lc, _ = mc(variables, _key(5))
  assert not np.allclose(la, lb)
  np.testing.assert_array_equal(la, lc)
  if name != "mlp":  # The MLP drops out after every hidden layer, so its embedding varies.
    # A single dropout layer, before the head: the embedding is the head's unmasked input.
    np.testing.assert_allclose(fa["embedding"], fb["embedding"], rtol=1e-6)
    np.testing.assert_allclose(fa["embedding"], f1["embedding"], rtol=1e-6)
  # train=True with dropout=False: no masks, so the key does not matter.
  tr = lambda k: model.apply(variables, x, train=True, dropout=False, rngs={"dropout": k},
                             mutable=["batch_stats"])[0][0]
  np.testing.assert_array_equal(tr(_key(7)), tr(_key(8)))


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (3, 4, 4, 5), (2, 7, 5, 3)])
def test_reshape_max_pool_matches_nn_max_pool(shape):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape), jnp.float32)
  ref = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
  np.testing.assert_array_equal(max_pool_2x2(x), ref(x))
  w = jnp.asarray(rng.normal(size=ref(x).shape), jnp.float32)
  g = jax.grad(lambda x: jnp.sum(max_pool_2x2(x) * w))(x)
  g_ref = jax.grad(lambda x: jnp.sum(ref(x) * w))(x)
  np.testing.assert_array_equal(g, g_ref)


def test_registry_names_and_errors():
  assert {"mlp", "small_cnn", "resnet18", "wrn28_2", "wrn"} <= set(MODELS.names())
  with pytest.raises(ALError, match="unknown model 'resnet50'.*resnet18.*small_cnn"):
    MODELS.get("resnet50")
  with pytest.raises(ALError, match="unknown model"):
    get_model("nope", 10)
  with pytest.raises(ALError, match="unknown option.*widht.*valid:.*widths"):
    get_model("small_cnn", 10, widht=(4,))
  with pytest.raises(ALError, match="fixes depth"):
    get_model("wrn28_2", 10, depth=16)
  with pytest.raises(ALError, match="6n\\+4"):
    _shapes(get_model("wrn", 10, depth=12), (1, 8, 8, 1))
  assert get_model("wrn", 10, depth=16, widen_factor=4).depth == 16
  assert get_model("resnet18", 10, stage_sizes=(2, 2, 2, 2)).width_multiplier == 1.0


@pytest.mark.parametrize("k", [3, 4, 5])
def test_conv_transpose_2x_is_flax_conv_transpose(k):
  """The decoders' phase-split transposed conv: Flax's initial weights, outputs and gradients
  (a tap or offset off by one, or phases interleaved in the wrong order, would differ)."""
  from al_jax.models.generative import ConvTranspose2x
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 5, 3))
  ref = nn.ConvTranspose(4, (k, k), strides=(2, 2), padding="SAME")
  new = ConvTranspose2x(4, k)
  v_ref, v_new = ref.init(jax.random.PRNGKey(0), x), new.init(jax.random.PRNGKey(0), x)
  jax.tree_util.tree_map(np.testing.assert_array_equal, v_ref, v_new)
  v = {"params": {"kernel": v_ref["params"]["kernel"],
                  "bias": jax.random.normal(jax.random.PRNGKey(2), (4,))}}
  np.testing.assert_allclose(new.apply(v, x), ref.apply(v, x), atol=1e-5)
  loss = lambda m: lambda p, x: jnp.sum(jnp.sin(m.apply(p, x)))
  g_ref = jax.grad(loss(ref), argnums=(0, 1))(v, x)
  g_new = jax.grad(loss(new), argnums=(0, 1))(v, x)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), g_ref, g_new)


@pytest.mark.parametrize("init", ["pytorch_default", "he_normal"])
def test_resnet_init_weight_std(init):
  """kuangliu's ResNet keeps PyTorch's kaiming_uniform_(a=√5): U(±1/√fan_in), std
  1/√(3·fan_in), Linear bias U(±1/√fan_in); "he_normal" is torchvision's N(0, 2/fan_out) with
  Flax's Dense defaults (zero bias)."""
  model = get_model("resnet18", 10, width_multiplier=0.5, weight_init=init)
  variables = jax.jit(model.init)(_key(0), jnp.zeros((1, 8, 8, 3)))
  p = variables["params"]
  w = np.asarray(p["stage3_block1"]["conv2"]["kernel"])  # 3×3, 128 → 128
  fan_in, fan_out = 9 * w.shape[2], 9 * w.shape[3]
  head_w, head_b = np.asarray(p["head"]["kernel"]), np.asarray(p["head"]["bias"])
  if init == "pytorch_default":
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
    hb = 1 / np.sqrt(head_w.shape[0])
    assert np.abs(head_w).max() <= hb and np.abs(head_b).max() <= hb
    assert np.abs(head_b).max() > 0  # PyTorch's Linear bias is random too
  else:
    assert w.std() == pytest.approx(np.sqrt(2 / fan_out), rel=0.02)
    assert np.abs(w).max() > 3 * np.sqrt(2 / fan_out)  # untruncated normal tails
    np.testing.assert_array_equal(head_b, 0.0)
  assert get_model("resnet18", 10).weight_init == "pytorch_default"
  with pytest.raises(ALError, match="unknown resnet weight_init"):
    get_model("resnet18", 10, weight_init="xavier")
