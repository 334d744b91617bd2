"""The train step writes back exactly what a task declares for each step."""

import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from gan_jax import parallel
from gan_jax.train_step import write_back

HELD = {"g_state": {"batch_stats": jnp.float32(1.0), "w_avg": jnp.float32(2.0)},
        "d_state": {"batch_stats": jnp.float32(3.0)}, "task_state": {"pool": jnp.int32(4)}}


def test_write_back_replaces_fields_and_single_collections():
    writes = {"d_state": {"batch_stats": jnp.float32(30.0)}, "g_state/w_avg": jnp.float32(20.0),
              "task_state": {"pool": jnp.int32(40)}}
    run = jax.shard_map(lambda: write_back(HELD, writes, ("d_state", "g_state/w_avg", "task_state"),
                                           "discriminator_loss"),
                        mesh=parallel.make_mesh(jax.devices()[:1]), in_specs=(), out_specs=P())
    held = jax.tree.map(lambda x: x.item(), run())
    assert held == {"g_state": {"batch_stats": 1.0, "w_avg": 20.0},
                    "d_state": {"batch_stats": 30.0}, "task_state": {"pool": 40}}


def test_an_undeclared_or_missing_write_is_refused_at_trace_time():
    with pytest.raises(ValueError, match=r"^task.generator_loss wrote back \['d_state', 'g_state'\] "
                                         r"but the task declares \['g_state'\]$"):
        write_back(HELD, {"g_state": {}, "d_state": {}}, ("g_state",), "generator_loss")
    with pytest.raises(ValueError, match=r"wrote back \[\] but the task declares \['task_state'\]"):
        write_back(HELD, {}, ("task_state",), "discriminator_loss")
