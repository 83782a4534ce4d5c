#!/usr/bin/env python3
"""Early stopping on real learning curves: the trial steps successive halving saves in tuning jobs of Kiln's
built-in algorithms, and how close the job's best trial stays to the unstopped job's.

Each problem is a tuning job (RANDOM_SEARCH, --trials trials one at a time, the trainer's seed fixed) run twice
under the same job id in two projects, so both runs try the same hyperparameters in the same order: once without
early stopping and once with `enableTrialEarlyStopping` (successive halving over the reported steps). The runs
alternate which goes first, --rounds times. Problems (data from the repository):
  - dnn:       census, `dnn` over `--learning_rate` and `--hidden_units`, eval AUC after each of 8 epochs;
  - wide_deep: census, `wide_deep` over `--learning_rate` and `--linear_learning_rate`, eval AUC, 8 epochs;
  - digits:    scikit-learn digits, `sequential` (a small CNN, SGD with momentum) over `--learning_rate`, eval
               accuracy after each of 12 epochs.
Steps are each trial's last reported step (the built-ins report after every epoch), summed over the job; wall is
the job's run time. Best is the job's best final metric; the goal is 40% of the steps saved with the best within
1% of the unstopped job's.

    cargo build --release && python3 bench/stopping.py [--trials 20] [--rounds 1] [--problems dnn,digits]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from store import call

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DIGITS_CNN = """input: {type: image, height: 8, width: 8, scale: 0.0625}
layers:
  - {type: Conv2D, filters: 16, kernel_size: 3, padding: same, activation: relu}
  - {type: MaxPool2D, pool_size: 2}
  - {type: Flatten}
  - {type: Dense, units: 64, activation: relu}
  - {type: Dense, units: 10, activation: softmax}
optimizer: {type: SGD, momentum: 0.9}
"""


def log_double(name, low, high):
    return {"parameterName": name, "type": "DOUBLE", "minValue": low, "maxValue": high,
            "scaleType": "UNIT_LOG_SCALE"}


def problems(work):
    # The server reads data only from the locations its projects may use, which include the temporary
    # directory: the data is copied there.
    data = os.path.join(work, "data-in")
    shutil.copytree(os.path.join(ROOT, "data"), data)
    census = [
        f"--training_data_path={data}/census/adult.data.csv.gz",
        f"--validation_data_path={data}/census/adult.test.csv.gz",
        f"--schema={data}/census/schema.yaml",
        "--batch_size=32", "--num_epochs=8", "--seed=7",
    ]
    definition = os.path.join(data, "digits_cnn.yaml")
    with open(definition, "w") as file:
        file.write(DIGITS_CNN)
    return {
        "dnn": ("kiln/dnn", census, "auc", [
            log_double("learning_rate", 1e-4, 0.3),
            {"parameterName": "hidden_units", "type": "CATEGORICAL", "categoricalValues": ["16", "64,32", "256,128"]},
        ]),
        "wide_deep": ("kiln/wide_deep", census, "auc", [
            log_double("learning_rate", 1e-4, 0.3),
            log_double("linear_learning_rate", 1e-4, 0.3),
        ]),
        "digits": ("kiln/sequential", [
            f"--model_definition={definition}",
            f"--training_data_path={data}/sklearn-toy/digits.csv.gz",
            "--label_column=-1", "--batch_size=16", "--num_epochs=12", "--seed=7",
        ], "accuracy", [log_double("learning_rate", 1e-4, 0.3)]),
    }


def run_job(url, project, job_id, problem, trials, stopping, work):
    image, args, tag, params = problem
    body = {"jobId": job_id, "trainingInput": {
        "masterConfig": {"imageUri": image},
        "args": args,
        "jobDir": os.path.join(work, project, job_id),
        "region": "us-central1",
        "hyperparameters": {"goal": "MAXIMIZE", "hyperparameterMetricTag": tag, "maxTrials": trials,
                            "maxParallelTrials": 1, "algorithm": "RANDOM_SEARCH",
                            "enableTrialEarlyStopping": stopping, "params": params},
    }}
    began = time.perf_counter()
    call("POST", f"{url}/v1/projects/{project}/jobs", body)
    while True:
        job = call("GET", f"{url}/v1/projects/{project}/jobs/{job_id}")
        if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            break
        time.sleep(0.5)
    wall = time.perf_counter() - began
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"{project}/{job_id} ended {job['state']}: {job.get('errorMessage')}")
    output = job["trainingOutput"]["trials"]
    by_id = {trial["trialId"]: trial for trial in output}
    steps = sum(int(trial["allMetrics"][-1]["trainingStep"]) for trial in output if trial.get("allMetrics"))
    best = max(trial["finalMetric"]["objectiveValue"] for trial in output if "finalMetric" in trial)
    stopped = sum(1 for trial in output if trial.get("isTrialStoppedEarly"))
    return {"steps": steps, "best": best, "wall": wall, "stopped": stopped, "trials": by_id}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--problems", default="dnn,wide_deep,digits")
    options = parser.parse_args()
    kiln = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "kiln")
    work = tempfile.mkdtemp(prefix="kiln-bench-stopping-")
    server = subprocess.Popen([kiln, "server", "--bind", "127.0.0.1:0", "--insecure-no-auth",
                               "--data-dir", os.path.join(work, "data")],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rows = []
    try:
        url = next(word for word in server.stdout.readline().split() if word.startswith("http://"))
        catalogue = problems(work)
        for name in options.problems.split(","):
            for round_index in range(options.rounds):
                job_id = f"{name}_{round_index}"
                order = [False, True] if round_index % 2 == 0 else [True, False]
                runs = {stopping: run_job(url, "stopping-on" if stopping else "stopping-off", job_id,
                                          catalogue[name], options.trials, stopping, work)
                        for stopping in order}
                off, on = runs[False], runs[True]
                same = all(on["trials"][key]["hyperparameters"] == trial["hyperparameters"]
                           for key, trial in off["trials"].items())
                assert same, "both runs must try the same hyperparameters"
                rows.append((name, round_index, off, on))
                print(json.dumps({"problem": name, "round": round_index,
                                  "off": {k: v for k, v in off.items() if k != "trials"},
                                  "on": {k: v for k, v in on.items() if k != "trials"}}), flush=True)
    finally:
        server.terminate()
        server.wait()
    print(f"\nEarly stopping (successive halving) on real learning curves: {options.trials} trials, random search,"
          " one at a time\n")
    header = (f"{'problem':<10} {'round':>5} {'steps off':>10} {'steps on':>9} {'saved':>6} {'stopped':>7} "
              f"{'best off':>9} {'best on':>8} {'best ratio':>10} {'wall off s':>10} {'wall on s':>9}")
    print(header)
    for name, round_index, off, on in rows:
        saved = 1 - on["steps"] / off["steps"]
        print(f"{name:<10} {round_index:>5} {off['steps']:>10} {on['steps']:>9} {saved:>6.1%} "
              f"{on['stopped']:>4}/{options.trials:<2} {off['best']:>9.4f} {on['best']:>8.4f} "
              f"{on['best'] / off['best']:>10.4f} {off['wall']:>10.1f} {on['wall']:>9.1f}")


if __name__ == "__main__":
    main()
