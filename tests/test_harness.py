"""The test harness itself: what a test session leaves behind."""

import os
import subprocess
import sys
from pathlib import Path


def test_the_suite_deletes_its_compilation_cache(tmp_path):
    """conftest's per-session XLA cache (made in TMPDIR) is gone when the session ends."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "GAN_JAX_TEST_COMPILATION_CACHE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_layout.py::test_find_cycle_on_a_known_graph"],
        env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert not list(tmp_path.glob("gan_jax_xla_cache_*"))


def test_importing_the_commands_starts_no_jax_backend():
    """Multi-process runs call jax.distributed.initialize after the imports; a module-level JAX
    array anywhere in them (ada.py's once did) starts the backend first and the run fails."""
    code = ("import gan_jax.train, gan_jax.sample, gan_jax.evaluate, gan_jax.translate, "
            "gan_jax.export, gan_jax.ada, gan_jax.masks, gan_jax.tasks\n"
            "from jax._src import xla_bridge\n"
            "assert not xla_bridge.backends_are_initialized()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
