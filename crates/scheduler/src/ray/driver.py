"""Kiln's Ray driver: places one gang's replicas together, then runs each one's launcher.

Started by the Ray executor as a Ray job's entrypoint:
    python driver.py KILN GANG_FILE COUNT CPUS MEMORY_BYTES GPUS
Every replica gets one bundle of a placement group (spread over nodes where it can be), so the
replicas start together or not at all. Exits as the master's launcher did.
"""
import subprocess
import sys

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

kiln, gang = sys.argv[1], sys.argv[2]
count, cpus, memory, gpus = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
ray.init()
bundle = {"CPU": cpus, "memory": memory}
if gpus:
    bundle["GPU"] = gpus
group = placement_group([dict(bundle) for _ in range(count)], strategy="SPREAD")
ray.get(group.ready())


@ray.remote(max_retries=0)
def replica(rank):
    launcher = [kiln, "replica", "--gang", gang, "--rank", str(rank), "--exit-with-parent"]
    return subprocess.run(launcher).returncode


running = [
    replica.options(
        num_cpus=cpus,
        memory=memory,
        num_gpus=gpus,
        scheduling_strategy=PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_bundle_index=rank
        ),
    ).remote(rank)
    for rank in range(count)
]
codes = ray.get(running)
sys.exit(codes[0])
