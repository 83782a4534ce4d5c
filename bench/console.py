#!/usr/bin/env python3
"""Server-side time of the web console's pages with 1,000 jobs in the store (issue 7's bar: < 200 ms).

Starts `target/release/kiln server` on a loopback port over a fresh data directory (authentication on), submits
N short jobs (`sh -c 'echo ...'`) and one built-in Wide & Deep job on census (so a job has curves and logs),
waits for all of them to end, then times each request a console page makes, R times over loopback:
the page itself, the jobs list (first page of 50, a filtered page, a later page), a job's record, permissions,
logs and curves, and the models list. A page's time is the sum of its requests' medians. Prints a table.
Standard library only; run from the repository root after `cargo build --release`:

    python3 bench/console.py [--jobs 1000] [--repeat 100]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

TOKEN = None


def request(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers)) as response:
        return response.read()


def call(method, url, body=None):
    return json.loads(request(method, url, body) or b"{}")


def timed(method, url, body, repeat):
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        request(method, url, body)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], samples[-1]


def main():
    global TOKEN
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--kiln", default="target/release/kiln")
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    census = os.path.abspath("data/census")
    data_dir = tempfile.mkdtemp(prefix="kiln-bench-console-")
    work = tempfile.mkdtemp(prefix="kiln-bench-console-work-")
    server = subprocess.Popen([args.kiln, "server", "--bind", "127.0.0.1:0", "--data-dir", data_dir,
                               "--allow-path", work], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(word for word in server.stdout.readline().split() if word.startswith("http://"))
        TOKEN = server.stdout.readline().split()[-1]
        api = f"{url}/v1/projects/bench"
        time.sleep(0.5)
        call("POST", f"{api}/jobs", {"jobId": "census", "trainingInput": {
            "masterConfig": {"imageUri": "gcr.io/cloud-ml-algos/wide_deep_learner_cpu"},
            "args": [f"--training_data_path={census}/adult.data.csv.gz",
                     f"--validation_data_path={census}/adult.test.csv.gz",
                     f"--schema={census}/schema.yaml", "--num_epochs=5"],
            "jobDir": f"{work}/census"}})
        started = time.time()
        for i in range(args.jobs):
            call("POST", f"{api}/jobs", {"jobId": f"job_{i:04d}", "trainingInput": {
                "masterConfig": {"containerCommand": ["sh", "-c", f"echo job {i}"]}}})
            if i % 200 == 199:
                print(f"submitted {i + 1}/{args.jobs} jobs", file=sys.stderr)
        while True:
            running = call("GET", f"{api}/jobs?pageSize=1&filter=" + urllib.parse.quote(
                "NOT state:SUCCEEDED AND NOT state:FAILED AND NOT state:CANCELLED"))
            if not running.get("jobs"):
                break
            time.sleep(0.5)
        print(f"{args.jobs + 1} jobs ended in {time.time() - started:.1f} s", file=sys.stderr)

        newest = "orderBy=createTime%20desc"
        second = call("GET", f"{api}/jobs?pageSize=50&{newest}")["nextPageToken"]
        state_filter = urllib.parse.quote("state:SUCCEEDED AND jobId:job_09*")
        pages = {
            "jobs list": [
                ("GET", f"{url}/projects/bench/jobs", None),
                ("GET", f"{api}/jobs?pageSize=50&{newest}", None),
            ],
            "jobs list, filtered": [
                ("GET", f"{url}/projects/bench/jobs?state=SUCCEEDED&name=job_09", None),
                ("GET", f"{api}/jobs?pageSize=50&{newest}&filter={state_filter}", None),
            ],
            "jobs list, page 2": [
                ("GET", f"{url}/projects/bench/jobs?page={second}", None),
                ("GET", f"{api}/jobs?pageSize=50&{newest}&pageToken={urllib.parse.quote(second)}", None),
            ],
            "job (census, with curves)": [
                ("GET", f"{url}/projects/bench/jobs/census", None),
                ("POST", f"{api}/jobs/census:testIamPermissions", {"permissions": ["ml.jobs.cancel"]}),
                ("GET", f"{api}/jobs/census", None),
                ("GET", f"{api}/jobs/census/logs?pageToken=0", None),
                ("GET", f"{api}/jobs/census/metrics", None),
            ],
            "models list": [
                ("GET", f"{url}/projects/bench/models", None),
                ("POST", f"{api}:testIamPermissions", {"permissions": ["ml.models.create"]}),
                ("GET", f"{api}/models?pageSize=50", None),
            ],
        }
        print(f"\nServer-side time of each console page, {args.jobs + 1} jobs in the store, "
              f"{args.repeat} requests each (ms)\n")
        print(f"| {'page':26} | {'request':64} | {'p50':>6} | {'p99':>6} | {'max':>6} |")
        print(f"|{'-' * 28}|{'-' * 66}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
        for page, requests in pages.items():
            total = 0.0
            for method, target, body in requests:
                p50, p99, worst = timed(method, target, body, args.repeat)
                total += p50
                shown = target.replace(url, "")
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                print(f"| {page:26} | {method + ' ' + shown:64} | {p50:6.2f} | {p99:6.2f} | {worst:6.2f} |")
            print(f"| {page:26} | {'whole page (sum of medians; bar < 200 ms)':64} | {total:6.2f} |        |        |")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
