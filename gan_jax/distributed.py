"""Multi-process start-up: `jax.distributed.initialize()` when, and only when, a job has several
processes.

One rule, applied before any JAX computation (`train` calls `initialize` first thing):

1. Explicit `coordinator_address`, `num_processes`, `process_id` (any of them; `num_processes=1`
   alone means single-process): passed to `jax.distributed.initialize`, which fills in what is
   missing from the cluster environment.
2. `multihost=True` (the `--multihost` flag): `jax.distributed.initialize()` with no arguments, so
   JAX detects the cluster itself. JAX 0.10 detects Cloud TPU VMs (GCE, through the metadata
   server: what `gcloud compute tpus tpu-vm ssh --worker=all` gives), TPU on GKE
   (`TPU_WORKER_HOSTNAMES` / `TPU_PROCESS_ADDRESSES`, `MEGASCALE_*`), SLURM and Open MPI. Use it
   on TPU pod slices.
3. Neither: the environment alone decides, and only where it is unambiguous (`launcher()`):
   a SLURM job step (`srun`, so `SLURM_STEP_NODELIST` is set) with `SLURM_NTASKS` > 1; an Open MPI
   launch (`OMPI_MCA_orte_hnp_uri`) with `OMPI_COMM_WORLD_SIZE` > 1; TPU on GKE with more than one
   host in `TPU_WORKER_HOSTNAMES` / `TPU_PROCESS_ADDRESSES`, or a multislice job
   (`MEGASCALE_COORDINATOR_ADDRESS`). Anything else is a single-process run and nothing changes.

Before initializing, `jax_cpu_collectives_implementation` is set (default "gloo"): without CPU
collectives a multi-process run on CPU devices cannot all-reduce. It changes only the CPU backend,
so GPU and TPU runs are unaffected (gloo is also JAX 0.10's own default; older JAX had none).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import jax

CPU_COLLECTIVES = ("gloo", "mpi")


def _more_than_one(value: str | None) -> bool:
    try:
        return int(value or 0) > 1
    except ValueError:
        return False


def launcher(environ: Mapping[str, str] = os.environ) -> str | None:
    """The multi-process launcher `environ` shows ('slurm', 'openmpi', 'tpu'), or None."""
    if "SLURM_STEP_NODELIST" in environ and _more_than_one(environ.get("SLURM_NTASKS")):
        return "slurm"
    if "OMPI_MCA_orte_hnp_uri" in environ and _more_than_one(environ.get("OMPI_COMM_WORLD_SIZE")):
        return "openmpi"
    hosts = environ.get("TPU_PROCESS_ADDRESSES") or environ.get("TPU_WORKER_HOSTNAMES") or ""
    if len([h for h in hosts.split(",") if h.strip()]) > 1 or environ.get(
            "MEGASCALE_COORDINATOR_ADDRESS"):
        return "tpu"
    return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: Sequence[int] | None = None,
               multihost: bool = False, cpu_collectives: str = "gloo",
               environ: Mapping[str, str] = os.environ) -> bool:
    """Start the JAX distributed system if the job is multi-process (see module doc); True if so.

    Must run before any JAX computation. `cpu_collectives` is one of CPU_COLLECTIVES.
    """
    if cpu_collectives not in CPU_COLLECTIVES:
        raise ValueError(f"cpu_collectives must be one of {', '.join(CPU_COLLECTIVES)}, "
                         f"got {cpu_collectives!r}")
    explicit = (coordinator_address, process_id) != (None, None) or (num_processes or 1) > 1
    if not (explicit or multihost or launcher(environ)):
        return False
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               list(local_device_ids) if local_device_ids else None)
    return True
