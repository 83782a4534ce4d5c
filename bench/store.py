#!/usr/bin/env python3
"""The metadata store: SQLite against PostgreSQL on the same machine (issue 27's benchmark).

Starts `target/release/kiln server` (no authentication, loopback) on a fresh data directory, once with the
default SQLite file and once with `--database` on the development PostgreSQL (`scripts/dev-cluster.sh
postgres up`, which this script runs when KILN_DATABASE is not set; a fresh database `kiln_bench` each
time), alternating the two for --rounds rounds, and measures through the REST API:
  1. create, get and list (pageSize 50) of models: p50 and p99 latency of --calls sequential calls each;
  2. jobs: --jobs jobs written straight into the database (copies of one real job, every 100th FAILED),
     then the first page (pageSize 100) of the jobs list, unfiltered and with `filter=state=FAILED`, each
     also sorted by `orderBy=createTime desc` (which the database sorts).
Prints a table with the PostgreSQL/SQLite ratio. Standard library and `psql` only; from the repository root
after `cargo build --release`:

    python3 bench/store.py [--rounds 2] [--calls 200] [--jobs 100000]
"""
import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


def timed(method, url, body=None):
    began = time.perf_counter()
    answer = call(method, url, body)
    return (time.perf_counter() - began) * 1000, answer


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def psql(url, sql, stdin=None):
    return subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qAt", url, "-c", sql], input=stdin,
                          check=True, capture_output=True, text=True).stdout


def postgres_url():
    url = os.environ.get("KILN_DATABASE")
    if not url:
        printed = subprocess.run(["bash", os.path.join(ROOT, "scripts/dev-cluster.sh"), "postgres", "up"],
                                 check=True, capture_output=True, text=True).stdout
        url = printed.strip().split("=", 1)[1]
    return url


class Server:
    """A server on a fresh data directory and, for PostgreSQL, a fresh database."""

    def __init__(self, kiln, backend, admin_url, name):
        self.data_dir = tempfile.mkdtemp(prefix="kiln-bench-store-")
        command = [kiln, "server", "--bind", "127.0.0.1:0", "--insecure-no-auth", "--data-dir", self.data_dir]
        self.database = None
        if backend == "postgres":
            psql(admin_url, f"DROP DATABASE IF EXISTS {name}")
            psql(admin_url, f"CREATE DATABASE {name}")
            parts = urllib.parse.urlsplit(admin_url)
            self.database = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
            command += ["--database", self.database]
        env = {key: value for key, value in os.environ.items() if key != "KILN_DATABASE"}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env=env)
        self.url = next(word for word in self.process.stdout.readline().split() if word.startswith("http://"))
        self.api = f"{self.url}/v1/projects/bench"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)

    def seed_jobs(self, count):
        """`count` copies of one real, finished job, written straight into the database."""
        call("POST", f"{self.api}/jobs", {"jobId": "seed", "trainingInput": {
            "masterConfig": {"containerCommand": ["true"]}}})
        while call("GET", f"{self.api}/jobs/seed")["state"] not in ("SUCCEEDED", "FAILED"):
            time.sleep(0.05)
        if self.database:
            body = psql(self.database, "SELECT body FROM jobs WHERE job_id = 'seed'").strip()
        else:
            with sqlite3.connect(os.path.join(self.data_dir, "kiln.db")) as db:
                body = db.execute("SELECT body FROM jobs WHERE job_id = 'seed'").fetchone()[0]
        seed = json.loads(body)
        rows = []
        later = int(time.time()) + 3600
        for index in range(count):
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(later + index * 37))
            job = dict(seed, jobId=f"job_{index:06d}", createTime=created,
                       state="FAILED" if index % 100 == 0 else "SUCCEEDED")
            rows.append(("bench", job["jobId"], json.dumps(job, separators=(",", ":"))))
        if self.database:
            lines = "".join("\t".join((project, job_id, "t", body.replace("\\", "\\\\"))) + "\n"
                            for project, job_id, body in rows)
            psql(self.database, "COPY jobs (project, job_id, done, body) FROM STDIN", stdin=lines)
            psql(self.database, "ANALYZE jobs")
        else:
            with sqlite3.connect(os.path.join(self.data_dir, "kiln.db")) as db:
                db.executemany("INSERT INTO jobs (project, job_id, done, body) VALUES (?, ?, 1, ?)", rows)


def api_round(server, calls, round_index):
    """Latencies (ms) of model create, get and list (each server starts empty)."""
    result = {"model create": [], "model get": [], "models list": []}
    for index in range(calls):
        ms, _ = timed("POST", f"{server.api}/models", {"name": f"m{round_index}_{index}"})
        result["model create"].append(ms)
    for index in range(calls):
        ms, _ = timed("GET", f"{server.api}/models/m{round_index}_{index}")
        result["model get"].append(ms)
    for _ in range(calls):
        ms, answer = timed("GET", f"{server.api}/models?pageSize=50")
        assert len(answer["models"]) == min(50, calls), answer
        result["models list"].append(ms)
    return result


def jobs_lists(server, calls, jobs):
    newest_first = "&orderBy=" + urllib.parse.quote("createTime desc")
    result = {"jobs list": [], "jobs list, filter": [], "jobs list, sorted": [], "filter, sorted": []}
    for _ in range(calls):
        for name, sort in (("jobs list", ""), ("jobs list, sorted", newest_first)):
            ms, answer = timed("GET", f"{server.api}/jobs?pageSize=100{sort}")
            assert len(answer["jobs"]) == 100, answer
            if sort:
                assert answer["jobs"][0]["jobId"] == f"job_{jobs - 1:06d}", answer["jobs"][0]
            result[name].append(ms)
        for name, sort in (("jobs list, filter", ""), ("filter, sorted", newest_first)):
            ms, answer = timed("GET", f"{server.api}/jobs?pageSize=100&filter=state%3DFAILED{sort}")
            failed = [job for job in answer["jobs"] if job["state"] == "FAILED"]
            assert len(failed) == len(answer["jobs"]) == min(100, (jobs + 99) // 100), answer
            result[name].append(ms)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=100000)
    parser.add_argument("--list-calls", type=int, default=20)
    parser.add_argument("--kiln", default="target/release/kiln")
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    admin_url = postgres_url()
    backends = ("sqlite", "postgres")
    latencies = {backend: {} for backend in backends}

    def record(backend, measured):
        for name, values in measured.items():
            latencies[backend].setdefault(name, []).extend(values)

    for round_index in range(args.rounds):
        for backend in backends:
            server = Server(args.kiln, backend, admin_url, "kiln_bench_api")
            try:
                record(backend, api_round(server, args.calls, round_index))
            finally:
                server.stop()
    servers = {backend: Server(args.kiln, backend, admin_url, "kiln_bench_jobs") for backend in backends}
    try:
        for backend, server in servers.items():
            began = time.monotonic()
            server.seed_jobs(args.jobs)
            print(f"{backend}: {args.jobs} jobs written in {time.monotonic() - began:.1f} s", file=sys.stderr)
        for _ in range(args.rounds):
            for backend, server in servers.items():
                record(backend, jobs_lists(server, args.list_calls, args.jobs))
    finally:
        for server in servers.values():
            server.stop()

    print(f"{args.rounds} rounds alternated; {args.calls} calls of each model method a round, "
          f"{args.list_calls} of each jobs list a round over {args.jobs} jobs")
    print(f"{'measure':<20} {'SQLite p50':>11} {'p99':>10} {'PostgreSQL p50':>15} {'p99':>10} {'ratio p50':>10}")
    for name in latencies["sqlite"]:
        a, b = latencies["sqlite"][name], latencies["postgres"][name]
        a50, b50 = statistics.median(a), statistics.median(b)
        print(f"{name:<20} {a50:>8.2f} ms {percentile(a, 0.99):>7.2f} ms {b50:>12.2f} ms "
              f"{percentile(b, 0.99):>7.2f} ms {b50 / a50:>10.2f}")


if __name__ == "__main__":
    main()
