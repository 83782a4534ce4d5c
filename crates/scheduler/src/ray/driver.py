"""Kiln's Ray driver: places a gang's replicas together, then runs each one's launcher.

Started by the Ray executor as a Ray job's entrypoint, in one of two modes:
    python driver.py gang KILN GANG_FILE COUNT CPUS MEMORY_BYTES GPUS
        runs one gang and exits as its master's launcher did;
    python driver.py pool KILN HOME
        runs every gang asked for in HOME/requests (one JSON file each: gang, count, cpus, memory,
        gpus), so the trials of a tuning job start without a Ray job's start-up each; exits once
        HOME/done exists, or nothing was asked for a while, and no gang runs.
A gang of several replicas gets one bundle each of a placement group (spread over nodes where it
can be), so they start together or not at all. A gang whose `stop` file appears while it waits for
resources is given up.
"""
import json
import os
import subprocess
import sys
import threading
import time

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

# A pool with nothing to run for this long ends (the server that used it may be gone).
IDLE_SECONDS = 120


@ray.remote(max_retries=0)
def replica(kiln, gang, rank):
    launcher = [kiln, "replica", "--gang", gang, "--rank", str(rank), "--exit-with-parent"]
    return subprocess.run(launcher).returncode


def started_or_given_up(ref, gang, cancel):
    """Waits for `ref` (a placement group's readiness, or a task's end); False when the gang was
    stopped before its master's launcher published an address (a started launcher watches the
    stop file itself), cancelling the task when `cancel`."""
    directory = os.path.dirname(gang)
    while not ray.wait([ref], timeout=0.5)[0]:
        if os.path.exists(os.path.join(directory, "stop")) and not os.path.exists(
                os.path.join(directory, "0.addr")):
            if cancel:
                ray.cancel(ref, force=True)
            return False
    return True


def run_gang(kiln, gang, count, cpus, memory, gpus):
    """Runs the gang's replicas; the master's exit code, or None when stopped before it started."""
    options = {"num_cpus": cpus, "memory": memory, "num_gpus": gpus}
    if count == 1:
        master = replica.options(**options).remote(kiln, gang, 0)
        return ray.get(master) if started_or_given_up(master, gang, cancel=True) else None
    bundle = {"CPU": cpus, "memory": memory}
    if gpus:
        bundle["GPU"] = gpus
    group = placement_group([dict(bundle) for _ in range(count)], strategy="SPREAD")
    try:
        if not started_or_given_up(group.ready(), gang, cancel=False):
            return None
        running = [
            replica.options(
                **options,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=group, placement_group_bundle_index=rank
                ),
            ).remote(kiln, gang, rank)
            for rank in range(count)
        ]
        return ray.get(running)[0]
    finally:
        remove_placement_group(group)


def serve(kiln, asked):
    """Runs a gang asked of a pool and records, beside it, how its tasks ended (`ray.end`)."""
    gang = asked["gang"]
    try:
        code = run_gang(kiln, gang, int(asked["count"]), float(asked["cpus"]), int(asked["memory"]),
                        float(asked["gpus"]))
        words = ("stopped before Ray started it" if code is None
                 else f"its master's launcher exited with {code}")
    except Exception as error:  # a task Ray could not run, or lost with its node
        words = f"Ray could not run it: {error}"
    path = os.path.join(os.path.dirname(gang), "ray.end")
    with open(path + ".tmp", "w") as file:
        file.write(words + "\n")
    os.rename(path + ".tmp", path)


def gang_mode(kiln, gang, count, cpus, memory, gpus):
    ray.init()
    code = run_gang(kiln, gang, int(count), float(cpus), int(memory), float(gpus))
    sys.exit(1 if code is None else code)


def pool_mode(kiln, home):
    requests = os.path.join(home, "requests")
    os.makedirs(requests, exist_ok=True)
    ray.init()
    seen, running = set(), []
    idle_since = time.monotonic()
    while True:
        for name in sorted(os.listdir(requests)):
            if not name.endswith(".json") or name in seen:
                continue
            seen.add(name)
            with open(os.path.join(requests, name)) as file:
                asked = json.load(file)
            thread = threading.Thread(target=serve, args=(kiln, asked), daemon=True)
            thread.start()
            running.append(thread)
        running = [thread for thread in running if thread.is_alive()]
        if running:
            idle_since = time.monotonic()
        elif os.path.exists(os.path.join(home, "done")) or time.monotonic() - idle_since > IDLE_SECONDS:
            return
        time.sleep(0.02)


if __name__ == "__main__":
    if sys.argv[1] == "pool":
        pool_mode(*sys.argv[2:4])
    else:
        gang_mode(*sys.argv[2:8])
