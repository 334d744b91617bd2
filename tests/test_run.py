"""Run.checked_train_step: compiled before training, refused when it cannot fit (issue 17.6)."""

import jax
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax import parallel
from gan_jax import run as run_lib
from gan_jax.data.pipeline import BatchIterator
from gan_jax.data.sources import make_source
from gan_jax.train import train_and_evaluate


@pytest.fixture
def compiles():
    """Names of the compile events (backend compiles, persistent-cache reads) seen while active."""
    seen = []
    listener = lambda name, *args, **kwargs: seen.append(name) if "compil" in name else None
    jax.monitoring.register_event_duration_secs_listener(listener)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listener)


def test_checked_step_fits_and_its_first_call_reuses_the_compile(tiny_config, one_device, compiles):
    run = run_lib.build_run(tiny_config, one_device)
    source = make_source("digits", 8, 1)
    step = run.checked_train_step(source.get(np.arange(1)))
    assert any("backend_compile" in name or "cache" in name for name in compiles)
    state = run.init_state()
    with BatchIterator(source, 0, 0, tiny_config.train.batch_size) as batches:
        batch = parallel.put_batch(next(batches)[1], run.mesh)
    compiles.clear()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    assert [n for n in compiles if "backend_compile" in n or "cache" in n] == []
    assert int(state.step) == 1


def test_a_step_that_cannot_fit_is_refused_with_the_figures(tiny_config, one_device, tmp_path,
                                                            monkeypatch):
    estimates = []
    step_memory = run_lib.step_memory
    monkeypatch.setattr(run_lib, "step_memory", lambda c: estimates.append(step_memory(c)) or estimates[-1])
    monkeypatch.setattr(run_lib, "device_memory", lambda device, local_devices=1: 50_000)
    with pytest.raises(config_lib.ConfigError) as e:
        train_and_evaluate(tiny_config, tmp_path / "run", devices=one_device, progress=False)
    (need,) = estimates
    assert 50_000 < need < 10**6  # the tiny step: state, batch and activations
    assert str(e.value) == (
        f"config.train.batch_size: 16 does not fit: the train step needs about "
        f"{need / 2**30:.3g} GiB per device (XLA's estimate), more than the 4.66e-05 GiB "
        f"available per cpu device; lower train.batch_size (or the model's width)")
    assert not (tmp_path / "run").exists()


def test_host_memory_is_physical_memory_or_less():
    import os

    assert 0 < run_lib.host_memory() <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
