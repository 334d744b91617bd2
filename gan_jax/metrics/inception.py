"""InceptionV3 as used for the standard FID score, in Flax, with a torch-free weight loader.

The network is the one pytorch-fid computes FID with (`FIDInceptionV3`): the port of TensorFlow's
2015-12-05 Inception graph. It has torchvision's Inception3 layout with four FID-specific changes:
the pool branch of the 35x35 (A), 17x17 (C) and first 8x8 (E) blocks averages over real pixels
only (padding is not counted), and the pool branch of the last 8x8 block takes a max instead of an
average. Every conv is bias-free and followed by an inference-mode BatchNorm (eps 1e-3) and ReLU;
the head is a 1008-way linear layer whose bias we drop: the logits are pool3 @ W, the ones the
reference Inception Score takes (improved-gan `inception_score/model.py` multiplies pool3 by the
softmax MatMul weight alone; torch-fidelity's IS uses `logits_unbiased`). Everything is NHWC.

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, read by `load_torch_state_dict`
without torch and without running any code from the file, mapped by `torch_to_flax`.

    extractor = InceptionExtractor()            # weights from $GAN_JAX_INCEPTION_WEIGHTS or cache
    out = extractor(images_uint8_nhwc)           # {"features": (N, 2048), "logits": (N, 1008)}
                                                 # logits = features @ W (no bias)
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import shlex
import struct
import zipfile
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_ENV_VAR = "GAN_JAX_INCEPTION_WEIGHTS"
DEFAULT_NAME = "inception_v3_fid"
INPUT_SIZE = 299
NUM_FEATURES = 2048
NUM_LOGITS = 1008
BN_EPSILON = 1e-3

__all__ = [
    "WEIGHTS_URL", "WEIGHTS_FILENAME", "WEIGHTS_ENV_VAR", "INPUT_SIZE", "NUM_FEATURES",
    "NUM_LOGITS", "InceptionV3", "preprocess", "load_torch_state_dict", "torch_to_flax",
    "UnsafePickleError", "default_weights_path", "missing_weights_message", "InceptionExtractor",
]


# --------------------------------------------------------------------------------------------
# Pooling with torch semantics (floor mode; explicit symmetric padding).
# --------------------------------------------------------------------------------------------

def _window_args(window: int, stride: int, padding: int):
    return (1, window, window, 1), (1, stride, stride, 1), ((0, 0), (padding, padding),
                                                            (padding, padding), (0, 0))


def max_pool(x: jax.Array, window: int, stride: int, padding: int = 0) -> jax.Array:
    """torch max_pool2d (ceil_mode=False): padded positions never win (they are -inf)."""
    dims, strides, pads = _window_args(window, stride, padding)
    return lax.reduce_window(x, jnp.array(-jnp.inf, x.dtype), lax.max, dims, strides, pads)


def avg_pool(x: jax.Array, window: int, stride: int, padding: int = 0,
             count_include_pad: bool = True) -> jax.Array:
    """torch avg_pool2d (ceil_mode=False).

    count_include_pad=True divides every window by window**2 (with floor mode and padding at most
    half the window, no window reaches past the padding, so that is torch's divisor too);
    count_include_pad=False divides by the number of real (unpadded) pixels in the window.
    """
    dims, strides, pads = _window_args(window, stride, padding)
    sums = lax.reduce_window(x, jnp.array(0, x.dtype), lax.add, dims, strides, pads)
    if count_include_pad or padding == 0:
        return sums / (window * window)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    counts = lax.reduce_window(ones, jnp.array(0, x.dtype), lax.add, dims, strides, pads)
    return sums / counts


# --------------------------------------------------------------------------------------------
# The network. Module names follow the torch state_dict names so the weight mapping is direct.
# --------------------------------------------------------------------------------------------

def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm(eps=1e-3, running statistics) -> ReLU."""
    features: int
    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        ph, pw = _pair(self.padding)
        x = nn.Conv(self.features, _pair(self.kernel_size), strides=_pair(self.stride),
                    padding=((ph, ph), (pw, pw)), use_bias=False, precision=self.precision,
                    name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
        return nn.relu(x)


class InceptionA(nn.Module):
    """35x35 block, FID variant: pool branch averages without counting padding."""
    pool_features: int
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = partial(BasicConv2d, precision=self.precision)
        b1 = conv(64, 1, name="branch1x1")(x)
        b5 = conv(48, 1, name="branch5x5_1")(x)
        b5 = conv(64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = conv(64, 1, name="branch3x3dbl_1")(x)
        b3 = conv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = conv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = avg_pool(x, 3, 1, 1, count_include_pad=False)
        bp = conv(self.pool_features, 1, name="branch_pool")(bp)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction block."""
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = partial(BasicConv2d, precision=self.precision)
        b3 = conv(384, 3, stride=2, name="branch3x3")(x)
        bd = conv(64, 1, name="branch3x3dbl_1")(x)
        bd = conv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = conv(96, 3, stride=2, name="branch3x3dbl_3")(bd)
        bp = max_pool(x, 3, 2)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convs, FID variant: pool branch ignores padding."""
    channels_7x7: int
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = partial(BasicConv2d, precision=self.precision)
        c7 = self.channels_7x7
        b1 = conv(192, 1, name="branch1x1")(x)
        b7 = conv(c7, 1, name="branch7x7_1")(x)
        b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = conv(c7, 1, name="branch7x7dbl_1")(x)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = avg_pool(x, 3, 1, 1, count_include_pad=False)
        bp = conv(192, 1, name="branch_pool")(bp)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction block."""
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = partial(BasicConv2d, precision=self.precision)
        b3 = conv(192, 1, name="branch3x3_1")(x)
        b3 = conv(320, 3, stride=2, name="branch3x3_2")(b3)
        b7 = conv(192, 1, name="branch7x7x3_1")(x)
        b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = conv(192, 3, stride=2, name="branch7x7x3_4")(b7)
        bp = max_pool(x, 3, 2)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 convs. FID variant: pool="avg" averages without counting
    padding (Mixed_7b); pool="max" takes a padded 3x3 max (Mixed_7c)."""
    pool: str = "avg"
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = partial(BasicConv2d, precision=self.precision)
        b1 = conv(320, 1, name="branch1x1")(x)
        b3 = conv(384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                              conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)],
                             axis=-1)
        bd = conv(448, 1, name="branch3x3dbl_1")(x)
        bd = conv(384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                              conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)],
                             axis=-1)
        if self.pool == "avg":
            bp = avg_pool(x, 3, 1, 1, count_include_pad=False)
        elif self.pool == "max":
            bp = max_pool(x, 3, 1, 1)
        else:
            raise ValueError(f"InceptionE pool must be 'avg' or 'max', got {self.pool!r}")
        bp = conv(192, 1, name="branch_pool")(bp)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """FID InceptionV3, inference only. Input: float (N, H, W, 3) already scaled to [-1, 1]
    (299x299 for the standard numbers; see `preprocess`). Returns (pool3 (N, 2048),
    unbiased logits pool3 @ W (N, 1008))."""
    precision: Any = lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        p = dict(precision=self.precision)
        x = BasicConv2d(32, 3, stride=2, name="Conv2d_1a_3x3", **p)(x)
        x = BasicConv2d(32, 3, name="Conv2d_2a_3x3", **p)(x)
        x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3", **p)(x)
        x = max_pool(x, 3, 2)
        x = BasicConv2d(80, 1, name="Conv2d_3b_1x1", **p)(x)
        x = BasicConv2d(192, 3, name="Conv2d_4a_3x3", **p)(x)
        x = max_pool(x, 3, 2)
        x = InceptionA(32, name="Mixed_5b", **p)(x)
        x = InceptionA(64, name="Mixed_5c", **p)(x)
        x = InceptionA(64, name="Mixed_5d", **p)(x)
        x = InceptionB(name="Mixed_6a", **p)(x)
        x = InceptionC(128, name="Mixed_6b", **p)(x)
        x = InceptionC(160, name="Mixed_6c", **p)(x)
        x = InceptionC(160, name="Mixed_6d", **p)(x)
        x = InceptionC(192, name="Mixed_6e", **p)(x)
        x = InceptionD(name="Mixed_7a", **p)(x)
        x = InceptionE("avg", name="Mixed_7b", **p)(x)
        x = InceptionE("max", name="Mixed_7c", **p)(x)
        features = jnp.mean(x, axis=(1, 2))
        logits = nn.Dense(NUM_LOGITS, use_bias=False, precision=self.precision, name="fc")(features)
        return features, logits


def preprocess(images: jax.Array) -> jax.Array:
    """uint8 (N, H, W, C in {1, 3}) -> float32 (N, 299, 299, 3) in [-1, 1], as pytorch-fid does:
    x / 255, bilinear resize (torch align_corners=False, no antialiasing), then 2x - 1."""
    x = images.astype(jnp.float32) / 255.0
    n, h, w, c = x.shape
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        x = jax.image.resize(x, (n, INPUT_SIZE, INPUT_SIZE, c), method="bilinear",
                             antialias=False, precision=lax.Precision.HIGHEST)
    if c == 1:
        x = jnp.broadcast_to(x, (n, INPUT_SIZE, INPUT_SIZE, 3))
    return 2.0 * x - 1.0


# --------------------------------------------------------------------------------------------
# torch .pth reading without torch: a restricted unpickler.
# --------------------------------------------------------------------------------------------

class UnsafePickleError(pickle.UnpicklingError):
    """The file asked for something a plain tensor state_dict never needs."""


_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": None,
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


def _storage_dtype(name: str) -> np.dtype:
    if name == "BFloat16Storage":
        import ml_dtypes  # shipped with jax
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_STORAGE_DTYPES[name])


class _StorageType:
    """Stand-in for a `torch.<X>Storage` class reference: only carries the element dtype."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name = name
        self.dtype = _storage_dtype(name)


class _StorageRef:
    """A storage named by the pickle; its bytes are read after unpickling."""
    __slots__ = ("key", "dtype", "numel", "view")

    def __init__(self, key: str, dtype: np.dtype, numel: int, view=None):
        self.key, self.dtype, self.numel, self.view = key, dtype, numel, view


class _TensorRef:
    """A strided view of a storage, materialised once all storages are read."""
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _StorageRef):
            raise UnsafePickleError("tensor rebuild got something that is not a storage")
        for name, v in (("offset", offset), ("size", size), ("stride", stride)):
            ok = (isinstance(v, int) if name == "offset"
                  else isinstance(v, tuple) and all(isinstance(i, int) for i in v))
            if not ok:
                raise UnsafePickleError(f"tensor rebuild got a bad {name}: {v!r}")
        if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
            raise UnsafePickleError(f"tensor rebuild got size {size} stride {stride} "
                                    f"offset {offset}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorRef):
        raise UnsafePickleError("parameter rebuild got something that is not a tensor")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, persistent: Callable[[tuple], Any] | None = None):
        super().__init__(file)
        self._persistent = persistent

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: only tensor state_dict contents "
                "are allowed") from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        return self._persistent(pid)


def _storage_from_pid(pid) -> _StorageRef:
    """('storage', <torch.XStorage>, key, location, numel[, view_metadata])."""
    if not isinstance(pid, tuple) or len(pid) not in (5, 6):
        raise UnsafePickleError(f"unexpected persistent id {pid!r}")
    kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    storage_type, key, numel = pid[1], pid[2], pid[4]
    key = key.decode("ascii") if isinstance(key, bytes) else key
    if (kind != "storage" or not isinstance(storage_type, _StorageType)
            or not isinstance(key, str) or not isinstance(numel, int) or numel < 0):
        raise UnsafePickleError(f"unexpected persistent id {pid!r}")
    view = pid[5] if len(pid) == 6 else None
    if view is not None:
        if not (isinstance(view, tuple) and len(view) == 3
                and all(isinstance(v, (int, str, bytes)) for v in view)):
            raise UnsafePickleError(f"unexpected storage view {view!r}")
    return _StorageRef(key, storage_type.dtype, numel, view)


def _materialise(obj, storages: Mapping[str, np.ndarray]):
    """Replace every _TensorRef in a (nested) container by an owned numpy array."""
    if isinstance(obj, _TensorRef):
        ref = obj.storage
        if ref.key not in storages:
            raise ValueError(f"tensor refers to missing storage {ref.key!r}")
        flat = storages[ref.key]
        if ref.view is not None:
            _, view_offset, view_size = ref.view
            flat = flat[view_offset:view_offset + view_size]
        if flat.dtype != ref.dtype:
            raise ValueError(f"storage {ref.key!r} is used with two dtypes")
        if any(s == 0 for s in obj.size):
            return np.zeros(obj.size, ref.dtype)
        last = obj.offset + sum((s - 1) * st for s, st in zip(obj.size, obj.stride))
        if last >= flat.size:
            raise ValueError(f"tensor of size {obj.size} stride {obj.stride} offset "
                             f"{obj.offset} reads past its storage of {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(
            flat[obj.offset:], shape=obj.size,
            strides=tuple(st * flat.itemsize for st in obj.stride), writeable=False)
        return np.array(view, order="C", copy=True)
    if isinstance(obj, dict):
        return {k: _materialise(v, storages) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, storages) for v in obj)
    return obj


def _native(buf: bytes, dtype: np.dtype, numel: int, byteorder: str, what: str) -> np.ndarray:
    """Raw storage bytes in the file's byte order -> owned native-order 1-D array."""
    if len(buf) != numel * dtype.itemsize:
        raise ValueError(f"{what}: {len(buf)} bytes for {numel} elements of {dtype}")
    if dtype.itemsize == 1:
        return np.frombuffer(buf, dtype).copy()
    order = "<" if byteorder == "little" else ">"
    if dtype.name == "bfloat16":  # no byte-order variant: swap as 16-bit words, then view
        return np.frombuffer(buf, order + "u2").astype("=u2").view(dtype)
    return np.frombuffer(buf, dtype.newbyteorder(order)).astype(dtype.newbyteorder("="))


def _load_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ValueError(f"{path}: not a torch.save zip archive (no single */data.pkl)")
        prefix = pkls[0][:-len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode("ascii").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"{path}: unknown byteorder {byteorder!r}")
        refs: dict[str, _StorageRef] = {}

        def persistent(pid):
            ref = _storage_from_pid(pid)
            refs.setdefault(ref.key, ref)
            return ref

        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkls[0])), persistent).load()
        storages = {}
        for key, ref in refs.items():
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise ValueError(f"{path}: missing storage record {entry}")
            storages[key] = _native(zf.read(entry), ref.dtype, ref.numel, byteorder,
                                    f"{path}: {entry}")
    return _materialise(obj, storages)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _load_legacy(path: Path) -> Any:
    """torch.save's pre-1.6 format: magic, protocol, sys_info, the object (storages as persistent
    ids), the sorted storage keys, then each storage as int64 numel + raw little-endian bytes."""
    with open(path, "rb") as f:
        if _RestrictedUnpickler(f).load() != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch checkpoint (bad magic number)")
        if _RestrictedUnpickler(f).load() != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy torch protocol version")
        sys_info = _RestrictedUnpickler(f).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian legacy checkpoints are not supported")
        refs: dict[str, _StorageRef] = {}

        def persistent(pid):
            ref = _storage_from_pid(pid)
            refs.setdefault(ref.key, ref)
            return ref

        obj = _RestrictedUnpickler(f, persistent).load()
        keys = _RestrictedUnpickler(f).load()
        if not isinstance(keys, list) or set(keys) != set(refs):
            raise ValueError(f"{path}: storage key list does not match the pickled tensors")
        storages = {}
        for key in keys:
            ref = refs[key]
            header = f.read(8)
            if len(header) != 8:
                raise ValueError(f"{path}: truncated storage {key!r}")
            (numel,) = struct.unpack("<q", header)
            if numel != ref.numel:
                raise ValueError(f"{path}: storage {key!r} has {numel} elements, "
                                 f"expected {ref.numel}")
            storages[key] = _native(f.read(numel * ref.dtype.itemsize), ref.dtype, numel,
                                    "little", f"{path}: storage {key!r}")
    return _materialise(obj, storages)


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a tensor state_dict saved by torch.save (zip format, or the legacy pre-1.6 pickle
    format) into numpy arrays, without torch and without executing code from the file: any
    pickled global other than OrderedDict, the tensor/parameter rebuild functions and the typed
    storage classes raises UnsafePickleError."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] != b"\x80":
            raise ValueError(f"{path}: not a torch.save file (neither zip nor pickle)")
        obj = _load_legacy(path)
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise ValueError(f"{path}: does not hold a flat state_dict of tensors")
    return dict(obj)


# --------------------------------------------------------------------------------------------
# torch names -> Flax variables.
# --------------------------------------------------------------------------------------------

def torch_to_flax(state_dict: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """pytorch-fid FIDInceptionV3 state_dict -> {"params": ..., "batch_stats": ...} for
    `InceptionV3`. Conv OIHW -> HWIO, fc (out, in) -> (in, out), BN weight/bias -> scale/bias,
    running_mean/var -> batch_stats mean/var; num_batches_tracked and fc.bias (the Inception
    Score's logits are unbiased, see the module docstring) are dropped. Unknown names raise
    ValueError (completeness and shapes are checked by InceptionExtractor.from_variables)."""
    params: dict = {}
    stats: dict = {}

    def put(tree, path, value):
        for p in path[:-1]:
            tree = tree.setdefault(p, {})
        if path[-1] in tree:
            raise ValueError(f"duplicate weight for {'/'.join(path)}")
        tree[path[-1]] = np.asarray(value, np.float32)

    for key, value in state_dict.items():
        parts = key.split(".")
        *mod, leaf = parts
        value = np.asarray(value)
        if parts[-1] == "num_batches_tracked" or key == "fc.bias":
            continue
        if key == "fc.weight":
            put(params, ["fc", "kernel"], value.T)
        elif mod and mod[-1] == "conv" and leaf == "weight" and value.ndim == 4:
            put(params, mod + ["kernel"], value.transpose(2, 3, 1, 0))
        elif mod and mod[-1] == "bn" and leaf in ("weight", "bias"):
            put(params, mod + ["scale" if leaf == "weight" else "bias"], value)
        elif mod and mod[-1] == "bn" and leaf in ("running_mean", "running_var"):
            put(stats, mod + ["mean" if leaf == "running_mean" else "var"], value)
        else:
            raise ValueError(f"unexpected weight {key!r} with shape {value.shape} for the FID "
                             "InceptionV3")
    return {"params": params, "batch_stats": stats}


# --------------------------------------------------------------------------------------------
# The extractor.
# --------------------------------------------------------------------------------------------

def default_weights_path() -> Path:
    env = os.environ.get(WEIGHTS_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gan_jax" / WEIGHTS_FILENAME


def missing_weights_message(path: str | os.PathLike) -> str:
    path = Path(path)
    return (f"FID InceptionV3 weights not found at {path}; download them once with: "
            f"mkdir -p {shlex.quote(str(path.parent))} && "
            f"curl -L -o {shlex.quote(str(path))} {WEIGHTS_URL}")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _variables_fingerprint(variables) -> str:
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
        arr = np.ascontiguousarray(np.asarray(leaf, np.float32))
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def random_variables(seed: int = 0) -> dict:
    """Random variables of the FID network's tree and shapes (for tests and speed measurements;
    filled with NumPy, since compiling Flax's initialiser of the whole network is slow on CPU)."""
    shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 75, 75, 3), jnp.float32))
    rng = np.random.RandomState(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['kernel']"):
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (rng.randn(*leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
        if name.endswith("['scale']") or name.endswith("['var']"):
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        return (0.1 * rng.randn(*leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, dict(shapes))


def _extract(model: InceptionV3, variables, images):
    return model.apply(variables, preprocess(images))


class InceptionExtractor:
    """uint8 images (N, H, W, C in {1, 3}) -> {"features": float32 (N, 2048) pool3,
    "logits": float32 (N, 1008) pool3 @ W without the fc bias}, with the FID InceptionV3.

    `name` and `fingerprint` (sha256 prefix of the weights file) identify the extractor for
    feature caches. Batches are padded to `batch_size`, so one compile per image size."""

    num_features = NUM_FEATURES
    num_logits = NUM_LOGITS
    FINGERPRINT_CHARS = 16

    def __init__(self, weights_path: str | os.PathLike | None = None, *, batch_size: int = 50,
                 name: str = DEFAULT_NAME):
        path = Path(weights_path).expanduser() if weights_path is not None \
            else default_weights_path()
        if not path.is_file():
            raise FileNotFoundError(missing_weights_message(path))
        fingerprint = _sha256_file(path)[:self.FINGERPRINT_CHARS]
        variables = torch_to_flax(load_torch_state_dict(path))
        self._setup(variables, name=name, fingerprint=fingerprint, batch_size=batch_size)
        self.weights_path = path

    @classmethod
    def from_variables(cls, variables, *, name: str = DEFAULT_NAME,
                       fingerprint: str | None = None, batch_size: int = 50
                       ) -> "InceptionExtractor":
        """From in-memory {"params", "batch_stats"} (e.g. `torch_to_flax(...)` or
        `InceptionV3().init(...)`). Without a fingerprint, one is hashed from the arrays."""
        self = cls.__new__(cls)
        if fingerprint is None:
            fingerprint = _variables_fingerprint(variables)[:cls.FINGERPRINT_CHARS]
        self._setup(variables, name=name, fingerprint=fingerprint, batch_size=batch_size)
        self.weights_path = None
        return self

    def _setup(self, variables, *, name, fingerprint, batch_size):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.fingerprint = fingerprint
        self.batch_size = int(batch_size)
        self.model = InceptionV3()
        variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
        _check_variables(self.model, variables)
        self.variables = jax.device_put(
            jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), variables))
        self._forward = jax.jit(partial(_extract, self.model))

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = _check_images(images)
        n = images.shape[0]
        features = np.empty((n, NUM_FEATURES), np.float32)
        logits = np.empty((n, NUM_LOGITS), np.float32)
        bs = self.batch_size
        for start in range(0, n, bs):
            batch = images[start:start + bs]
            m = batch.shape[0]
            if m < bs:
                batch = np.concatenate([batch, np.zeros((bs - m,) + batch.shape[1:], np.uint8)])
            f, l = self._forward(self.variables, batch)
            features[start:start + m] = np.asarray(f)[:m]
            logits[start:start + m] = np.asarray(l)[:m]
        return {"features": features, "logits": logits}


def _check_images(images) -> np.ndarray:
    if not isinstance(images, (np.ndarray, jax.Array)):
        raise ValueError(f"InceptionExtractor expects a uint8 numpy array (N, H, W, C), got "
                         f"{type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"InceptionExtractor expects uint8 images in [0, 255], got dtype "
                         f"{images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"InceptionExtractor expects images of shape (N, H, W, C), got shape "
                         f"{tuple(images.shape)}")
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"InceptionExtractor expects 1 or 3 channels (NHWC), got shape "
                         f"{tuple(images.shape)}")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise ValueError(f"InceptionExtractor got empty images of shape {tuple(images.shape)}")
    return np.asarray(images)


def _check_variables(model: InceptionV3, variables) -> None:
    """Same tree and shapes as the model expects, or ValueError naming the differences."""
    expected = jax.eval_shape(model.init, jax.random.key(0),
                              jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
    want = {jax.tree_util.keystr(p): tuple(v.shape)
            for p, v in jax.tree_util.tree_flatten_with_path(
                {"params": expected["params"], "batch_stats": expected["batch_stats"]})[0]}
    got = {jax.tree_util.keystr(p): tuple(np.shape(v))
           for p, v in jax.tree_util.tree_flatten_with_path(variables)[0]}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
        if wrong:
            parts.append(f"{len(wrong)} with wrong shape (e.g. {wrong[0]}: {got[wrong[0]]} "
                         f"!= {want[wrong[0]]})")
        raise ValueError("InceptionV3 variables do not match the FID network: "
                         + "; ".join(parts))
