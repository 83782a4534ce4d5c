#!/usr/bin/env python3
"""Serving speed (issue 6's benchmark): the census Wide & Deep exported to ONNX, served over loopback HTTP by
Kiln, MLflow (`mlflow models serve`) and the KServe Python model server, in one run.

The model is bench/train.py's PyTorch Wide & Deep, trained one epoch and exported to ONNX (inputs: 8 categorical
ids, 12 wide ids, 5 z-scored numerics; output: the probability of >50K). Each server gets the same rows in its own
request format: Kiln and KServe `{"instances": [{"cat": [...], "wide": [...], "num": [...]}, ...]}`, MLflow
`{"inputs": {"cat": [[...]], ...}}`. MLflow and KServe run ONNX Runtime inside their Python workers; Kiln runs
the ONNX file behind its dynamic batcher on ONNX Runtime too: the version and the batch prediction name the engine
(`ONNX_RUNTIME`), so Kiln builds its own ONNX Runtime environment if it finds none, and the table prints the
engine each served on. `wrk` (one thread) drives each server for `--seconds`:

- req/s, p50 and p99 latency at 1 and at 64 instances per request, and the server's RSS (its processes summed);
- Kiln's rows/s at 512 instances per request against ONNX Runtime called in-process on batches of 512 (the limit
  of any HTTP server around that runtime), as JSON `:predict` and as Open Inference Protocol v2 binary tensors
  (`Inference-Header-Content-Length`, outputs binary too);
- batch prediction over `--rows` JSON lines (default 1M): `kiln local batch-predict` against a Python script that
  reads the lines, runs ONNX Runtime on batches of 512 and writes a result line each.

Every server and ONNX Runtime get 2 threads or workers (the machine this targets has 2 cores). Kiln runs twice:
with 1 HTTP thread and 2 model workers (its default on 2 cores), and with 1 + 1 (`--predict-workers 1`), which
leaves the load generator a core: fewer requests at saturation, a shorter tail.

    python3 bench/serve.py            # after `cargo build --release`; needs wrk (apt-get install wrk)
    python3 bench/serve.py --oip-ab 5 # only OIP binary tensors against ONNX Runtime in-process, alternated
    python3 bench/serve.py --observe-ab 5 --baseline /tmp/kiln-before   # the access log's and metrics' cost

The first run creates bench/.venv-serve (torch for the export, onnxruntime, mlflow, kserve). Prints a table and
the ratios.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import envs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-serve")
THREADS = 2


def ensure_venv():
    envs.ensure(VENV, ["onnx", "onnxscript", "onnxruntime", "numpy", "mlflow", "kserve"], torch=True)


# ---- the model ------------------------------------------------------------------------------------------

def export(directory):
    """Trains bench/train.py's PyTorch Wide & Deep one epoch, writes directory/model.onnx; returns test rows."""
    import torch
    import train
    model, test = train.torch_census(1, lambda: None, lambda epoch, accuracy: print(
        f"PyTorch Wide & Deep: epoch {epoch}, eval accuracy {accuracy:.4f}", file=sys.stderr))

    class Serving(torch.nn.Module):
        """The trained network with its EmbeddingBag as a gather and a sum (plain ONNX operators)."""
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, cat, wide, num):
            net = self.net
            deep_in = torch.cat([e(cat[:, i]) for i, e in enumerate(net.embeddings)] + [num], 1)
            wide_logit = torch.nn.functional.embedding(wide, net.wide.weight).sum(dim=(1, 2))
            return torch.sigmoid(net.deep(deep_in).squeeze(1) + wide_logit)

    cat, wide, num, _ = (torch.from_numpy(array) for array in test)
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(Serving().eval(), (cat[:2], wide[:2], num[:2]), input_names=["cat", "wide", "num"],
                                output_names=["probability"], dynamic_shapes=({0: batch}, {0: batch}, {0: batch}),
                                opset_version=18, dynamo=True, verbose=False)
    os.makedirs(directory, exist_ok=True)
    program.save(os.path.join(directory, "model.onnx"))
    return [{"cat": c, "wide": w, "num": n} for c, w, n in zip(test[0].tolist(), test[1].tolist(),
                                                                test[2].tolist())]


def feeds(rows):
    """ONNX Runtime's inputs for a list of row objects."""
    import numpy as np
    return {"cat": np.array([row["cat"] for row in rows], dtype=np.int64),
            "wide": np.array([row["wide"] for row in rows], dtype=np.int64),
            "num": np.array([row["num"] for row in rows], dtype=np.float32)}


def ort_session(model_dir):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    return onnxruntime.InferenceSession(os.path.join(model_dir, "model.onnx"), options)


# ---- servers ----------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url, body, headers=None):
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def get(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as response:
        return json.loads(response.read())


def wait_ready(url, body, process, log, deadline=180, headers=None):
    until = time.time() + deadline
    while time.time() < until:
        if process.poll() is not None:
            with open(log) as output:
                sys.exit(f"the server for {url} exited with {process.returncode}:\n{output.read()[-3000:]}")
        try:
            return post(url, body, headers)
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{url} did not answer within {deadline} s")


class Server:
    """A server process, its predict URL and how it wants a list of rows."""

    def __init__(self, name, command, url, body, log, env=None):
        self.name, self.url, self.body, self.log = name, url, body, log
        self.headers = {}
        # What runs the model (Kiln says, from the version) and Kiln's Open Inference Protocol URL.
        self.engine, self.oip_url = "ONNX Runtime, in Python", None
        with open(log, "w") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)

    def rss_mb(self):
        """Resident memory of the server and all its descendants."""
        parents = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    parents[int(pid)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
        tree, total = {self.process.pid}, 0
        for _ in range(4):
            tree |= {pid for pid, parent in parents.items() if parent in tree}
        for pid in tree:
            try:
                with open(f"/proc/{pid}/status") as status:
                    total += int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))
            except (OSError, AttributeError):
                pass
        return total / 1024

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def venv_env():
    """The environment with the venv's `python3` first: MLflow's CLI, and the ONNX Runtime library Kiln loads."""
    return {**os.environ, "PATH": os.path.join(VENV, "bin") + os.pathsep + os.environ["PATH"]}


def kiln_server(kiln, model_dir, work, http_threads=(THREADS + 1) // 2, predict_workers=THREADS, auth=False,
                env=None):
    """Kiln with `http_threads` serving HTTP and `predict_workers` running the model (each a thread); the defaults
    are Kiln's own on THREADS cores. With `auth`, every request carries the administrator token of its first
    start (authentication on, as a deployed server runs); else `--insecure-no-auth`. `env` adds variables (such
    as RUST_LOG). Its log, the access log included, goes to a file, as under a service manager."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/projects/bench"
    name = "Kiln" if (http_threads, predict_workers) == ((THREADS + 1) // 2, THREADS) else \
        f"Kiln, {http_threads} + {predict_workers} threads"
    name += ", auth on" if auth else ""
    log = os.path.join(work, f"kiln-{port}.log")
    server = Server(name, [kiln, "server", *([] if auth else ["--insecure-no-auth"]), "--bind",
                           f"127.0.0.1:{port}", "--data-dir", os.path.join(work, "kiln-data-" + str(port)),
                           "--allow-path", model_dir, "--http-threads", str(http_threads), "--predict-workers",
                           str(predict_workers)],
                    f"{url}/models/census:predict", lambda rows: {"instances": rows}, log,
                    env={**venv_env(), **(env or {})})
    while auth and not server.headers:
        time.sleep(0.1)
        with open(log) as output:
            token = re.search(r"^Administrator token.*: (kiln_\S+)$", output.read(), re.M)
        if token:
            server.headers = {"Authorization": f"Bearer {token.group(1)}"}
        elif server.process.poll() is not None:
            sys.exit(f"Kiln exited with {server.process.returncode}")
    wait_ready(f"{url}/models", {"name": "census"}, server.process, server.log, headers=server.headers)
    operation = post(f"{url}/models/census/versions", {"name": "v1", "deploymentUri": f"file://{model_dir}",
                                                       "engine": "ONNX_RUNTIME"}, server.headers)
    while not operation.get("done"):
        time.sleep(0.2)
        operation = get(f"http://127.0.0.1:{port}/v1/{operation['name']}", server.headers)
    if "error" in operation:
        sys.exit(f"Kiln could not load the model: {operation['error']}")
    server.engine = operation["response"]["engine"]
    server.oip_url = f"{url}/v2/models/census/infer"
    return server


def mlflow_server(model_dir, work):
    import mlflow.onnx
    import onnx
    saved = os.path.join(work, "mlflow-model")
    mlflow.onnx.save_model(onnx.load(os.path.join(model_dir, "model.onnx")), saved)
    port = free_port()
    return Server("MLflow", [os.path.join(VENV, "bin", "mlflow"), "models", "serve", "-m", saved, "-h", "127.0.0.1",
                             "-p", str(port), "--env-manager", "local", "-w", str(THREADS)],
                  f"http://127.0.0.1:{port}/invocations",
                  lambda rows: {"inputs": {name: [row[name] for row in rows] for name in ("cat", "wide", "num")}},
                  os.path.join(work, "mlflow.log"),
                  # `mlflow models serve` starts uvicorn from PATH.
                  env=venv_env())


def kserve_server(model_dir, work):
    port = free_port()
    return Server("KServe", [sys.executable, os.path.abspath(__file__), "kserve", model_dir, str(port)],
                  f"http://127.0.0.1:{port}/v1/models/census:predict", lambda rows: {"instances": rows},
                  os.path.join(work, "kserve.log"))


def run_kserve(model_dir, port):
    """The KServe Python model server (v1 protocol) with ONNX Runtime: what `kserve.Model` users write."""
    import kserve

    class Census(kserve.Model):
        def __init__(self):
            super().__init__("census")
            self.session = ort_session(model_dir)
            self.ready = True

        def predict(self, payload, headers=None):
            return {"predictions": self.session.run(None, feeds(payload["instances"]))[0].tolist()}

    kserve.ModelServer(http_port=int(port), workers=1).start([Census()])


# ---- measurements -----------------------------------------------------------------------------------------

def post_script(work, body, headers=None):
    """A `wrk` script in `work` that POSTs `body` (JSON, or bytes as they are) with `headers`; its path."""
    body_file = os.path.join(work, "body.bin")
    raw = isinstance(body, bytes)
    with open(body_file, "wb") as handle:
        handle.write(body if raw else json.dumps(body).encode())
    content_type = "application/octet-stream" if raw else "application/json"
    script = os.path.join(work, "post.lua")
    with open(script, "w") as handle:
        handle.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{content_type}"\n'
                     f'wrk.body = io.open("{body_file}", "rb"):read("*a")\n')
        for name, value in (headers or {}).items():
            handle.write(f'wrk.headers["{name}"] = "{value}"\n')
    return script


def wrk(url, body, connections, seconds, work, headers=None):
    """Drives `url` with `body` (and `headers`) on `connections` connections; returns (req/s, p50 ms, p99 ms)."""
    script = post_script(work, body, headers)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    failures = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if failures:
        sys.exit(f"{url}: {failures.group(1)} failed requests\n{out}")

    def millis(percentile):
        value, unit = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), millis(50), millis(99)


def oip_binary(rows):
    """An Open Inference Protocol v2 request for `rows` with every tensor as binary data, asking for binary
    outputs; (body, headers)."""
    header, data = {"inputs": [], "parameters": {"binary_data_output": True}}, b""
    for name, array in feeds(rows).items():
        raw = array.tobytes()
        header["inputs"].append({"name": name, "shape": list(array.shape),
                                 "datatype": "INT64" if array.dtype.kind == "i" else "FP32",
                                 "parameters": {"binary_data_size": len(raw)}})
        data += raw
    text = json.dumps(header).encode()
    return text + data, {"Inference-Header-Content-Length": str(len(text))}


def ort_in_process(model_dir, rows, seconds, rounds=3):
    """Rows/s of ONNX Runtime called directly on batches of len(rows): the best of `rounds` runs sharing `seconds`
    (a single run moved by a third from one benchmark to the next on this machine; the limit is the best)."""
    session, batch = ort_session(model_dir), feeds(rows)
    best = 0.0
    for _ in range(rounds):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / rounds:
            session.run(None, batch)
            calls += 1
        best = max(best, calls * len(rows) / (time.perf_counter() - started))
    return best


def ort_batch_script(model_dir, input_path, output_path):
    """The Python batch prediction script: JSON lines in, ONNX Runtime on batches of 512, a result line each."""
    session = ort_session(model_dir)

    def flush(rows, out):
        for probability in session.run(None, feeds(rows))[0].tolist():
            out.write(json.dumps(probability) + "\n")

    with open(input_path) as lines, open(output_path, "w") as out:
        rows = []
        for line in lines:
            rows.append(json.loads(line))
            if len(rows) == 512:
                flush(rows, out)
                rows = []
        if rows:
            flush(rows, out)


def main():
    if sys.argv[1:2] == ["kserve"]:
        ensure_venv()
        return run_kserve(*sys.argv[2:4])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiln", default=os.path.join(ROOT, "target", "release", "kiln"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--auth-ab", type=int, default=0, metavar="ROUNDS",
                        help="only Kiln at 1 instance per request, ROUNDS times with authentication on and off "
                             "alternately; prints both and the ratio")
    parser.add_argument("--oip-ab", type=int, default=0, metavar="ROUNDS",
                        help="only Kiln's Open Inference Protocol binary tensors at 512 rows per request against "
                             "ONNX Runtime in-process, alternated ROUNDS times on one warm server; prints each "
                             "round and the median ratio")
    parser.add_argument("--observe-ab", type=int, default=0, metavar="ROUNDS",
                        help="only Kiln at 1 instance per request: this build, this build without the access log, "
                             "and the --baseline binary, alternated ROUNDS times; prints each and the ratios")
    parser.add_argument("--baseline", help="the Kiln binary --observe-ab compares with")
    args = parser.parse_args()
    if args.observe_ab and not (args.baseline and os.path.exists(args.baseline)):
        sys.exit("--observe-ab needs --baseline, a kiln binary built without the access log and histograms")
    if not os.path.exists(args.kiln):
        sys.exit(f"{args.kiln} not found: run `cargo build --release` first")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    if not (args.auth_ab or args.observe_ab):
        ensure_venv()  # --auth-ab runs Kiln alone: the current Python's torch, onnx and onnxruntime do
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    work = tempfile.mkdtemp(prefix="kiln-bench-serve-")
    model_dir = os.path.join(work, "census-onnx")
    rows = export(model_dir)
    if args.auth_ab:
        return auth_ab(args, model_dir, rows, work)
    if args.observe_ab:
        return observe_ab(args, model_dir, rows, work)
    if args.oip_ab:
        return oip_ab(args, model_dir, rows, work)

    online = []
    for make in (lambda: kiln_server(args.kiln, model_dir, work),
                 lambda: kiln_server(args.kiln, model_dir, work, http_threads=1, predict_workers=1),
                 lambda: mlflow_server(model_dir, work), lambda: kserve_server(model_dir, work)):
        server = make()
        try:
            first = wait_ready(server.url, server.body(rows[:1]), server.process, server.log)
            print(f"{server.name} is up; first answer {json.dumps(first)[:80]}", file=sys.stderr)
            result = {"name": server.name}
            for size, connections in ((1, 16), (64, 8), (512, 4)):
                if size == 512 and server.name != "Kiln":
                    continue
                print(f"{server.name}: {size} instance(s) per request, {connections} connections, "
                      f"{args.seconds} s", file=sys.stderr)
                result[size] = wrk(server.url, server.body(rows[:size]), connections, args.seconds, work,
                                   server.headers)
            if server.name == "Kiln":
                body, headers = oip_binary(rows[:512])
                print(f"{server.name}: 512 instances per request as OIP binary tensors", file=sys.stderr)
                result["oip"] = wrk(server.oip_url, body, 4, args.seconds, work, {**(server.headers or {}),
                                                                                  **headers})
            result["rss"] = server.rss_mb()
            result["engine"] = server.engine
            online.append(result)
        finally:
            server.stop()
    ort_rows = ort_in_process(model_dir, rows[:512], args.seconds)

    print(f"writing {args.rows:,} JSON lines for batch prediction...", file=sys.stderr)
    lines = os.path.join(work, "instances.json")
    with open(lines, "w") as handle:
        encoded = [json.dumps(row) for row in rows]
        for index in range(args.rows):
            handle.write(encoded[index % len(encoded)] + "\n")
    started = time.perf_counter()
    subprocess.run([args.kiln, "local", "batch-predict", "--model-dir", model_dir, "--data-format", "json",
                    "--input-paths", lines, "--output-path", os.path.join(work, "kiln-out"),
                    "--max-worker-count", str(THREADS), "--batch-size", "512", "--engine", "onnx-runtime"],
                   check=True, stdout=subprocess.DEVNULL)
    kiln_batch = args.rows / (time.perf_counter() - started)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import serve; "
                    "serve.ort_batch_script(*sys.argv[2:])", os.path.dirname(os.path.abspath(__file__)),
                    model_dir, lines, os.path.join(work, "ort-out.json")], check=True)
    ort_batch = args.rows / (time.perf_counter() - started)

    print(f"\nCensus Wide & Deep (ONNX), loopback HTTP, wrk 1 thread, {args.seconds} s per row, {THREADS} threads "
          f"per server\n")
    print(f"| server | engine | req/s, 1 inst | p50 ms | p99 ms | req/s, 64 inst | p50 ms | p99 ms | RSS MB |")
    print(f"|---|---|---|---|---|---|---|---|---|")
    for result in online:
        one, many = result[1], result[64]
        print(f"| {result['name']} | {result['engine']} | {one[0]:,.0f} | {one[1]:.2f} | {one[2]:.2f} "
              f"| {many[0]:,.0f} | {many[1]:.2f} | {many[2]:.2f} | {result['rss']:.0f} |")
    kilns, python = online[:2], online[2:]
    for size in (1, 64):
        best = max(python, key=lambda result: result[size][0])
        for kiln in kilns:
            print(f"\n{size} instance(s)/request: {kiln['name']} {kiln[size][0] / best[size][0]:.1f}x the req/s of "
                  f"the best Python server ({best['name']}), p99 {kiln[size][2] / best[size][2]:.3f} of its p99")
    kiln = kilns[0]
    kiln_rows = kiln[512][0] * 512
    oip_rows = kiln["oip"][0] * 512
    print(f"\n512 instances/request: Kiln {kiln_rows:,.0f} rows/s over HTTP (JSON), {oip_rows:,.0f} rows/s (OIP v2 "
          f"binary tensors); ONNX Runtime in-process {ort_rows:,.0f} rows/s; ratios {kiln_rows / ort_rows:.2f} "
          f"(JSON), {oip_rows / ort_rows:.2f} (OIP binary)")
    print(f"\nbatch prediction ({kiln['engine']}), {args.rows:,} JSON lines: Kiln {kiln_batch:,.0f} rows/s; "
          f"Python + ONNX Runtime {ort_batch:,.0f} rows/s; ratio {kiln_batch / ort_batch:.1f}")
    shutil.rmtree(work, ignore_errors=True)


def alternate(args, rounds, arms, rows, work, title):
    """Kiln at 1 instance per request (16 connections), each of `arms` (label, function making a started server)
    in turn, `rounds` times, so the machine's slow spells hit all; prints each run and the median ratios to the
    first arm's."""
    results = {label: [] for label, _ in arms}
    for _ in range(rounds):
        for label, make in arms:
            server = make()
            try:
                wait_ready(server.url, server.body(rows[:1]), server.process, server.log, headers=server.headers)
                results[label].append(wrk(server.url, server.body(rows[:1]), 16, args.seconds, work,
                                          server.headers))
            finally:
                server.stop()
    print(f"\n{title}: census Wide & Deep (ONNX), 1 instance per request, wrk 1 thread 16 connections, "
          f"{args.seconds} s a run, {rounds} runs each, alternated\n")
    print("| server | req/s per run | p99 ms per run | median req/s |")
    print("|---|---|---|---|")
    medians = {}
    for label, runs in results.items():
        medians[label] = sorted(r[0] for r in runs)[len(runs) // 2]
        print(f"| {label} | {', '.join(f'{r[0]:,.0f}' for r in runs)} | "
              f"{', '.join(f'{r[2]:.2f}' for r in runs)} | {medians[label]:,.0f} |")
    first = arms[0][0]
    print()
    for label, _ in arms[1:]:
        print(f"median req/s, {first} / {label}: {medians[first] / medians[label]:.3f}")
    shutil.rmtree(work, ignore_errors=True)


def auth_ab(args, model_dir, rows, work):
    """Authentication on (a bearer token on every request) against off."""
    alternate(args, args.auth_ab, [
        ("authentication on", lambda: kiln_server(args.kiln, model_dir, work, auth=True)),
        ("authentication off", lambda: kiln_server(args.kiln, model_dir, work)),
    ], rows, work, "Kiln with and without authentication")


def observe_ab(args, model_dir, rows, work):
    """The access log and HTTP histograms: this build, this build with the access log off, and a baseline
    binary built without them (`--baseline`, such as the commit before them)."""
    alternate(args, args.observe_ab, [
        ("this build", lambda: kiln_server(args.kiln, model_dir, work)),
        ("this build, access log off",
         lambda: kiln_server(args.kiln, model_dir, work, env={"RUST_LOG": "info,kiln::access=off"})),
        ("baseline", lambda: kiln_server(args.baseline, model_dir, work)),
    ], rows, work, "The cost of the access log and metrics")


def oip_ab(args, model_dir, rows, work):
    """Kiln's OIP binary tensors at 512 rows per request (4 connections, as the full run) and ONNX Runtime
    in-process on batches of 512 (the best of three runs), alternated `args.oip_ab` times on one warm server."""
    body, headers = oip_binary(rows[:512])
    results = []
    server = kiln_server(args.kiln, model_dir, work)
    try:
        wait_ready(server.url, server.body(rows[:1]), server.process, server.log, headers=server.headers)
        for _ in range(args.oip_ab):
            ort = ort_in_process(model_dir, rows[:512], args.seconds)
            oip = wrk(server.oip_url, body, 4, args.seconds, work, {**(server.headers or {}), **headers})[0] * 512
            results.append((oip, ort))
    finally:
        server.stop()
    print(f"\nCensus Wide & Deep (ONNX), 512 rows per request, {args.seconds} s a run, {args.oip_ab} rounds, "
          f"alternated\n")
    print("| round | Kiln, OIP binary rows/s | ONNX Runtime in-process rows/s | ratio |")
    print("|---|---|---|---|")
    for index, (oip, ort) in enumerate(results, 1):
        print(f"| {index} | {oip:,.0f} | {ort:,.0f} | {oip / ort:.2f} |")
    ratios = sorted(oip / ort for oip, ort in results)
    print(f"\nmedian ratio {ratios[len(ratios) // 2]:.2f} (from {ratios[0]:.2f} to {ratios[-1]:.2f})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
