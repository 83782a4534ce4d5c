#!/usr/bin/env python3
"""Online prediction through two servers on one database against one server (issue 27's benchmark).

Trains the census Wide & Deep model for one epoch (`kiln train`), starts `target/release/kiln server` on a
fresh PostgreSQL database (`scripts/dev-cluster.sh postgres up`, which this script runs when KILN_DATABASE is
not set) and deploys the model through it, then starts a second server on the same database and data
directory. `wrk` (one thread) sends census predictions of --instances instances each for --seconds, rounds
alternated:
  - one server: all connections to the first server;
  - two servers: as many connections to each, two `wrk` at once, their req/s summed (each server's batches are
    as deep as the one server's).
With --pin (the default on a machine of fewer than 8 cores), every server runs on the last core (`taskset`) and
`wrk` on the others, so both setups have the same one core for serving and the ratio is the per-core figure:
what sharing a database costs a server. Without it, each server gets a core of its own and wrk the rest.
Standard library, `psql`, `wrk` and `taskset` only; from the repository root after `cargo build --release`:

    python3 bench/servers.py [--rounds 3] [--seconds 10] [--connections 16] [--instances 1]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

from serve import post_script
from store import ROOT, call, postgres_url, psql

CORES = os.cpu_count() or 1


def postgres_database(name):
    admin = postgres_url()
    psql(admin, f"DROP DATABASE IF EXISTS {name}")
    psql(admin, f"CREATE DATABASE {name}")
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(admin)._replace(path=f"/{name}"))


def train(kiln, work):
    job_dir = os.path.join(work, "census")
    data = os.path.join(ROOT, "data/census")
    subprocess.run([kiln, "train", "wide_deep", f"--job-dir={job_dir}",
                    f"--training_data_path={data}/adult.data.csv.gz",
                    f"--validation_data_path={data}/adult.test.csv.gz",
                    f"--schema={data}/schema.yaml", "--num_epochs=1"],
                   check=True, capture_output=True)
    return os.path.join(job_dir, "model")


class Server:
    def __init__(self, kiln, data_dir, database, cores, allow):
        command = ["taskset", "-c", cores, kiln, "server", "--bind", "127.0.0.1:0", "--insecure-no-auth",
                   "--data-dir", data_dir, "--database", database, "--allow-path", allow,
                   "--http-threads", "1", "--predict-workers", "1"]
        env = {key: value for key, value in os.environ.items() if key != "KILN_DATABASE"}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env=env)
        self.url = next(word for word in self.process.stdout.readline().split() if word.startswith("http://"))
        self.predict = f"{self.url}/v1/projects/bench/models/census:predict"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def drive(urls, connections, seconds, script, cores):
    """Runs one `wrk` per URL at once, `connections` each; the summed req/s."""
    share = connections
    runs = [subprocess.Popen(["taskset", "-c", cores, "wrk", "-t1", f"-c{share}", f"-d{seconds}s", "-s", script,
                              url], stdout=subprocess.PIPE, text=True) for url in urls]
    total = 0.0
    for run in runs:
        out = run.communicate()[0]
        if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
            sys.exit(f"failed requests\n{out}")
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=CORES < 8)
    parser.add_argument("--kiln", default="target/release/kiln")
    args = parser.parse_args()
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    if CORES < 2:
        sys.exit("needs at least 2 cores: one for the servers, one for wrk")
    work = tempfile.mkdtemp(prefix="kiln-bench-servers-")
    model = train(args.kiln, work)
    database = postgres_database("kiln_bench_servers")
    data_dir = os.path.join(work, "data")
    last = str(CORES - 1)
    server_cores = [last, last] if args.pin else [str(CORES - 1), str(CORES - 2)]
    wrk_cores = f"0-{CORES - 2}" if args.pin else f"0-{max(0, CORES - 3)}"
    servers = [Server(args.kiln, data_dir, database, cores, work) for cores in server_cores]
    try:
        first = servers[0]
        call("POST", f"{first.url}/v1/projects/bench/models", {"name": "census"})
        operation = call("POST", f"{first.url}/v1/projects/bench/models/census/versions",
                         {"name": "v1", "deploymentUri": model})
        name = operation["name"]
        while not call("GET", f"{first.url}/v1/{name}").get("done"):
            time.sleep(0.1)
        with open(os.path.join(ROOT, "data/census/test.json")) as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        body = {"instances": [rows[index % len(rows)] for index in range(args.instances)]}
        for server in servers:
            call("POST", server.predict, body)
        script = post_script(work, body)
        results = {"one server": [], "two servers": []}
        for _ in range(args.rounds):
            results["one server"].append(drive([first.predict], args.connections, args.seconds, script,
                                               wrk_cores))
            results["two servers"].append(drive([server.predict for server in servers], args.connections,
                                                args.seconds, script, wrk_cores))
    finally:
        for server in servers:
            server.stop()
    where = (f"every server on core {last}, wrk on cores {wrk_cores}" if args.pin
             else f"servers on cores {', '.join(server_cores)}, wrk on cores {wrk_cores}")
    print(f"census Wide & Deep, {args.instances} instance(s) per request, {args.connections} connections, "
          f"{args.seconds} s x {args.rounds} rounds alternated; {where}; one PostgreSQL database")
    print(f"{'setup':<12} {'req/s (median)':>15} {'runs':>30}")
    for setup, values in results.items():
        runs = ", ".join(f"{value:.0f}" for value in values)
        print(f"{setup:<12} {statistics.median(values):>15.0f} {runs:>30}")
    ratio = statistics.median(results["two servers"]) / statistics.median(results["one server"])
    print(f"two servers / one server: {ratio:.2f}" + (" (per core)" if args.pin else ""))


if __name__ == "__main__":
    main()
