"""Root-cause quality: our localiser beside CIRCA's and PyRCA's methods, on the same cases.

Data sets (fixed seeds; parameters were chosen on *other* seeds and machines, see PARAMS):

1. simulated cases from CIRCA's generator (``circa.experiment.simulation.generate``, VAR model)
   and PyRCA's (``pyrca.simulation``, linear SEM, anomaly type 0): 50-node graphs with 100
   edges, ``--cases`` cases each (5 graphs x cases/5), scored with the true graph and with a
   graph that has 10 % of its edges missing and 10 % spurious;
2. the SMD development subset (``../shared/datasets/smd``): rank a machine's 38 metrics for every
   labelled anomaly segment, HitRate@100 % / @150 % as OmniAnomaly (KDD'19) defines it.

Methods: ours (``rca.localize``), CIRCA (RHT + descendant adjustment), PyRCA's HT (with its
descendant adjustment), epsilon-Diagnosis and RCD. The last two are slow (about 5 s and 35 s a
case on a quiet core) and use no graph: they run on the first ``--eps-cases`` / ``--rcd-cases``
cases of each generator, and each row shows our AC@1 on exactly the cases that method ran on.
``--workers`` processes run the (method, case) pairs; times are per case, inside a worker.

AC@k as in the CIRCA paper: per case, the injected causes found in the top k over
min(k, number of causes), averaged; Avg@5 is the mean of AC@1..AC@5.

The libraries are benchmark-only baselines, never runtime dependencies: this script installs
``circa-clue`` and ``sfr-pyrca`` (``--no-deps``; CIRCA needs pandas < 3, PyRCA pins an old
scikit-learn it does not need for these methods) into its own venv
(``$AIOPS_RCA_BENCH_VENV``, default ``~/.cache/aiops/rca-bench-venv``, with the system's packages
visible) and re-runs itself there. What cannot be installed or imported is printed with the
reason, and the rest still runs.

Usage::

    python benchmarks/rca_quality.py [--cases 100] [--eps-cases 50] [--rcd-cases 10] [--no-venv]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SMD = ROOT.parent / "shared" / "datasets" / "smd"
SMD_TUNING = ["machine-1-2", "machine-1-3", "machine-1-4"]  # parameters chosen here
SMD_SCORED = ["machine-1-5", "machine-1-6", "machine-1-7", "machine-1-8"]
SCORING_SEED = 0  # the tuning runs used seed 1000 (CIRCA and PyRCA generators alike)
# Chosen on the tuning seeds / machines above (std_floor 0.5/1.0/1.5, propagation threshold
# 2/3/5, lags 0/1 on 60 CIRCA and 40 PyRCA cases of seed 1000; all history vs 5,000 / 20,000 rows,
# max vs mean vs p90 over the segment on SMD machines 1-2..1-4); the defaults are those values.
PARAMS: dict[str, dict[str, Any]] = {"sim": {}, "smd": {"train_points": 100_000, "window_points": 100_000}}
LIBS = ("circa-clue==0.1.1", "sfr-pyrca==1.0.1")
LIB_DEPS = ("pandas<3", "dill", "schema", "matplotlib")  # what the imported modules need


def _venv_python() -> Path:
    base = Path(os.environ.get("AIOPS_RCA_BENCH_VENV", Path.home() / ".cache" / "aiops" / "rca-bench-venv"))
    return base / "bin" / "python"


def _libs_importable() -> dict[str, str]:
    """Library -> '' when importable, else the reason."""
    out: dict[str, str] = {}
    for lib, probe in (("circa", "circa.experiment.simulation"), ("pyrca", "pyrca.analyzers.rcd")):
        try:
            __import__(probe)
            out[lib] = ""
        except Exception as exc:  # ImportError, or a module failing at import time
            out[lib] = f"{type(exc).__name__}: {str(exc)[:160]}"
    return out


def _ensure_env(args: argparse.Namespace) -> str:
    """Re-exec inside the benchmark venv (created on first use); returns why not, or ''."""
    if args.no_venv or os.environ.get("AIOPS_RCA_BENCH_CHILD"):
        return ""
    if not any(_libs_importable().values()):
        return ""
    py = _venv_python()
    steps: list[list[str]] = []
    if not py.exists():
        steps.append([sys.executable, "-m", "venv", "--system-site-packages", str(py.parent.parent)])
    steps.append([str(py), "-m", "pip", "install", "-q", *LIB_DEPS])
    steps.append([str(py), "-m", "pip", "install", "-q", "--no-deps", *LIBS])
    for cmd in steps:
        if cmd[-1] in LIBS and py.exists() and _probe(py):
            break
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            return f"could not install into {py.parent.parent}: {' '.join(cmd[2:5])}...: {tail[0][:200]}"
    env = {**os.environ, "AIOPS_RCA_BENCH_CHILD": "1", "PYTHONWARNINGS": "ignore"}
    sys.stdout.flush()
    os.execve(str(py), [str(py), *sys.argv], env)
    return ""  # not reached


def _probe(py: Path) -> bool:
    code = "import circa.experiment.simulation, pyrca.analyzers.rcd, pandas; assert pandas.__version__ < '3'"
    return subprocess.run([str(py), "-c", code], capture_output=True, timeout=300).returncode == 0


# --- simulated cases ---------------------------------------------------------------------


def run_sim(args: argparse.Namespace, libs: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    import rca_sim as S

    from rca import RcaParams

    params = RcaParams(**PARAMS["sim"])
    ours_all: dict[str, list[float]] = {"ac1": [], "ac3": [], "avg5": []}
    ours_ms: list[float] = []
    lib_best: dict[str, list[float]] = {}
    for gen, lib in (("circa", "circa"), ("pyrca", "pyrca")):
        if libs[lib]:
            print(f"# {gen} generator skipped: {lib} not importable ({libs[lib]})")
            continue
        t0 = time.perf_counter()
        cases = (S.circa_cases if gen == "circa" else S.pyrca_cases)(SCORING_SEED, args.cases, 5)
        print(f"# {gen}: {len(cases)} cases generated in {time.perf_counter() - t0:.1f} s, "
              f"{np.mean([len(c.causes) for c in cases]):.2f} causes per case")
        graphs = {
            "true graph": [c.edges for c in cases],
            "10% missing + 10% spurious": [
                S.perturb(c.edges, S.N_NODES, np.random.default_rng([SCORING_SEED, 7, i])) for i, c in enumerate(cases)
            ],
        }
        jobs: list[tuple[str, str, str, list[int]]] = []  # (dataset, method, graph, case indices)
        tasks: list[tuple[str, Any, Any, Any]] = []
        for gname in graphs:
            jobs.append((f"{gen} sim, {gname}", "ours", gname, list(range(len(cases)))))
            for name, (_, uses_graph) in S.LIBRARY_METHODS.items():
                if libs["circa" if name.startswith("circa") else "pyrca"]:
                    continue
                if not uses_graph and gname != "true graph":
                    continue  # graph-free: the same ranks as with the true graph
                limit = {"pyrca epsilon-diagnosis": args.eps_cases, "pyrca RCD": args.rcd_cases}.get(name, len(cases))
                label = f"{gen} sim, {gname}" if uses_graph else f"{gen} sim (no graph used)"
                jobs.append((label, name, gname, list(range(min(limit, len(cases))))))
        for _, name, gname, idx in jobs:
            tasks += [(name, cases[i], graphs[gname][i], params) for i in idx]
        t0 = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            results = pool.map(S.run_task, tasks, chunksize=1)
        print(f"# {gen}: {len(tasks)} method runs in {time.perf_counter() - t0:.0f} s on {args.workers} processes")
        pos = 0
        ours_acc: dict[str, dict[str, list[float]]] = {}
        for dataset, name, gname, idx in jobs:
            res = results[pos : pos + len(idx)]
            pos += len(idx)
            acc = _acc([r for r, _, _ in res], [cases[i] for i in idx])
            if name == "ours":
                ours_acc[gname] = acc
                ours_ms += [t * 1000 for _, t, _ in res]
                for k in ours_all:
                    ours_all[k] += acc[k]
                rows.append(_row(dataset, "ours", acc, res, None))
                continue
            ours_sub = float(np.mean([ours_acc[gname]["ac1"][i] for i in idx]))
            rows.append(_row(dataset, name, acc, res, ours_sub))
            lib_best.setdefault(name, []).extend(acc["ac1"])
            lib_best.setdefault(f"ours@{name}", []).extend(ours_acc[gname]["ac1"][i] for i in idx)
    return {"ours": ours_all, "ms": ours_ms, "libs": lib_best}


def _acc(ranks: list[list[int]], cases: list[Any]) -> dict[str, list[float]]:
    import rca_sim as S

    out: dict[str, list[float]] = {"ac1": [], "ac3": [], "avg5": []}
    for r, c in zip(ranks, cases, strict=True):
        ac = [S.accuracy(r, c.causes, k) for k in range(1, 6)]
        out["ac1"].append(ac[0])
        out["ac3"].append(ac[2])
        out["avg5"].append(float(np.mean(ac)))
    return out


def _row(dataset: str, method: str, acc: dict[str, list[float]], res: list[tuple[Any, float, str]],
         ours_same: float | None) -> dict[str, Any]:
    errors = [e for _, _, e in res if e]
    return {
        "dataset": dataset, "method": method, "n": len(res),
        "ac1": float(np.mean(acc["ac1"])), "ac3": float(np.mean(acc["ac3"])), "avg5": float(np.mean(acc["avg5"])),
        "ms": 1000 * float(np.mean([t for _, t, _ in res])), "ours_ac1_same_cases": ours_same,
        "errors": len(errors), "first_error": errors[0] if errors else "",
    }


# --- SMD ------------------------------------------------------------------------------------


def smd_segments(machine: str) -> list[tuple[int, int, list[int]]]:
    out = []
    for line in (SMD / machine / "interpretation_label.txt").read_text().splitlines():
        if line.strip():
            span, dims = line.strip().split(":")
            s, e = (int(v) for v in span.split("-"))
            out.append((s, e, [int(d) - 1 for d in dims.split(",")]))
    return out


def hit_rate(ranked: list[int], labelled: list[int], p: float) -> float:
    """OmniAnomaly's HitRate@P%: labelled metrics in the top ceil(P% x |labelled|)."""
    k = math.ceil(p * len(labelled))
    return len(set(ranked[:k]) & set(labelled)) / len(labelled)


def run_smd(machines: list[str]) -> dict[str, Any]:
    import pandas as pd

    from rca import RcaCase, RcaParams, localize

    params = RcaParams(**PARAMS["smd"])
    h100: list[float] = []
    h150: list[float] = []
    ms: list[float] = []
    for m in machines:
        train = pd.read_csv(SMD / m / "train.csv.gz")
        test = pd.read_csv(SMD / m / "test.csv.gz")
        cols = [c for c in train.columns if c != "timestamp"]
        both = np.vstack([train[cols].to_numpy(float), test[cols].to_numpy(float)])
        ts = pd.to_datetime(pd.concat([train["timestamp"], test["timestamp"]]), utc=True)
        ts_ms = (ts.astype("int64") // 1_000_000 if ts.dtype.unit == "ns" else ts.astype("int64") // 1000).to_numpy()
        ts_ms = np.arange(len(both), dtype=np.int64) * 60_000 + int(ts_ms[0])  # one row a minute (README)
        names = tuple(f"{m}:{c}" for c in cols)
        n_train = len(train)
        for s, e, labelled in smd_segments(m):
            a, b = n_train + s, n_train + e - 1
            case = RcaCase(ts_ms[: b + 1], both[: b + 1], names, alert_ms=int(ts_ms[a]), onset_ms=int(ts_ms[a]),
                           end_ms=int(ts_ms[b]))
            t0 = time.perf_counter()
            res = localize(case, None, params)
            ms.append(1000 * (time.perf_counter() - t0))
            ranked = [cols.index(c.metric) for c in res.causes]
            h100.append(hit_rate(ranked, labelled, 1.0))
            h150.append(hit_rate(ranked, labelled, 1.5))
    return {"n": len(h100), "h100": float(np.mean(h100)), "h150": float(np.mean(h150)), "ms": float(np.mean(ms))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100, help="cases per generator (multiple of 5)")
    ap.add_argument("--eps-cases", type=int, default=10, help="cases per generator for epsilon-Diagnosis")
    ap.add_argument("--rcd-cases", type=int, default=3, help="cases per generator for RCD")
    ap.add_argument("--workers", type=int, default=2, help="processes running the methods (one case each)")
    ap.add_argument("--no-venv", action="store_true", help="use this interpreter as it is")
    args = ap.parse_args()
    why_env = _ensure_env(args)
    if why_env:
        print(f"# library environment: {why_env}")
    libs = _libs_importable()
    for lib, why in libs.items():
        print(f"# {lib}: {'importable' if not why else 'NOT importable: ' + why}")
    import pandas as pd

    print(f"# python {sys.version.split()[0]} at {sys.executable}, pandas {pd.__version__}, numpy {np.__version__}")
    rows: list[dict[str, Any]] = []
    sim = run_sim(args, libs, rows)
    print(f"\n{'data set':<42} {'method':<24} {'n':>4} {'AC@1':>6} {'AC@3':>6} {'Avg@5':>6} {'ms/case':>8}"
          f" {'ours AC@1 same cases':>21}")
    for r in rows:
        same = f"{r['ours_ac1_same_cases']:.3f}" if r["ours_ac1_same_cases"] is not None else ""
        err = f"  ({r['errors']} failed: {r['first_error']})" if r["errors"] else ""
        print(f"{r['dataset']:<42} {r['method']:<24} {r['n']:>4} {r['ac1']:>6.3f} {r['ac3']:>6.3f} {r['avg5']:>6.3f}"
              f" {r['ms']:>8.1f} {same:>21}{err}")
    best_name, best_ac1, ours_on_best = "", float("nan"), float("nan")
    for name, vals in sim["libs"].items():
        if name.startswith("ours@"):
            continue
        v = float(np.mean(vals))
        if not best_name or v > best_ac1:
            best_name, best_ac1, ours_on_best = name, v, float(np.mean(sim["libs"][f"ours@{name}"]))
    sim_ac1 = float(np.mean(sim["ours"]["ac1"])) if sim["ours"]["ac1"] else float("nan")
    print(f"\nsimulated, all cases and graphs: ours AC@1 {sim_ac1:.3f}; best library method {best_name or '-'} "
          f"AC@1 {best_ac1:.3f} (ours on the same cases {ours_on_best:.3f})")
    smd: dict[str, Any] = {"h100": float("nan"), "h150": float("nan"), "n": 0, "ms": float("nan")}
    if (SMD / SMD_SCORED[0]).is_dir():
        smd = run_smd(SMD_SCORED)
        tune = run_smd(SMD_TUNING)
        print(f"SMD held-out machines {', '.join(SMD_SCORED)}: {smd['n']} segments, HitRate@100% {smd['h100']:.4f}, "
              f"@150% {smd['h150']:.4f}, {smd['ms']:.1f} ms/segment (OmniAnomaly, 28 machines: 0.8032 / 0.8434)")
        print(f"SMD tuning machines {', '.join(SMD_TUNING)} (parameters chosen here, not scored): {tune['n']} "
              f"segments, HitRate@100% {tune['h100']:.4f}, @150% {tune['h150']:.4f}")
    else:
        print(f"SMD skipped: {SMD} not found")
    # the floor, method by method on the cases that method ran on
    behind = [n for n, v in sim["libs"].items() if not n.startswith("ours@")
              and float(np.mean(sim["libs"][f"ours@{n}"])) < float(np.mean(v)) - 1e-12]
    floors = {"ours AC@1 >= every library method's AC@1 (same cases)": bool(best_name) and not behind,
              "smd_hitrate150 >= 0.84": smd["h150"] >= 0.84}
    print("floors: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in floors.items())
          + (f" (behind: {', '.join(behind)})" if behind else ""))
    out = {
        "sim_ac1": round(sim_ac1, 4),
        "sim_ac3": round(float(np.mean(sim["ours"]["ac3"])), 4) if sim["ours"]["ac3"] else None,
        "sim_avg5": round(float(np.mean(sim["ours"]["avg5"])), 4) if sim["ours"]["avg5"] else None,
        "best_library_ac1": round(best_ac1, 4) if best_name else None,
        "best_library": best_name or None,
        "smd_hitrate100": round(smd["h100"], 4),
        "smd_hitrate150": round(smd["h150"], 4),
        "ms_per_case": round(float(np.mean(sim["ms"])), 2) if sim["ms"] else None,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
