"""Simulated root-cause cases from CIRCA's and PyRCA's generators, and the libraries' methods.

Used by ``benchmarks/rca_quality.py``; needs ``circa-clue`` and ``sfr-pyrca`` importable (the
benchmark installs them into its own environment). Nothing in ``rca/`` imports this.

Every case is a :class:`SimCase`: the rows the methods may see (normal history, then the
anomalous rows), the index of the first anomalous row, the answer (indices of the injected
root causes, node 0 is the symptom in both generators), and the cause→effect edges.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

N_NODES = 50
N_EDGES = 100


@dataclass(frozen=True)
class SimCase:
    data: np.ndarray  # (T, N) rows the methods see
    onset: int  # first anomalous row
    causes: frozenset[int]
    edges: tuple[tuple[int, int], ...]  # (cause, effect) of the true graph


def perturb(edges: tuple[tuple[int, int], ...], n: int, rng: np.random.Generator) -> tuple[tuple[int, int], ...]:
    """Drop 10 % of the edges and add as many spurious ones.

    Spurious edges run from a higher to a lower node index, as every true edge of both
    generators does, so the graph stays acyclic: PyRCA's HT and CIRCA's DA sort it
    topologically and would fail on a cycle (ours would not).
    """
    k = max(1, round(0.1 * len(edges)))
    keep = sorted(rng.choice(len(edges), size=len(edges) - k, replace=False).tolist())
    out = [edges[i] for i in keep]
    have = set(edges)
    while len(out) < len(edges):
        a, b = (int(v) for v in rng.integers(0, n, size=2))
        a, b = max(a, b), min(a, b)
        if a != b and (a, b) not in have:
            have.add((a, b))
            out.append((a, b))
    return tuple(out)


# --- generators ---------------------------------------------------------------------------


def circa_cases(seed: int, n_cases: int, n_graphs: int) -> list[SimCase]:
    """CIRCA's ``circa.experiment.simulation.generate``: a VAR model, faults of 2 points.

    The methods see what CIRCA's own experiment gives them: 120 points before the detection
    time and 5 after it (``delay=300`` s at 1-minute steps).
    """
    from circa.experiment.simulation import generate

    out: list[SimCase] = []
    per = n_cases // n_graphs
    for g in range(n_graphs):
        ds = generate(num_node=N_NODES, num_edge=N_EDGES, num_cases=per, rng=np.random.default_rng([seed, g]))
        edges = tuple((int(a.metric), int(b.metric)) for a, b in ds._graph._graph.edges)  # noqa: SLF001
        for case in ds.cases:
            ln = case._length_normal  # noqa: SLF001
            rows = case._time_series[ln - 120 : ln + 6]  # noqa: SLF001
            out.append(SimCase(np.asarray(rows, float), 120, frozenset(int(c) for c in case._causes), edges))  # noqa: SLF001
    return out


@contextlib.contextmanager
def _seeded_numpy(seed: int) -> Iterator[None]:
    """PyRCA's generators draw from an unseeded ``np.random.default_rng()`` and the legacy global
    state; for fixed seeds both are seeded here for the duration of the generation."""
    original = np.random.default_rng
    seq = np.random.SeedSequence(seed)

    def seeded(*args: Any, **kwargs: Any) -> np.random.Generator:
        if args or kwargs:
            return original(*args, **kwargs)
        return original(seq.spawn(1)[0])

    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    np.random.default_rng = seeded
    try:
        yield
    finally:
        np.random.default_rng = original
        np.random.set_state(state)


def pyrca_cases(seed: int, n_cases: int, n_graphs: int, n_normal: int = 1000, n_abnormal: int = 10) -> list[SimCase]:
    """PyRCA's ``pyrca.simulation``: a linear SEM with Gaussian noise; anomaly type 0 (a shift
    of the root causes' noise), the SLI (node 0) beyond 3 sigma in every anomalous row."""
    from pyrca.simulation.data_gen import (
        AnomalyDataGen,
        AnomalyDataGenConfig,
        DAGGen,
        DAGGenConfig,
        DataGen,
        DataGenConfig,
    )

    out: list[SimCase] = []
    per = n_cases // n_graphs
    for g in range(n_graphs):
        with _seeded_numpy(seed * 1000 + g):
            dag = DAGGen(DAGGenConfig(num_node=N_NODES, num_edge=N_EDGES, rng=np.random.default_rng())).gen()
            normal, pw, nw, func, noise = DataGen(
                DataGenConfig(dag=dag, noise_type="normal", func_type="identity", num_samples=n_normal)
            ).gen()
            base, sigma = float(normal[:, 0].mean()), float(normal[:, 0].std())
            edges = tuple((int(a), int(b)) for a, b in zip(*np.nonzero(dag), strict=True))
            for _ in range(per):
                cfg = AnomalyDataGenConfig(
                    parent_weights=pw, noise_weights=nw, noise_type=noise, func_type=func,
                    baseline=base, threshold=3 * sigma, num_samples=n_abnormal, anomaly_type=0,
                )
                abnormal, fault = AnomalyDataGen(cfg).gen()
                causes = frozenset(int(i) for i in np.nonzero(fault)[0])
                out.append(SimCase(np.vstack([normal, abnormal]), n_normal, causes, edges))
    return out


# --- the libraries' methods ------------------------------------------------------------


def _frames(case: SimCase) -> tuple[Any, Any]:
    import pandas as pd

    cols = [str(i) for i in range(case.data.shape[1])]
    normal = pd.DataFrame(case.data[: case.onset], columns=cols)
    abnormal = pd.DataFrame(case.data[case.onset :], columns=cols)
    return normal, abnormal


def _adjacency(edges: tuple[tuple[int, int], ...], n: int) -> Any:
    import pandas as pd

    m = np.zeros((n, n))
    for a, b in edges:
        m[a, b] = 1
    cols = [str(i) for i in range(n)]
    return pd.DataFrame(m, index=cols, columns=cols)


def rank_circa(case: SimCase, edges: tuple[tuple[int, int], ...]) -> list[int]:
    """CIRCA: regression-based hypothesis testing (RHT, linear ANM) + descendant adjustment.

    CIRCA's own scorers over the same rows as ours: its ``CaseData`` with ``load_data``
    answering from the case's array (CIRCA's in-memory loader would resample each series
    through pandas first, to the same values, at ten times the cost).
    """
    import datetime

    import networkx as nx
    from circa.alg.ci import DAScorer, RHTScorer
    from circa.alg.common import Model
    from circa.graph.common import StaticGraphFactory
    from circa.model.case import CaseData
    from circa.model.data_loader import MemoryDataLoader
    from circa.model.graph import MemoryGraph, Node

    n = case.data.shape[1]
    nodes = [Node("SIM", str(i)) for i in range(n)]
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((nodes[a], nodes[b]) for a, b in edges)
    after = case.data.shape[0] - case.onset - 1
    columns = {node: case.data[:, i].tolist() for i, node in enumerate(nodes)}

    class ArrayCaseData(CaseData):  # type: ignore[misc]
        def load_data(self, graph: Any = None, current: float | None = None) -> dict[Any, list[float]]:
            # CIRCA prunes constant series (prune=True); none is constant here
            return {node: v for node, v in columns.items() if len(set(v)) > 1}

    data = ArrayCaseData(
        data_loader=MemoryDataLoader({"SIM": {}}), sli=nodes[0], detect_time=case.onset * 60.0,
        interval=datetime.timedelta(minutes=1), lookup_window=case.onset, detect_window=after + 1,
    )
    model = Model(graph_factory=StaticGraphFactory(MemoryGraph(graph)), scorers=[RHTScorer(), DAScorer()])
    ranks = model.analyze(data=data, current=data.detect_time + after * 60.0)
    return [int(node.metric) for node, _ in ranks]


def rank_ht(case: SimCase, edges: tuple[tuple[int, int], ...]) -> list[int]:
    """PyRCA's HT (regression-based hypothesis testing) with its descendant adjustment."""
    from pyrca.analyzers.ht import HT, HTConfig

    n = case.data.shape[1]
    normal, abnormal = _frames(case)
    model = HT(HTConfig(graph=_adjacency(edges, n), root_cause_top_k=n))
    model.train(normal)
    res = model.find_root_causes(abnormal, anomalous_metrics="0", adjustment=True)
    return [int(node) for node, _ in res.root_cause_nodes]


def rank_epsilon(case: SimCase, edges: tuple[tuple[int, int], ...]) -> list[int]:
    """PyRCA's ε-Diagnosis (no graph); normal sample of the abnormal sample's length, as it needs."""
    from pyrca.analyzers.epsilon_diagnosis import EpsilonDiagnosis, EpsilonDiagnosisConfig

    normal, abnormal = _frames(case)
    normal = normal.iloc[-len(abnormal) :].reset_index(drop=True)
    model = EpsilonDiagnosis(EpsilonDiagnosisConfig(root_cause_top_k=case.data.shape[1]))
    model.train(normal)
    res = model.find_root_causes(abnormal)
    return [int(node) for node, _ in res.root_cause_nodes]


def rank_rcd(case: SimCase, edges: tuple[tuple[int, int], ...]) -> list[int]:
    """PyRCA's RCD (no graph: it learns the local structure around an F-node)."""
    from pyrca.analyzers.rcd import RCD, RCDConfig

    normal, abnormal = _frames(case)
    model = RCD(RCDConfig(k=case.data.shape[1], localized=True))
    res = model.find_root_causes(normal, abnormal)
    return [int(node) for node, _ in res.root_cause_nodes]


LIBRARY_METHODS: dict[str, tuple[Callable[[SimCase, tuple[tuple[int, int], ...]], list[int]], bool]] = {
    # name: (ranker, uses the graph)
    "circa (RHT+DA)": (rank_circa, True),
    "pyrca HT": (rank_ht, True),
    "pyrca epsilon-diagnosis": (rank_epsilon, False),
    "pyrca RCD": (rank_rcd, False),
}


def rank_ours(case: SimCase, edges: tuple[tuple[int, int], ...], params: Any) -> list[int]:
    """Our localiser through its Python API (the CLI form is tested to give the same ranks)."""
    from rca import CausalGraph, RcaCase, localize

    n = case.data.shape[1]
    names = tuple(f"n{i}:value" for i in range(n))
    ts = np.arange(case.data.shape[0], dtype=np.int64) * 60_000
    rc = RcaCase(ts, case.data, names, alert_ms=int(ts[case.onset]), symptom=names[0], onset_ms=int(ts[case.onset]))
    graph = CausalGraph.of((names[a], names[b]) for a, b in edges)
    return [int(c.component[1:]) for c in localize(rc, graph, params).causes]


def accuracy(ranks: list[int], causes: frozenset[int], k: int) -> float:
    """AC@k as the CIRCA paper defines it: hits in the top k over min(k, number of causes)."""
    return len(causes.intersection(ranks[:k])) / min(k, len(causes))


def timed(fn: Callable[[], list[int]]) -> tuple[list[int], float, str]:
    t0 = time.perf_counter()
    try:
        return fn(), time.perf_counter() - t0, ""
    except Exception as exc:  # a library failing on one case is scored as a miss, with the reason kept
        return [], time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc)[:120]}"


def run_task(task: tuple[str, SimCase, tuple[tuple[int, int], ...], Any]) -> tuple[list[int], float, str]:
    """One method on one case (a process-pool task): ``(ranks, seconds, error)``."""
    name, case, edges, params = task
    if name == "ours":
        return timed(lambda: rank_ours(case, edges, params))
    return timed(lambda: LIBRARY_METHODS[name][0](case, edges))
