#!/usr/bin/env python3
"""Job start latency and throughput of a Kiln server (issue 3's benchmark).

Starts `target/release/kiln server` on a loopback port over a fresh data directory (authentication on: every
request carries the administrator token the first start prints), then:
  1. submits N jobs one after another, each waiting for the previous one to end, and measures the time
     from the POST to the trainer's first instruction (the trainer prints `date +%s%N` as it starts);
  2. submits a burst of jobs and measures jobs per second until all have ended;
  3. reads the server's resident memory when idle.
  4. with --trainings N, times N census Wide & Deep jobs (one epoch) from submit to end.
With --compare-sandbox ROUNDS it alternates servers whose job processes are confined (`--sandbox auto`)
and unconfined (`--sandbox off`) and prints both with their ratio.
Prints a table. Standard library only; run from the repository root after `cargo build --release`:

    python3 bench/jobs.py [--sequential 50] [--burst 200] [--trainings 3] [--compare-sandbox 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


TOKEN = None


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def job(job_id):
    return {"jobId": job_id, "trainingInput": {"masterConfig": {"containerCommand": ["sh", "-c", "date +%s%N"]}}}


def wait_ended(api, job_ids):
    pending = set(job_ids)
    while pending:
        for job_id in list(pending):
            if call("GET", f"{api}/jobs/{job_id}")["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                pending.discard(job_id)
        if pending:
            time.sleep(0.005)


def start_ns(api, job_id):
    entries = call("GET", f"{api}/jobs/{job_id}/logs")["entries"]
    return int(entries[0]["message"])


def census_job(job_id, root, work):
    census = os.path.join(root, "data", "census")
    return {"jobId": job_id, "trainingInput": {
        "masterConfig": {"imageUri": "kiln/wide_deep"},
        "args": [f"--training_data_path={census}/adult.data.csv.gz",
                 f"--validation_data_path={census}/adult.test.csv.gz",
                 f"--schema={census}/schema.yaml", "--num_epochs=1"],
        "jobDir": os.path.join(work, job_id)}}


def measure(kiln, flags, sequential, burst, trainings):
    """One server with `flags`: start latencies, burst throughput, training run times, memory."""
    global TOKEN
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data_dir = tempfile.mkdtemp(prefix="kiln-bench-jobs-")
    work = tempfile.mkdtemp(prefix="kiln-bench-work-")
    command = [kiln, "server", "--bind", "127.0.0.1:0", "--data-dir", data_dir,
               "--allow-path", work, "--allow-path", os.path.join(root, "data"), *flags]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(word for word in server.stdout.readline().split() if word.startswith("http://"))
        TOKEN = server.stdout.readline().split()[-1]
        api = f"{url}/v1/projects/bench"
        time.sleep(0.5)
        idle_rss = rss_mib(server.pid)

        latencies = []
        for index in range(sequential):
            job_id = f"seq_{index}"
            submitted = time.time_ns()
            call("POST", f"{api}/jobs", job(job_id))
            wait_ended(api, [job_id])
            latencies.append((start_ns(api, job_id) - submitted) / 1e6)

        burst_ids = [f"burst_{index}" for index in range(burst)]
        began = time.monotonic()
        for job_id in burst_ids:
            call("POST", f"{api}/jobs", job(job_id))
        wait_ended(api, burst_ids)
        elapsed = time.monotonic() - began
        states = {call("GET", f"{api}/jobs/{job_id}")["state"] for job_id in burst_ids}
        busy_rss = rss_mib(server.pid)

        runs = []
        for index in range(trainings):
            job_id = f"census_{index}"
            began = time.monotonic()
            call("POST", f"{api}/jobs", census_job(job_id, root, work))
            wait_ended(api, [job_id])
            state = call("GET", f"{api}/jobs/{job_id}")["state"]
            if state != "SUCCEEDED":
                sys.exit(f"training job {job_id} ended {state}")
            runs.append(time.monotonic() - began)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"latencies": sorted(latencies), "throughput": burst / elapsed, "states": states,
            "rss": (idle_rss, busy_rss), "trainings": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--trainings", type=int, default=0,
                        help="census Wide & Deep jobs (one epoch) timed from submit to end")
    parser.add_argument("--compare-sandbox", type=int, default=0, metavar="ROUNDS",
                        help="alternate ROUNDS servers confined (--sandbox auto) and unconfined "
                             "(--sandbox off) and print both")
    parser.add_argument("--kiln", default="target/release/kiln")
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")

    if args.compare_sandbox:
        compare(args)
        return
    result = measure(args.kiln, [], args.sequential, args.burst, args.trainings)
    latencies = result["latencies"]
    rows = [
        ("submit-to-trainer-start, median", f"{statistics.median(latencies):.1f} ms", "<= 100 ms"),
        ("submit-to-trainer-start, p90", f"{latencies[int(0.9 * (len(latencies) - 1))]:.1f} ms", ""),
        ("submit-to-trainer-start, max", f"{latencies[-1]:.1f} ms", ""),
        (f"throughput, {args.burst} jobs submitted at once", f"{result['throughput']:.1f} jobs/s", ""),
        ("burst end states", ", ".join(sorted(result["states"])), "SUCCEEDED"),
        ("server RSS idle / after the burst", "%.1f / %.1f MiB" % result["rss"], ""),
    ]
    if result["trainings"]:
        rows.append(("census Wide & Deep job, 1 epoch, median", f"{statistics.median(result['trainings']):.2f} s", ""))
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'value':>22}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>22}  {goal}")


def compare(args):
    """Confined and unconfined servers alternated, so the machine's slow spells hit both."""
    configurations = {"confined": ["--sandbox", "auto"],
                      "unconfined": ["--sandbox", "off", "--allow-unconfined-code"]}
    results = {name: [] for name in configurations}
    for _ in range(args.compare_sandbox):
        for name, flags in configurations.items():
            results[name].append(measure(args.kiln, flags, args.sequential, args.burst, args.trainings))

    def pooled(name, key):
        return sorted(value for result in results[name] for value in result[key])

    rows = []
    for label, key, unit in [("submit-to-trainer-start, median", "latencies", "ms"),
                             ("census Wide & Deep job, 1 epoch, median", "trainings", "s")]:
        confined, unconfined = pooled("confined", key), pooled("unconfined", key)
        if confined and unconfined:
            a, b = statistics.median(confined), statistics.median(unconfined)
            rows.append((label, f"{a:.2f} {unit}", f"{b:.2f} {unit}", f"{a / b:.3f}"))
    throughput = {name: statistics.median(r["throughput"] for r in results[name]) for name in results}
    rows.append((f"throughput, {args.burst} jobs at once, median", f"{throughput['confined']:.1f} jobs/s",
                 f"{throughput['unconfined']:.1f} jobs/s", f"{throughput['confined'] / throughput['unconfined']:.3f}"))
    width = max(len(row[0]) for row in rows)
    print(f"{args.compare_sandbox} rounds alternated, each a fresh server")
    print(f"{'measure':<{width}}  {'confined':>14}  {'unconfined':>14}  ratio")
    for name, a, b, ratio in rows:
        print(f"{name:<{width}}  {a:>14}  {b:>14}  {ratio}")


if __name__ == "__main__":
    main()
