#!/usr/bin/env python3
"""HyperTune benchmark: Kiln's tuner beside Optuna 5's samplers and random search, in three suites.

- single: median log10 simple regret over seeds at 20/50/100 trials on Branin-2, Hartmann-6, a
  log-scaled Rosenbrock-4, a mixed categorical/integer/log/reverse-log space, Ackley-5 and a
  conditional space (a categorical parent choosing between two child subspaces),
  sequential and with 4 parallel trials (asynchronous: 4 trials in flight, the oldest finishes, one
  more is asked for), against TPE and GP.
- multi: median hypervolume after 100 trials on ZDT1, ZDT2 and DTLZ2 (bench/hpo_multi.py), against
  NSGA-II, multi-objective TPE and GP.
- latency: one suggestion after 100 and 1,000 completed trials in 6-D, median and p99, peak RSS: the
  tuner alone, then `trials:suggest` through a real server (after `cargo build --release`).

Kiln's tuner runs as
`cargo run --release -p kiln-tuner --example ask_tell` (JSON lines over a pipe, the whole history
each time, as the service does); Optuna runs in this process.

    python3 bench/hpo.py                 # full run (10 seeds); creates bench/.venv-hpo on first use
    python3 bench/hpo.py --seeds 3 --problems branin,mixed --suites single
    python3 bench/hpo.py --suites multi --multi-problems zdt1 --seeds 3

The first run installs optuna 5, scipy and torch (CPU wheels when download.pytorch.org is reachable,
else PyPI's, several GB) into bench/.venv-hpo.
"""
import argparse
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import envs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "bench", ".venv-hpo")
CHECKPOINTS = (20, 50, 100)
SOLVED = 1e-8  # regrets below this count as solved (log10 = -8)


def ensure_venv():
    envs.ensure(VENV, ["optuna>=5,<6", "scipy"], torch=True)


# ---- problems: (parameters, function of a dict, optimum) -------------------------------------------

def branin(x):
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi**2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (x["x2"] - b * x["x1"] ** 2 + c * x["x1"] - r) ** 2 + s * (1 - t) * math.cos(x["x1"]) + s


HARTMANN_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
HARTMANN_P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
              [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
HARTMANN_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(x):
    v = [x[f"x{i}"] for i in range(6)]
    return -sum(HARTMANN_ALPHA[i] * math.exp(-sum(HARTMANN_A[i][j] * (v[j] - HARTMANN_P[i][j] * 1e-4) ** 2 for j in range(6)))
                for i in range(4))


def rosenbrock4(x):
    v = [x[f"x{i}"] for i in range(4)]
    return sum(100 * (v[i + 1] - v[i] ** 2) ** 2 + (1 - v[i]) ** 2 for i in range(3))


def mixed(x):
    penalty = {"adam": 0.0, "sgd": 0.8, "rmsprop": 0.3, "adagrad": 1.2}[x["optimizer"]]
    return ((math.log10(x["lr"]) + 2.5) ** 2 / 4 + ((x["layers"] - 7) / 5) ** 2 + penalty
            + (math.log10(1 - x["momentum"]) + 2) ** 2 / 2 + ((x["units"] - 96) / 64) ** 2)


def ackley5(x):
    v = [x[f"x{i}"] for i in range(5)]
    n = len(v)
    return (-20 * math.exp(-0.2 * math.sqrt(sum(t * t for t in v) / n)) - math.exp(sum(math.cos(2 * math.pi * t) for t in v) / n)
            + 20 + math.e)


def conditional(x):
    """An optimizer choosing between two subspaces; the best loss, 0, is in adam's."""
    if x["optimizer"] == "sgd":
        return 0.1 + (math.log10(x["sgd_lr"]) + 1.5) ** 2 / 4 + (math.log10(1 - x["momentum"]) + 1.5) ** 2 / 2
    return ((math.log10(x["adam_lr"]) + 3) ** 2 / 4 + ((x["layers"] - 5) / 4) ** 2
            + (math.log10(1 - x["beta2"]) + 3) ** 2 / 2)


def double(name, low, high, scale="LINEAR", parent=None):
    param = {"name": name, "type": "DOUBLE", "min": low, "max": high, "scale": scale}
    if parent:
        param["parent"], param["parentValues"] = "optimizer", [parent]
    return param


def active(param, x):
    """Whether a (conditional) parameter takes a value given those before it."""
    return "parent" not in param or x.get(param["parent"]) in param["parentValues"]


PROBLEMS = {
    "branin": ([double("x1", -5, 10), double("x2", 0, 15)], branin, 0.397887357729739),
    "hartmann6": ([double(f"x{i}", 0, 1) for i in range(6)], hartmann6, -3.32236801141551),
    "rosenbrock4_log": ([double(f"x{i}", 0.1, 3, "LOG") for i in range(4)], rosenbrock4, 0.0),
    "mixed": ([double("lr", 1e-6, 1, "LOG"), {"name": "layers", "type": "INTEGER", "min": 1, "max": 50, "scale": "LINEAR"},
               {"name": "optimizer", "type": "CATEGORICAL", "values": ["sgd", "adam", "rmsprop", "adagrad"]},
               double("momentum", 0.5, 0.9999, "REVERSE_LOG"),
               {"name": "units", "type": "INTEGER", "min": 8, "max": 1024, "scale": "LOG"}], mixed, 0.0),
    # The optimum (0) is off the centre of the box, so no design that starts at the centre gets it free.
    "ackley5": ([double(f"x{i}", -15, 30) for i in range(5)], ackley5, 0.0),
    # A categorical parent choosing between two child subspaces (Vizier's childParameterSpecs).
    "conditional": ([{"name": "optimizer", "type": "CATEGORICAL", "values": ["sgd", "adam"]},
                     double("sgd_lr", 1e-5, 1, "LOG", "sgd"), double("momentum", 0.5, 0.9999, "REVERSE_LOG", "sgd"),
                     double("adam_lr", 1e-5, 1, "LOG", "adam"), double("beta2", 0.9, 0.99999, "REVERSE_LOG", "adam"),
                     {"name": "layers", "type": "INTEGER", "min": 1, "max": 8, "scale": "LINEAR",
                      "parent": "optimizer", "parentValues": ["adam"]}], conditional, 0.0),
}


# ---- runners: each returns the objective values in completion order -------------------------------

def drive(ask, tell, trials, parallel):
    """Sequential when parallel == 1, else `parallel` trials in flight, oldest finishing first."""
    pending = []
    values = []
    while len(values) < trials:
        while len(pending) < parallel and len(values) + len(pending) < trials:
            pending.append(ask(pending))
        handle = pending.pop(0)
        values.append(tell(handle, pending))
    return values


def run_kiln(problem, seed, trials, parallel, algorithm="BAYESIAN"):
    params, function, _ = PROBLEMS[problem]
    names = [p["name"] for p in params]
    process = subprocess.Popen([kiln_binary()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    process.stdin.write(json.dumps({"params": params, "goal": "MINIMIZE", "algorithm": algorithm, "seed": seed}) + "\n")
    completed = []
    latencies = []

    def ask(pending):
        request = {"completed": completed, "pending": [p for p in pending], "count": 1}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        latencies.append(answer["seconds"])
        return answer["suggestions"][0]

    def tell(values, _pending):
        y = function(dict(zip(names, values)))
        completed.append({"values": values, "objective": y})
        return y

    result = drive(ask, tell, trials, parallel)
    process.stdin.close()
    process.wait()
    return result, latencies


def optuna_suggest(trial, param):
    import optuna  # noqa: F401 (only inside the venv)
    kind, name = param["type"], param["name"]
    if kind == "CATEGORICAL":
        return trial.suggest_categorical(name, param["values"])
    if kind == "INTEGER":
        return trial.suggest_int(name, param["min"], param["max"], log=param["scale"] == "LOG")
    if param["scale"] == "REVERSE_LOG":
        # Optuna has no reverse log scale: sample the mirrored value on a log scale.
        low, high = param["min"], param["max"]
        return high + low - trial.suggest_float(name + "_mirrored", low, high, log=True)
    return trial.suggest_float(name, param["min"], param["max"], log=param["scale"] == "LOG")


def run_optuna(problem, seed, trials, parallel, sampler_name):
    import optuna
    import torch
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params, function, _ = PROBLEMS[problem]
    sampler = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=parallel > 1),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[sampler_name]()
    study = optuna.create_study(direction="minimize", sampler=sampler)
    latencies = []

    def ask(_pending):
        started = time.perf_counter()
        trial = study.ask()
        x = {}
        for param in params:
            if active(param, x):
                x[param["name"]] = optuna_suggest(trial, param)
        latencies.append(time.perf_counter() - started)
        return trial, x

    def tell(handle, _pending):
        trial, x = handle
        y = function(x)
        study.tell(trial, y)
        return y

    return drive(ask, tell, trials, parallel), latencies


def kiln_binary():
    return os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples", "ask_tell")


def one(task):
    method, problem, seed, parallel = task
    trials = CHECKPOINTS[-1]
    if method == "kiln":
        values, latencies = run_kiln(problem, seed, trials, parallel)
    else:
        values, latencies = run_optuna(problem, seed, trials, parallel, method)
    optimum = PROBLEMS[problem][2]
    regrets = []
    best = math.inf
    for value in values:
        best = min(best, value)
        regrets.append(math.log10(max(best - optimum, SOLVED)))
    return task, [regrets[n - 1] for n in CHECKPOINTS], sum(latencies) / len(latencies)


def p99(times):
    """The nearest-rank 99th percentile."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def suggestion_latency():
    """Seconds of one suggestion after 100 and 1,000 completed random trials on Hartmann-6 (6-D), a
    fresh history and process per sample, and the process's peak RSS."""
    import random
    params, function, _ = PROBLEMS["hartmann6"]
    print("kiln suggestion latency, Hartmann-6 (6-D), one suggestion after N completed trials\n")
    print(f"{'trials':>6} {'samples':>7} {'median ms':>9} {'p99 ms':>7} {'peak RSS MiB':>12}")
    for history, samples in ((100, 100), (1000, 20)):
        times, peaks = [], []
        for seed in range(samples):
            rng = random.Random(seed)
            completed = []
            for _ in range(history):
                values = [rng.random() for _ in params]
                completed.append({"values": values, "objective": function({p["name"]: v for p, v in zip(params, values)})})
            process = subprocess.Popen([kiln_binary()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            process.stdin.write(json.dumps({"params": params, "goal": "MINIMIZE", "seed": seed}) + "\n")
            process.stdin.write(json.dumps({"completed": completed, "pending": [], "count": 1}) + "\n")
            process.stdin.flush()
            times.append(json.loads(process.stdout.readline())["seconds"])
            process.stdin.close()
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = 0
            peaks.append(usage.ru_maxrss / 1024)
        print(f"{history:>6} {samples:>7} {statistics.median(times) * 1000:>9.1f} {p99(times) * 1000:>7.1f} {max(peaks):>12.1f}")


def server_latency():
    """`trials:suggest` through a real server (`target/release/kiln`, SQLite): a study over Hartmann-6's
    space with 100, then 1,000 completed trials; each suggested trial is deleted again, so every sample
    sees the same history. The server's peak RSS from /proc."""
    import random
    import tempfile
    from store import call
    kiln = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "kiln")
    if not os.path.exists(kiln):
        print(f"(no {kiln}: run `cargo build --release` for the server's trials:suggest latency)")
        return
    params, function, _ = PROBLEMS["hartmann6"]
    data_dir = tempfile.mkdtemp(prefix="kiln-bench-hpo-")
    server = subprocess.Popen([kiln, "server", "--bind", "127.0.0.1:0", "--insecure-no-auth", "--data-dir", data_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    try:
        url = next(word for word in server.stdout.readline().split() if word.startswith("http://"))
        studies = f"{url}/v1/projects/bench/locations/us-central1/studies"
        print(f"\ntrials:suggest through the server (HTTP, SQLite), Hartmann-6's space\n")
        print(f"{'trials':>6} {'samples':>7} {'median ms':>9} {'p99 ms':>7} {'server peak RSS MiB':>19}")
        for history, samples in ((100, 100), (1000, 20)):
            study = f"{studies}/h{history}"
            call("POST", f"{studies}?studyId=h{history}", {"studyConfig": {
                "metrics": [{"metric": "y", "goal": "MINIMIZE"}],
                "parameters": [{"parameter": p["name"], "type": "DOUBLE",
                                "doubleValueSpec": {"minValue": p["min"], "maxValue": p["max"]}} for p in params]}})
            rng = random.Random(history)
            for _ in range(history):
                x = {p["name"]: rng.random() for p in params}
                call("POST", f"{study}/trials", {
                    "parameters": [{"parameter": name, "floatValue": value} for name, value in x.items()],
                    "finalMeasurement": {"metrics": [{"metric": "y", "value": function(x)}]}})
            times = []
            for sample in range(samples):
                started = time.perf_counter()
                answer = call("POST", f"{study}/trials:suggest", {"clientId": f"c{sample}"})
                times.append(time.perf_counter() - started)
                call("DELETE", f"{url}/v1/{answer['response']['trials'][0]['name']}")
            with open(f"/proc/{server.pid}/status") as status:
                peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
            print(f"{history:>6} {samples:>7} {statistics.median(times) * 1000:>9.1f} {p99(times) * 1000:>7.1f} {peak:>19.1f}")
    finally:
        server.terminate()
        server.wait()


def run_pool(function, tasks, jobs):
    """`function` of every task on `jobs` processes, with progress on stderr; {task: result}."""
    results = {}
    started = time.time()
    with multiprocessing.Pool(jobs) as pool:
        for done, (task, *result) in enumerate(pool.imap_unordered(function, tasks), 1):
            results[task] = result
            print(f"\r{done}/{len(tasks)} runs, {time.time() - started:.0f}s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return results


def print_mean_latency(results, methods):
    """Each method's mean seconds per suggestion over its runs (the second item of each result)."""
    mean_latency = {m: statistics.mean(v[1] for k, v in results.items() if k[0] == m) for m in methods}
    print("mean seconds per suggestion over all runs: " + ", ".join(f"{m} {mean_latency[m]:.4f}" for m in methods))


def multi_objective(args):
    """Median hypervolume at 100 trials on ZDT1, ZDT2 and DTLZ2, Kiln beside Optuna's samplers."""
    import hpo_multi
    problems = [p for p in args.multi_problems.split(",") if p]
    methods = args.multi_methods.split(",")
    tasks = [(m, p, s, 100) for p in problems for m in methods for s in range(args.seeds)]
    results = run_pool(hpo_multi.one, tasks, args.jobs)
    print(f"median hypervolume after 100 trials over {args.seeds} seeds (higher is better; reference points in bench/hpo_multi.py)\n")
    header = f"{'problem':8} " + " ".join(f"{m:>9}" for m in methods)
    rivals = [m for m in methods if m not in ("kiln", "random")]
    if "kiln" in methods and rivals:
        header += "  kiln/best-optuna  bar"
    print(header)
    print("-" * len(header))
    misses = 0
    for problem in problems:
        medians = {m: statistics.median(results[(m, problem, s, 100)][0] for s in range(args.seeds)) for m in methods}
        row = f"{problem:8} " + " ".join(f"{medians[m]:9.4f}" for m in methods)
        if "kiln" in methods and rivals:
            best = max(medians[m] for m in rivals)
            ok = medians["kiln"] > best
            misses += not ok
            row += f"  {medians['kiln'] / best:16.3f}  {'ok' if ok else 'MISS'}"
        print(row)
    print()
    print_mean_latency(results, methods)
    if "kiln" in methods and rivals:
        print(f"problems where Kiln's median hypervolume is not above every Optuna sampler's: {misses}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="single,multi,latency", help="which parts to run, comma-separated")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default="kiln,tpe,gp,random")
    parser.add_argument("--parallel", default="1,4", help="trials in flight, comma-separated")
    parser.add_argument("--multi-problems", default="zdt1,zdt2,dtlz2")
    parser.add_argument("--multi-methods", default="kiln,nsga2,tpe,gp,random")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once")
    args = parser.parse_args()
    suites = args.suites.split(",")
    methods = args.methods.split(",")
    if any(method != "kiln" for method in methods + args.multi_methods.split(",")):
        ensure_venv()
    subprocess.check_call(["cargo", "build", "--quiet", "--release", "-p", "kiln-tuner", "--example", "ask_tell"], cwd=ROOT)
    if "single" in suites:
        single_objective(args, methods)
    if "multi" in suites:
        multi_objective(args)
    if "latency" in suites:
        suggestion_latency()
        server_latency()


def single_objective(args, methods):
    """Median log10 regret at 20, 50 and 100 trials, Kiln beside Optuna's samplers."""
    problems = args.problems.split(",")
    modes = [int(p) for p in args.parallel.split(",")]
    tasks = [(m, p, s, par) for p in problems for par in modes for m in methods for s in range(args.seeds)]
    results = run_pool(one, tasks, args.jobs)

    print(f"median log10 simple regret over {args.seeds} seeds (lower is better; {math.log10(SOLVED):.0f} = solved)\n")
    header = f"{'problem':16} {'par':>3} {'trials':>6} " + " ".join(f"{m:>8}" for m in methods)
    if "kiln" in methods and ("tpe" in methods or "gp" in methods):
        header += "  kiln/best-optuna regret  bar"
    print(header)
    print("-" * len(header))
    failures = 0
    for problem in problems:
        for parallel in modes:
            for at, trials in enumerate(CHECKPOINTS):
                medians = {m: statistics.median(results[(m, problem, s, parallel)][0][at] for s in range(args.seeds)) for m in methods}
                row = f"{problem:16} {parallel:>3} {trials:>6} " + " ".join(f"{medians[m]:8.2f}" for m in methods)
                optuna = [medians[m] for m in ("tpe", "gp") if m in medians]
                if "kiln" in medians and optuna:
                    ratio = 10 ** (medians["kiln"] - min(optuna))
                    beats_random = "random" not in medians or medians["kiln"] < medians["random"]
                    ok = ratio <= 2 and beats_random
                    if trials >= 50:
                        failures += not ok
                    row += f"  {ratio:22.2f}  {('ok' if ok else 'MISS') if trials >= 50 else '-'}"
                print(row)
    print()
    print_mean_latency(results, methods)
    if "kiln" in methods and len(methods) > 1:
        print(f"rows at 50 and 100 trials missing the bar (within 2x of the better Optuna sampler, better than random): {failures}")


if __name__ == "__main__":
    main()
