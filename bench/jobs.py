#!/usr/bin/env python3
"""Job start latency and throughput of a Kiln server (issue 3's benchmark).

Starts `target/release/kiln server` on a loopback port over a fresh data directory (authentication on: every
request carries the administrator token the first start prints), then:
  1. submits N jobs one after another, each waiting for the previous one to end, and measures the time
     from the POST to the trainer's first instruction (the trainer prints `date +%s%N` as it starts);
  2. submits a burst of jobs and measures jobs per second until all have ended;
  3. reads the server's resident memory when idle.
Prints a table. Standard library only; run from the repository root after `cargo build --release`:

    python3 bench/jobs.py [--sequential 50] [--burst 200]
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


def main():
    global TOKEN
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--kiln", default="target/release/kiln")
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")

    data_dir = tempfile.mkdtemp(prefix="kiln-bench-jobs-")
    server = subprocess.Popen([args.kiln, "server", "--bind", "127.0.0.1:0", "--data-dir", data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(word for word in server.stdout.readline().split() if word.startswith("http://"))
        TOKEN = server.stdout.readline().split()[-1]
        api = f"{url}/v1/projects/bench"
        time.sleep(0.5)
        idle_rss = rss_mib(server.pid)

        latencies = []
        for index in range(args.sequential):
            job_id = f"seq_{index}"
            submitted = time.time_ns()
            call("POST", f"{api}/jobs", job(job_id))
            wait_ended(api, [job_id])
            latencies.append((start_ns(api, job_id) - submitted) / 1e6)

        burst_ids = [f"burst_{index}" for index in range(args.burst)]
        began = time.monotonic()
        for job_id in burst_ids:
            call("POST", f"{api}/jobs", job(job_id))
        wait_ended(api, burst_ids)
        elapsed = time.monotonic() - began
        states = {call("GET", f"{api}/jobs/{job_id}")["state"] for job_id in burst_ids}
        busy_rss = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    latencies.sort()
    rows = [
        ("submit-to-trainer-start, median", f"{statistics.median(latencies):.1f} ms", "<= 100 ms"),
        ("submit-to-trainer-start, p90", f"{latencies[int(0.9 * (len(latencies) - 1))]:.1f} ms", ""),
        ("submit-to-trainer-start, max", f"{latencies[-1]:.1f} ms", ""),
        (f"throughput, {args.burst} jobs submitted at once", f"{args.burst / elapsed:.1f} jobs/s", ""),
        ("burst end states", ", ".join(sorted(states)), "SUCCEEDED"),
        ("server RSS idle / after the burst", f"{idle_rss:.1f} / {busy_rss:.1f} MiB", ""),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'measure':<{width}}  {'value':>22}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>22}  {goal}")


if __name__ == "__main__":
    main()
