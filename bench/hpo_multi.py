"""Multi-objective problems for bench/hpo.py: ZDT1 and ZDT2 (two objectives) and DTLZ2 (three), all
minimised, with the hypervolume that scores a run and the runners for Kiln and Optuna.

ZDT1 and ZDT2 take 10 variables here (Zitzler, Deb and Thiele use 30: at 100 trials the GP samplers
would spend most of the run fitting 30 length scales); DTLZ2 takes its usual 12 (M = 3, k = 10).
The reference points are those the Bayesian-optimisation literature uses (BoTorch's test problems):
(11, 11) for ZDT, 1.1 in every objective for DTLZ2, whose front lies on the unit sphere."""
import json
import math
import subprocess
import time

from hpo import drive, kiln_binary


def zdt(x, shape):
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return [x[0], g * (1 - shape(x[0] / g))]


def dtlz2(x, objectives=3):
    g = sum((v - 0.5) ** 2 for v in x[objectives - 1:])
    values = []
    for i in range(objectives):
        f = 1 + g
        for v in x[: objectives - 1 - i]:
            f *= math.cos(v * math.pi / 2)
        if i > 0:
            f *= math.sin(x[objectives - 1 - i] * math.pi / 2)
        values.append(f)
    return values


PROBLEMS = {
    # name: (variables, objectives, function of a list, reference point)
    "zdt1": (10, 2, lambda x: zdt(x, math.sqrt), [11.0, 11.0]),
    "zdt2": (10, 2, lambda x: zdt(x, lambda r: r * r), [11.0, 11.0]),
    "dtlz2": (12, 3, dtlz2, [1.1, 1.1, 1.1]),
}


def hypervolume(points, reference):
    """The volume dominated by `points` (minimised) inside the box below `reference`: exact, by
    slicing along the last objective."""
    points = [p for p in points if all(v < r for v, r in zip(p, reference))]
    if not points:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    points.sort(key=lambda p: p[-1])
    volume = 0.0
    for i, point in enumerate(points):
        top = points[i + 1][-1] if i + 1 < len(points) else reference[-1]
        if top > point[-1]:
            volume += (top - point[-1]) * hypervolume([p[:-1] for p in points[: i + 1]], reference[:-1])
    return volume


def run_kiln(problem, seed, trials):
    variables, objectives, function, _ = PROBLEMS[problem]
    params = [{"name": f"x{i}", "type": "DOUBLE", "min": 0, "max": 1, "scale": "LINEAR"} for i in range(variables)]
    process = subprocess.Popen([kiln_binary()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    config = {"params": params, "metrics": [{"goal": "MINIMIZE"}] * objectives, "seed": seed}
    process.stdin.write(json.dumps(config) + "\n")
    completed, latencies = [], []

    def ask(_pending):
        process.stdin.write(json.dumps({"completed": completed, "pending": [], "count": 1}) + "\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        latencies.append(answer["seconds"])
        return answer["suggestions"][0]

    def tell(values, _pending):
        measured = function(values)
        completed.append({"values": values, "metrics": measured})
        return measured

    values = drive(ask, tell, trials, 1)
    process.stdin.close()
    process.wait()
    return values, latencies


def run_optuna(problem, seed, trials, sampler_name):
    import optuna
    import torch
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    variables, objectives, function, _ = PROBLEMS[problem]
    sampler = {
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[sampler_name]()
    study = optuna.create_study(directions=["minimize"] * objectives, sampler=sampler)
    latencies = []

    def ask(_pending):
        started = time.perf_counter()
        trial = study.ask()
        x = [trial.suggest_float(f"x{i}", 0, 1) for i in range(variables)]
        latencies.append(time.perf_counter() - started)
        return trial, x

    def tell(handle, _pending):
        trial, x = handle
        measured = function(x)
        study.tell(trial, measured)
        return measured

    return drive(ask, tell, trials, 1), latencies


def one(task):
    """(task, hypervolume after all trials, mean seconds per suggestion)."""
    method, problem, seed, trials = task
    if method == "kiln":
        values, latencies = run_kiln(problem, seed, trials)
    else:
        values, latencies = run_optuna(problem, seed, trials, method)
    return task, hypervolume(values, PROBLEMS[problem][3]), sum(latencies) / len(latencies)
