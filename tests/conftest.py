"""Every test process sees 8 CPU devices, so multi-device code runs in the default suite.

Tests that want one device pass `devices=jax.devices()[:1]`.
"""

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Many tests train the same tiny config twice (resume, determinism, device counts), also in the
# `python -m gan_jax.train` subprocesses, which inherit these variables: a compilation cache
# private to this test session compiles each step once. Executables are deterministic, so bitwise
# comparisons are unaffected; the cache starts empty, so nothing carries over between sessions,
# and it is deleted when the session ends. GAN_JAX_TEST_COMPILATION_CACHE=0 turns it off.
if os.environ.get("GAN_JAX_TEST_COMPILATION_CACHE", "1") == "1":
    _cache_dir = tempfile.mkdtemp(prefix="gan_jax_xla_cache_")
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache_dir
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# Folders decoded by the tests are cached in a folder of this session, never in ~/.cache.
_image_cache_dir = tempfile.mkdtemp(prefix="gan_jax_image_cache_")
atexit.register(shutil.rmtree, _image_cache_dir, ignore_errors=True)
os.environ["GAN_JAX_IMAGE_CACHE"] = _image_cache_dir

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402




@pytest.fixture
def one_device():
    return jax.devices()[:1]


TINY_CONFIG_FILE = textwrap.dedent("""
    from gan_jax.configs import digits_dcgan

    def get_config():
        config = digits_dcgan.get_config()
        config.data.resolution = 8
        config.model.width = 8
        config.model.latent_dim = 8
        config.model.d_norm = "batch"  # the default's R1 doubles each test's D compile: off here
        config.loss.r1_weight = 0.0
        config.train.batch_size = 16
        config.train.num_steps = 4
        config.train.log_every_steps = 2
        config.train.sample_every_steps = 0
        config.checkpoint.every_steps = 2
        config.ema.start_step = 1
        config.ema.decay = 0.9
        config.sample.num = 4
        config.eval.every_steps = 0
        return config
""")


@pytest.fixture(scope="session")
def tiny_config_file(tmp_path_factory):
    """A config file for a DCGAN on 8x8 digits that compiles and runs a few steps in seconds."""
    path = tmp_path_factory.mktemp("configs") / "tiny.py"
    path.write_text(TINY_CONFIG_FILE)
    return path


def load_config(path):
    """get_config() of a config file."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


@pytest.fixture
def tiny_config(tiny_config_file):
    """A fresh ConfigDict of the tiny config file, for in-process runs."""
    return load_config(tiny_config_file)


def run_module(*args, timeout=180):
    """`python -m args...` in a subprocess (which inherits the 8 CPU devices)."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=timeout)


def run_main(main, argv, monkeypatch):
    """A command's `main(argv)` in this process: (exit status, stderr). The absl flags it defines
    are removed and the signal handlers restored afterwards, so the next call starts afresh."""
    import contextlib
    import io
    import signal

    from absl import app, flags
    from absl import logging  # noqa: F401  (defines its flags once, on import)

    app.define_help_flags()  # absl defines these once per process: keep them
    names = set(flags.FLAGS)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(sys, "argv", list(argv))  # config_flags reads overrides from sys.argv
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"])  # restored after the test
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        for name in set(flags.FLAGS) - names:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return code, stderr.getvalue()


def recorded_for_this_host(recorded: dict):
    """recorded[ISA] for this host's vector ISA (gan_jax.train.host_isa: XLA:CPU's kernels, so
    its bits, depend on it; README, "Reproducibility"); skips, naming why, where none is recorded
    or an ISA cap variable is set."""
    from gan_jax.train import ISA_CAP_VARIABLES, host_isa

    isa = host_isa()
    if isa not in recorded:
        pytest.skip(f"nothing recorded for a host whose widest vector ISA is {isa!r}")
    if capped := [name for name in ISA_CAP_VARIABLES if name in os.environ]:
        pytest.skip(f"recorded without {' or '.join(capped)}")
    return recorded[isa]
