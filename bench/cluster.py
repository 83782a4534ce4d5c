#!/usr/bin/env python3
"""Kiln on each executor beside the engine's own latency for the same work.

For each engine (local processes, Slurm, Ray; a cluster is started with `scripts/dev-cluster.sh ENGINE up`
and stopped after), with a fresh `target/release/kiln server` on it:
  1. start: a 4-replica job (a master and 3 workers of `standard` machines, each printing `date +%s%N` as it
     starts), from the POST to the last replica's start; beside it the same 4 tasks submitted directly:
     `sbatch` of `srun -n 4` through slurmrestd, a Ray job that places 4 bundles and runs 4 tasks, 4 local
     processes;
  2. tuning: a 200-trial RANDOM_SEARCH job of a trainer that only writes its metric, 8 trials at a time, from
     the POST to the end; beside it the same trainer run 200 times, 8 at a time: a Slurm job array (`%8`),
     one Ray job running 200 tasks of 8 CPUs on the 64-CPU node, a local pool of 8.
Rounds alternate Kiln and the engine's own, so the machine's slow spells hit both. Prints a table with the
ratios. Standard library only; run from the repository root after `cargo build --release`:

    python3 bench/cluster.py [--engines local,slurm,ray] [--rounds 3] [--trials 200]
"""
import argparse
import concurrent.futures
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAMP = ["sh", "-c", "date +%s%N; sleep 1"]
# The tuning trainer: writes its `--x` as the metric, where ML Engine's hypertune file goes.
WRITE = ('mkdir -p "$(dirname "$CLOUD_ML_HP_METRIC_FILE")" && '
         'printf \'{"score": %s, "global_step": 1}\\n\' "${1#--x=}" > "$CLOUD_ML_HP_METRIC_FILE"')
TRAINER = ["sh", "-c", WRITE, "trainer", "--x=0.5"]


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


def cluster(engine, action):
    """`dev-cluster.sh ENGINE ACTION`; for `up`, the environment it prints."""
    output = subprocess.run(["bash", os.path.join(ROOT, "scripts", "dev-cluster.sh"), engine, action],
                            check=True, capture_output=True, text=True).stdout
    env = {}
    for line in output.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = value
    return env


class Kiln:
    """A server on `env`'s executor."""

    def __init__(self, kiln, env):
        self.work = tempfile.mkdtemp(prefix="kiln-bench-cluster-")
        command = [kiln, "server", "--bind", "127.0.0.1:0", "--insecure-no-auth",
                   "--data-dir", os.path.join(self.work, "data"), "--allow-path", os.path.join(self.work, "jobs")]
        full_env = {**os.environ, **env}
        if not env:
            full_env.pop("KILN_EXECUTOR", None)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env=full_env)
        line = self.process.stdout.readline()
        url = next(word for word in line.split() if word.startswith("http://"))
        self.api = f"{url}/v1/projects/bench"
        self.count = 0

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=30)

    def wait(self, job_id):
        while True:
            job = http("GET", f"{self.api}/jobs/{job_id}")
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return job
            time.sleep(0.02)

    def start(self):
        """Seconds from the POST to the last of 4 replicas' start."""
        self.count += 1
        job_id = f"start_{self.count}"
        body = {"jobId": job_id, "trainingInput": {
            "scaleTier": "CUSTOM", "masterType": "standard", "workerType": "standard", "workerCount": "3",
            "masterConfig": {"containerCommand": STAMP}}}
        submitted = time.time_ns()
        http("POST", f"{self.api}/jobs", body)
        job = self.wait(job_id)
        if job["state"] != "SUCCEEDED":
            sys.exit(f"{job_id} ended {job['state']}: {job.get('errorMessage')}")
        entries = http("GET", f"{self.api}/jobs/{job_id}/logs?pageSize=1000")["entries"]
        starts = {}
        for entry in entries:
            starts.setdefault(entry["taskName"], int(entry["message"]))
        if len(starts) != 4:
            sys.exit(f"{job_id}: {len(starts)} replicas logged a start")
        return (max(starts.values()) - submitted) / 1e9

    def tuning(self, trials):
        """Seconds from the POST to the end of a `trials`-trial job, 8 at a time."""
        self.count += 1
        job_id = f"hp_{self.count}"
        body = {"jobId": job_id, "trainingInput": {
            "masterConfig": {"containerCommand": ["sh", "-c", WRITE, "trainer"]},
            "hyperparameters": {"goal": "MAXIMIZE", "hyperparameterMetricTag": "score", "maxTrials": trials,
                                "maxParallelTrials": 8, "algorithm": "RANDOM_SEARCH",
                                "params": [{"parameterName": "x", "type": "DOUBLE", "minValue": 0,
                                            "maxValue": 1}]}}}
        began = time.monotonic()
        http("POST", f"{self.api}/jobs", body)
        job = self.wait(job_id)
        elapsed = time.monotonic() - began
        done = [t for t in job["trainingOutput"].get("trials", []) if t.get("state") == "SUCCEEDED"]
        if job["state"] != "SUCCEEDED" or len(done) != trials:
            sys.exit(f"{job_id} ended {job['state']} with {len(done)} trials: {job.get('errorMessage')}")
        return elapsed


class LocalDirect:
    """The same work as local processes."""

    def start(self):
        submitted = time.time_ns()
        processes = [subprocess.Popen(STAMP, stdout=subprocess.PIPE, text=True) for _ in range(4)]
        starts = [int(process.stdout.readline()) for process in processes]
        for process in processes:
            process.wait()
        return (max(starts) - submitted) / 1e9

    def tuning(self, trials):
        work = tempfile.mkdtemp(prefix="kiln-bench-local-")

        def trial(index):
            env = {**os.environ, "CLOUD_ML_HP_METRIC_FILE": os.path.join(work, str(index), "output.metrics")}
            subprocess.run(TRAINER, check=True, env=env)
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(trial, range(trials)))
        return time.monotonic() - began


class SlurmDirect:
    """The same work submitted to slurmrestd directly."""

    def __init__(self, env):
        self.url = f"{env['KILN_SLURM_URL']}/slurm/v0.0.38"
        self.headers = {"X-SLURM-USER-NAME": env["KILN_SLURM_USER"], "X-SLURM-USER-TOKEN": env["KILN_SLURM_TOKEN"]}
        self.work = tempfile.mkdtemp(prefix="kiln-bench-slurm-")
        self.count = 0

    def submit(self, script, **job):
        self.count += 1
        job = {"name": f"direct-{self.count}", "current_working_directory": self.work,
               "environment": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
               "standard_output": os.path.join(self.work, f"direct-{self.count}-%a.out"), **job}
        answer = http("POST", f"{self.url}/job/submit", {"script": script, "job": job}, self.headers)
        return answer["job_id"]

    def wait(self, job_id):
        while True:
            jobs = http("GET", f"{self.url}/job/{job_id}", headers=self.headers)["jobs"]
            if jobs and all(job["job_state"] not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")
                            for job in jobs):
                return
            time.sleep(0.02)

    def start(self):
        out = os.path.join(self.work, f"stamps-{self.count + 1}")
        submitted = time.time_ns()
        job_id = self.submit(f"#!/bin/sh\nsrun sh -c 'date +%s%N >> {out}; sleep 1'\n", tasks=4,
                             cpus_per_task=4, memory_per_cpu=3750)
        self.wait(job_id)
        with open(out) as stamps:
            return (max(int(line) for line in stamps) - submitted) / 1e9

    def tuning(self, trials):
        began = time.monotonic()
        script = ("#!/bin/sh\nexport CLOUD_ML_HP_METRIC_FILE=trials/$SLURM_ARRAY_TASK_ID/output.metrics\n"
                  + " ".join(shlex.quote(part) for part in TRAINER) + "\n")
        job_id = self.submit(script, array=f"0-{trials - 1}%8", tasks=1, cpus_per_task=4,
                             memory_per_cpu=3750)
        self.wait(job_id)
        return time.monotonic() - began


RAY_START = """
import time, subprocess, ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
ray.init()
group = placement_group([{"CPU": 4} for _ in range(4)], strategy="SPREAD")
ray.get(group.ready())
@ray.remote
def stamp():
    return subprocess.run(["sh", "-c", "date +%s%N; sleep 1"], capture_output=True, text=True).stdout
print("STAMPS", max(int(s) for s in ray.get([stamp.options(num_cpus=4, scheduling_strategy=
    PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=i)).remote()
    for i in range(4)])))
"""

RAY_TUNING = """
import json, os, sys, subprocess, ray
ray.init()
@ray.remote(num_cpus=8)
def trial(metric_file, trainer):
    subprocess.run(trainer, check=True, env={**os.environ, "CLOUD_ML_HP_METRIC_FILE": metric_file})
trainer = json.loads(sys.argv[3])
ray.get([trial.remote(os.path.join(sys.argv[2], str(index), "output.metrics"), trainer)
         for index in range(int(sys.argv[1]))])
"""


class RayDirect:
    """The same work as Ray jobs submitted to the Jobs API directly (what `ray job submit` does)."""

    def __init__(self, env):
        self.url = env["KILN_RAY_ADDRESS"]
        self.python = env["KILN_RAY_PYTHON"]
        self.work = tempfile.mkdtemp(prefix="kiln-bench-ray-")
        for name, code in (("start.py", RAY_START), ("tuning.py", RAY_TUNING)):
            with open(os.path.join(self.work, name), "w") as script:
                script.write(code)
        self.count = 0

    def run(self, script, *args):
        self.count += 1
        submission = f"direct-{os.getpid()}-{self.count}"
        entrypoint = " ".join(shlex.quote(part) for part in (self.python, os.path.join(self.work, script), *args))
        http("POST", f"{self.url}/api/jobs/", {"entrypoint": entrypoint, "submission_id": submission})
        while True:
            status = http("GET", f"{self.url}/api/jobs/{submission}")["status"]
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            time.sleep(0.02)
        if status != "SUCCEEDED":
            sys.exit(f"Ray job {submission} {status}")
        return http("GET", f"{self.url}/api/jobs/{submission}/logs")["logs"]

    def start(self):
        submitted = time.time_ns()
        logs = self.run("start.py")
        stamp = next(line.split()[1] for line in logs.splitlines() if line.startswith("STAMPS"))
        return (int(stamp) - submitted) / 1e9

    def tuning(self, trials):
        began = time.monotonic()
        self.run("tuning.py", str(trials), os.path.join(self.work, f"trials-{self.count + 1}"), json.dumps(TRAINER))
        return time.monotonic() - began


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="local,slurm,ray")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    header = ("engine", "measure", "Kiln", "engine itself", "ratio")
    print(f"{args.rounds} rounds, Kiln and the engine alternated; {args.trials}-trial tuning jobs")
    print(" | ".join(header))
    for engine in args.engines.split(","):
        env = {} if engine == "local" else cluster(engine, "up")
        direct = {"local": LocalDirect, "slurm": lambda: SlurmDirect(env), "ray": lambda: RayDirect(env)}[engine]()
        kiln = Kiln(args.kiln, env)
        try:
            results = {("kiln", "start"): [], ("direct", "start"): [], ("kiln", "tuning"): [],
                       ("direct", "tuning"): []}
            for _ in range(args.rounds):
                for who, runner in (("kiln", kiln), ("direct", direct)):
                    results[(who, "start")].append(runner.start())
                for who, runner in (("kiln", kiln), ("direct", direct)):
                    results[(who, "tuning")].append(runner.tuning(args.trials))
        finally:
            kiln.close()
            if engine != "local":
                cluster(engine, "down")
        for measure, unit, scale in (("start", "ms", 1000), ("tuning", "s", 1)):
            ours = statistics.median(results[("kiln", measure)]) * scale
            theirs = statistics.median(results[("direct", measure)]) * scale
            label = ("4-replica job: submit to all replicas running, median" if measure == "start"
                     else f"{args.trials}-trial tuning job, 8 in parallel: wall time, median")
            print(" | ".join((engine, label, f"{ours:.1f} {unit}", f"{theirs:.2f} {unit}",
                              f"{ours / theirs:.2f}")), flush=True)


if __name__ == "__main__":
    main()
