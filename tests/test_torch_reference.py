"""The PyTorch reference networks of the vs_torch benchmark compute what al_jax computes.

Needs the optional [torch] extra; without it every test but the last skips with a reason.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from al_jax import ALError
from al_jax.acquisition.gradnorm import entropy_grad_norm, factorised_entropy_grad_norms
from al_jax.data import Preprocess
from al_jax.models import get_model
from al_jax.objectives.supervised import Supervised
from al_jax.outputs import entropy
from experiments.benchmarks import torch_reference as tr
from experiments.configs import get_config

# The cpu preset's 28×28 small CNN (fashion_mnist, mnist) and the CIFAR ResNet-18.
CNN28 = ("small_cnn", dict(widths=(32, 64, 128), flatten=True), (28, 28, 1))
RESNET = ("resnet18", {}, (32, 32, 3))


@pytest.fixture(scope="module")
def torch():
  return pytest.importorskip(
      "torch", reason="PyTorch is not installed (optional extra: pip install -e .[torch])")


def _variables(name, kw, shape, n=4, seed=0):
  """Initial al_jax variables with running statistics of a real batch (the initial ones,
  0 and 1, would leave the logits nearly input-independent), a uint8 batch and its prep."""
  prep = Preprocess(mean=(0.5,) * shape[-1], std=(0.25,) * shape[-1])
  x = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
  v = get_model(name, 10, **kw).init(jax.random.PRNGKey(seed), jnp.zeros((1, *shape)))
  # bn_momentum=0: the running statistics become the batch's in one train-mode call.
  xs = prep.eval(jnp.asarray(x[::-1])) * 0.9
  _, upd = get_model(name, 10, **kw, bn_momentum=0.0).apply(
      v, xs, train=True, dropout=False, mutable=["batch_stats"])
  return {"params": v["params"], "batch_stats": upd["batch_stats"]}, x, prep


@pytest.mark.parametrize("name,kw,shape", [
    CNN28, ("small_cnn", {}, (16, 16, 3)), ("small_cnn", dict(widths=(8, 16)), (8, 8, 1)),
    RESNET], ids=["small_cnn_28_flatten", "small_cnn_gap", "small_cnn_8x8", "resnet18"])
def test_logits_match_on_ported_weights(torch, name, kw, shape):
  v, x, prep = _variables(name, kw, shape)
  want = np.asarray(get_model(name, 10, **kw).apply(v, prep.eval(jnp.asarray(x)))[0])
  model = tr.load_variables(tr.build(name, 10, shape, **kw), v)
  got = tr.eval_logits(model, tr.to_nchw(x), prep.mean, prep.std).numpy()
  # The logits depend on the input (else only the head bias would be compared).
  assert want.std(0).mean() > 0.05
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_flatten_rows_are_permuted(torch):
  """Without the [h,w,c] → [c,h,w] permutation of the Dense after a flatten, logits differ."""
  name, kw, shape = CNN28
  v, x, prep = _variables(name, kw, shape)
  model = tr.build(name, 10, shape, **kw)
  sd = tr.port_variables(v, model)
  k = np.asarray(v["params"]["Dense_0"]["kernel"])
  sd["Dense_0.weight"] = torch.tensor(k.T.copy())  # unpermuted
  model.load_state_dict(sd)
  got = tr.eval_logits(model, tr.to_nchw(x), prep.mean, prep.std).numpy()
  want = np.asarray(get_model(name, 10, **kw).apply(v, prep.eval(jnp.asarray(x)))[0])
  assert np.abs(got - want).max() > 1e-2


def test_port_rejects_another_model(torch):
  v, _, _ = _variables("small_cnn", dict(widths=(8, 16)), (8, 8, 1))
  with pytest.raises(ALError, match="no PyTorch twin|not set"):
    tr.port_variables(v, tr.build("small_cnn", 10, (8, 8, 1), widths=(8, 32)))


def test_init_matches_al_jax_init_family(torch):
  """Same init distributions: per-layer weight std within 10% of al_jax's draws."""
  for name, kw, shape in (CNN28, RESNET):
    v = get_model(name, 10, **kw).init(jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
    sd = tr.build(name, 10, shape, **kw).state_dict()
    ported = tr.port_variables(v, tr.build(name, 10, shape, **kw))
    for key, a in ported.items():
      if key.endswith("weight") and a.ndim >= 2 and a.numel() >= 1000:
        s_jax, s_torch = float(a.std()), float(sd[key].std())
        assert abs(s_torch / s_jax - 1) < 0.1, (name, key, s_jax, s_torch)
        # max/std separates the families: uniform √3, lecun's truncated normal 2/0.88, an
        # untruncated normal ≈ 4 at these sizes.
        tail = lambda w: float(w.abs().max() / w.std())
        assert abs(tail(sd[key]) / tail(a) - 1) < 0.3, (name, key, tail(a), tail(sd[key]))


@pytest.mark.parametrize("name,kw,shape,preset", [
    (*CNN28, ("entropy", "fashion_mnist", "cpu")),
    ("resnet18", dict(width_multiplier=0.125), (32, 32, 3), ("lplgrad", "cifar10", "paper"))],
    ids=["small_cnn_adam", "resnet18_sgd"])
def test_one_train_step_matches(torch, name, kw, shape, preset):
  """One supervised step from the same weights: same loss, same updated weights; running
  variances differ only by PyTorch's unbiased batch variance (×n/(n−1))."""
  cfg = get_config(*preset)
  kw = {**kw, "dropout_rate": 0.0}  # dropout masks come from different generators
  v, x, prep = _variables(name, kw, shape, n=8)
  obj = Supervised(model=get_model(name, 10, **kw), prep=prep, num_classes=10,
                   optim_cfg=cfg.optim, epochs=1)
  state = obj.init(jax.random.PRNGKey(0), jnp.asarray(x[:1]))
  state = state.replace(params=v["params"], batch_stats=v["batch_stats"])
  y = np.arange(8) % 10
  new, metrics = jax.jit(obj.train_step)(
      state, {"x": jnp.asarray(x), "y": jnp.asarray(y, jnp.int32), "mask": jnp.ones(8)}, None,
      jax.random.PRNGKey(1))
  model = tr.load_variables(tr.build(name, 10, shape, **kw), v)
  opt = tr.make_optimizer(model, cfg.optim)
  loss = tr.train_step(model, opt, tr.to_nchw(x), torch.as_tensor(y), prep.mean, prep.std)
  np.testing.assert_allclose(float(loss), float(metrics["loss"]), rtol=1e-5)
  after = tr.port_variables({"params": new.params, "batch_stats": new.batch_stats}, model)
  got = model.state_dict()
  lr = float(cfg.optim.lr)
  moved = 0
  for key, want in after.items():
    if key.endswith("num_batches_tracked"):
      continue
    before = tr.port_variables(v, model)[key]
    if key.endswith("running_var"):
      # PyTorch: 0.9·r + 0.1·var·n/(n−1); Flax: 0.9·r + 0.1·var (n values per channel).
      mod = model.get_submodule(key.rsplit(".", 1)[0])
      n = _bn_count(model, mod, x.shape[0], shape)
      m = 1.0 - mod.momentum
      want = m * before + (want - m * before) * n / (n - 1)
      np.testing.assert_allclose(got[key].numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
      continue
    if key.endswith("running_mean"):
      np.testing.assert_allclose(got[key].numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
      continue
    # Updates agree to 2% of the tensor's largest update, but for at most 1 in 10^4 weights:
    # Adam's first update g/(|g| + eps) is ±lr where |g| ≫ eps and turns on float32
    # rounding where |g| ~ eps (measured: 1 weight of 147,456).
    du_got, du_want = (got[key] - before).numpy(), (want - before).numpy()
    scale = np.abs(du_want).max()
    bad = np.abs(du_got - du_want) > 2e-2 * scale + 1e-7
    assert bad.mean() <= 1e-4, (key, bad.sum(), np.abs(du_got - du_want).max(), scale)
    moved += int(scale > lr * 0.1)
  assert moved > 10  # the step moved the weights


def _bn_count(model, bn, batch, shape):
  """Values per channel a BatchNorm normalises over in a train step: B·h·w of its input."""
  torch = pytest.importorskip("torch")
  sizes = {}
  hooks = [m.register_forward_hook(lambda m, i, o: sizes.__setitem__(m, o.shape))
           for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  with torch.no_grad():
    model.eval()
    model(torch.zeros(batch, shape[-1], shape[0], shape[1]))
  for h in hooks:
    h.remove()
  b, _, h, w = sizes[bn]
  return b * h * w


def test_scores_match(torch):
  """Entropy and per-sample entropy-gradient norms (batch-1 loop) equal al_jax's."""
  name, kw, shape = CNN28
  v, x, prep = _variables(name, kw, shape, n=6)
  model = get_model(name, 10, **kw)
  fn = lambda vv, xx, **k: model.apply(vv, xx, **k)
  from al_jax.state import ModelState
  state = ModelState(apply_fn=fn, variables=v)
  xe = prep.eval(jnp.asarray(x))
  tmodel = tr.load_variables(tr.build(name, 10, shape, **kw), v)
  xt = tr.to_nchw(x)
  np.testing.assert_allclose(tr.entropy_scores(tmodel, xt, prep.mean, prep.std, 4).numpy(),
                             np.asarray(entropy(state(xe)[0])), rtol=1e-5, atol=1e-6)
  for norm in ("sum", "global"):
    want = np.asarray(factorised_entropy_grad_norms(state, xe, norm))
    got = tr.entropy_gradnorms(tmodel, xt, prep.mean, prep.std, norm).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4)
  one = np.asarray(jax.jit(entropy_grad_norm, static_argnums=2)(state, xe[0], "global"))
  np.testing.assert_allclose(got[0], one, rtol=1e-4)


def test_section_without_torch_prints_how_to_install(monkeypatch, capsys):
  from experiments.benchmarks import vs_torch
  monkeypatch.setattr(tr, "torch", None)
  assert not tr.available()
  assert vs_torch.vs_torch(types.SimpleNamespace(quick=True)) == []
  out = capsys.readouterr().out.strip().splitlines()
  assert len(out) == 1 and "not installed" in out[0] and "pip install" in out[0]
  with pytest.raises(ALError, match="not installed"):
    tr.build("small_cnn", 10, (8, 8, 1))
