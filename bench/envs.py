"""The benchmarks' virtual environments: created on first use beside the scripts, then re-entered."""
import os
import subprocess
import sys

TORCH_CPU = "https://download.pytorch.org/whl/cpu"


def ensure(venv, packages, torch=False):
    """Re-runs the calling script inside `venv`, creating it with `packages` (and torch: CPU wheels when
    download.pytorch.org is reachable, else PyPI's) the first time."""
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(python):
        print(f"creating {venv} ({', '.join((['torch'] if torch else []) + packages)})...", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        pip = [python, "-m", "pip", "install", "-q"]
        if torch and subprocess.call(pip + ["torch", "--index-url", TORCH_CPU]) != 0:
            subprocess.check_call(pip + ["torch"])
        subprocess.check_call(pip + packages)
    os.execv(python, [python] + sys.argv)
