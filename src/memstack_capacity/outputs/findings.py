"""Findings: plain sentences on what limits capacity and what to change.

Each rule is a small function ``rule(scenario, summary, series) -> Finding | None``
over the scenario, the run's summary and its wide series (``component/metric``
columns indexed by ``t_s``). A rule returns ``None`` when it does not apply or its
data is absent, so rules about datastores, workers or the HPA start speaking as
soon as runs carry those series. :data:`RULES` lists them in report order; the
autoscaler's rules live in :mod:`.findings_scaling`, what every rule shares in
:mod:`.findings_common`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from memstack_capacity.outputs.findings_common import (Finding, _col, _cores, _count, _interval, _pct, _ran,
                                                       _secs, deployed_alert, deployed_alerts)
from memstack_capacity.outputs.findings_scaling import at_max_replicas, scale_up_lag
from memstack_capacity.outputs.plots import hpa_targets

__all__ = ["Finding", "RULES", "findings", "deployed_alert", "deployed_alerts", "oom_memory"]

#: The guide's reading of the two alerts whose deployed thresholds differ from it.
GUIDE_ERROR_RATIO, DEPLOYED_5XX_RPS, GUIDE_CPU_FRACTION, DEPLOYED_CPU_CORES = 0.05, 0.05, 0.8, 0.8
WINDOW_S = 300.0


def single_process_cpu(scenario, summary, series) -> Finding | None:
    """A pod whose processes cannot use its CPU limit (the GIL: one core per process)."""
    texts = []
    for name, dep in scenario.deployments.items():
        req, lim = dep.resources.requests.cpu, dep.resources.limits.cpu
        if not req or not lim or dep.processes >= lim or not _ran(summary, name):
            continue
        text = (f"Each `{name}` pod runs {dep.processes} server process(es), so it can use at most "
                f"{dep.processes} core(s) of its {_cores(lim)}-core limit; the other {lim - dep.processes:g} core(s) "
                f"of the limit are never used. Utilisation against the {_cores(req)} request tops out at "
                f"{_pct(dep.processes / req)}.")  # fmt: skip
        cpu_target = hpa_targets(dep).get("cpu")
        if cpu_target is not None:
            text += (f" The HPA's {_pct(cpu_target)} CPU target (of {_cores(req)} = {_cores(cpu_target * req)}) is "
                     f"reached at {_pct(cpu_target * req / dep.processes)} of what a pod can do, so it scales on "
                     f"{_cores(cpu_target * req)} cores per pod while the pod only saturates at {dep.processes}.")  # fmt: skip
        used = summary.get("deployments", {}).get(name, {}).get("cpu_utilization", {}).get("max")
        if used is not None:
            text += f" Measured peak: {_pct(used)} of the request ({_cores(used * req)} cores per pod on average)."
        text += (f" Run {math.ceil(lim)} processes per pod (gunicorn/uvicorn `--workers`), or set the CPU limit to "
                 f"{dep.processes} core(s) and request what a pod really uses.")  # fmt: skip
        texts.append(text)
    return Finding("single_process_cpu", "CPU limit a pod cannot use", " ".join(texts)) if texts else None


def connection_budget(scenario, summary, series) -> Finding | None:
    """Pools that together may open more connections than the server accepts.

    Reads the summary's ``datastores.<store>.budget`` (figured once, in the results layer):
    (maxReplicas + rollout maxSurge) pods × processes × (pool_size + max_overflow) per deployment.
    """
    texts = []
    for store, stats in (summary.get("datastores") or {}).items():
        b = (stats or {}).get("budget")
        if not b or b["fits"]:
            continue
        parts = ", ".join(f"{d}: ({x['max_replicas']} + {x['surge']} surge) pods × {x['processes']} process(es) × "
                          f"{_count(x['per_process'])} = {_count(x['connections'])}"
                          for d, x in b["deployments"].items())  # fmt: skip
        demand, limit = b["demand"], b["limit"]
        times = f"{demand / limit:.1f}× " if limit and not math.isinf(demand) else ""
        seen = _connections_seen(store, stats, series)
        texts.append(f"At max replicas plus the rollout surge the connection pools may open {_count(demand)} connections "
                     f"to `{store}` ({parts}), {times}the {limit} it accepts (max_connections less "
                     f"superuser-reserved); beyond that new connections are refused with \"too many clients\"."
                     f"{seen} Lower pool_size + max_overflow so that (maxReplicas + maxSurge) pods × processes × "
                     f"(pool_size + max_overflow) stays under max_connections, or put PgBouncer in front.")  # fmt: skip
    return Finding("connection_budget", "Connection budget above max_connections", " ".join(texts)) if texts else None


def _connections_seen(store: str, stats: dict, series) -> str:
    """The run's peak of open connections, and the plotted samples' when they show less (a brief peak)."""
    peak = stats.get("connections_max")
    if peak is None:
        return ""
    text = f" The run peaked at {peak:g} open connections"
    sampled = _col(series, f"{store}/connections_open")
    if sampled is not None and float(sampled.max()) < peak:
        text += (f" (a brief peak: the figure's samples, every {_interval(series):g} s, show at most "
                 f"{float(sampled.max()):g})")
    return text + "."


def alert_thresholds(scenario, summary, series, alert_frame: pd.DataFrame | None = None) -> Finding | None:
    """Alerts whose deployed threshold and the guide's wording disagree in this run."""
    if alert_frame is None or alert_frame.empty:
        return None
    texts = []
    rate = alert_frame["api_5xx_rps"]
    err = _col(series, "ingress/error_rate")
    thr = _col(series, "ingress/throughput_rps")
    if err is not None and thr is not None:
        answered = thr / (1 - err.clip(upper=0.999))
        failed_rps = answered * err
        t = np.asarray(series.index, dtype=float)
        dt = _interval(series)
        ratio = pd.Series(failed_rps.fillna(0).rolling(max(1, int(WINDOW_S / dt)), min_periods=1).sum().to_numpy()
                          / np.maximum(answered.fillna(0).rolling(max(1, int(WINDOW_S / dt)), min_periods=1).sum()
                                       .to_numpy(), 1e-9), index=t)  # fmt: skip
        deployed, guide = rate.to_numpy() > DEPLOYED_5XX_RPS, ratio.reindex(rate.index).to_numpy() > GUIDE_ERROR_RATIO
        if (deployed & ~guide).any():
            low = float(ratio.reindex(rate.index)[deployed & ~guide].min())
            texts.append(f"{deployed_alert(scenario, 'HighErrorRate')} compares an absolute {DEPLOYED_5XX_RPS}/s of 5xx, not the guide's \">5 %\": in this "
                         f"run it holds while only {low:.2%} of requests fail, so at this traffic it pages on a "
                         f"healthy system.")  # fmt: skip
        if (guide & ~deployed).any():
            texts.append(f"{deployed_alert(scenario, 'HighErrorRate')}'s absolute 0.05/s stays silent while more than 5 % of requests fail at this "
                         "low traffic.")
        if texts:
            texts.append("Write it as a ratio: `sum(rate(http_requests_total{status=~\"5..\"}[5m])) / "
                         "sum(rate(http_requests_total[5m])) > 0.05`.")
    cpu = alert_frame["cpu_cores_5m_max"]
    limits = [d.resources.limits.cpu for d in scenario.deployments.values() if d.resources.limits.cpu]
    if limits and (cpu > DEPLOYED_CPU_CORES).any():
        lim = max(limits)
        if DEPLOYED_CPU_CORES < GUIDE_CPU_FRACTION * lim:
            texts.append(f"{deployed_alert(scenario, 'HighCPUUsage')} compares cores (> {DEPLOYED_CPU_CORES}), not \"80 %\" of the {_cores(lim)}-core "
                         f"limit: a pod reached {float(cpu.max()):.2f} cores (5 min average), {_pct(float(cpu.max()) / lim)} "
                         f"of its limit. Divide by `container_spec_cpu_quota/container_spec_cpu_period` to compare a "
                         f"fraction.")  # fmt: skip
    return Finding("alert_thresholds", "Alert thresholds that disagree with the guide", " ".join(texts)) if texts else None


def oom_memory(scenario, name: str) -> tuple[str, int, float]:
    """What a pod of deployment ``name`` holds per slot: ``(what, slots, bytes per slot)``.

    A worker (``consumes``) holds the largest memory of the job classes it consumes in
    each of its ``processes × concurrency`` job slots; the API the largest request memory
    in each of its ``processes × concurrency`` request slots.
    """
    dep = scenario.deployments[name]
    if dep.consumes:
        per = max((j.memory for j in scenario.workload.jobs if j.name in dep.consumes), default=0)
        return "jobs", dep.processes * dep.concurrency, float(per)
    per = max((c.memory for c in scenario.workload.requests), default=0)
    return "requests", dep.processes * dep.concurrency, float(per)


def oom_kills(scenario, summary, series) -> Finding | None:
    """Containers killed for exceeding their memory limit."""
    texts = []
    for name, d in summary.get("deployments", {}).items():
        n = d.get("oom_kills") or 0
        if n <= 0:
            continue
        dep = scenario.deployments[name]
        what, slots, per = oom_memory(scenario, name)
        worst = dep.memory_base + slots * per
        lim = dep.resources.limits.memory
        if not lim:
            texts.append(f"`{name}` was OOMKilled {n:g} time(s).")
            continue
        text = (f"`{name}` was OOMKilled {n:g} time(s); every in-flight {what[:-1]} on the pod failed each time. "
                f"Base {dep.memory_base / 2**20:.0f} Mi + {dep.processes} process(es) × {dep.concurrency} {what} in "
                f"flight × {per / 2**20:.0f} Mi = {worst / 2**20:.0f} Mi against a {lim / 2**20:.0f} Mi limit")  # fmt: skip
        if per:
            safe = max(1, int((lim * 0.9 - dep.memory_base) / (dep.processes * per)))
            need = (dep.memory_base + slots * per) / 0.9
            text += (f". Cap concurrency at {safe} per process (90 % of the limit), or raise the memory limit to "
                     f"{math.ceil(need / 2**30 * 4) / 4:g} Gi.")  # fmt: skip
        else:
            text += "."
        texts.append(text)
    return Finding("oom_kills", "OOMKills", " ".join(texts)) if texts else None


def throttling(scenario, summary, series) -> Finding | None:
    """CPU demand above the CFS quota (the limit)."""
    texts = []
    for name, d in summary.get("deployments", {}).items():
        frac = d.get("throttled_fraction")
        col = _col(series, f"{name}/throttled_fraction")
        peak = float(col.max()) if col is not None else 0.0
        if ((frac or 0) < 0.02 and peak < 0.1) or not _ran(summary, name):
            continue
        lim = scenario.deployments[name].resources.limits.cpu
        texts.append(f"`{name}` pods were CPU-throttled {_pct(frac or 0)} of the time on average (peak {_pct(peak)} "
                     f"in a sample interval): their processes wanted more than the {_cores(lim or 0)}-core limit, "
                     f"which stretches tail latency. Raise the limit to the number of processes or remove it.")  # fmt: skip
    return Finding("throttling", "CPU throttling", " ".join(texts)) if texts else None


def node_contention(scenario, summary, series) -> Finding | None:
    """Nodes whose pods wanted more cores than they have: CFS shared them by requests.cpu."""
    nodes = summary.get("nodes") or {}
    busy = {name: n for name, n in (nodes.get("by_node") or {}).items() if n["contended_fraction"] >= 0.01}
    if not busy:
        return None
    worst = max(busy, key=lambda n: busy[n]["contended_fraction"])
    names = ", ".join(f"`{n}`" for n in sorted(busy))
    text = (f"The pods on {names} wanted more cores than the node has (`{worst}`: {_pct(busy[worst]['contended_fraction'])} "
            f"of the time after warm-up, peak utilisation {_pct(busy[worst]['cpu_utilization_max'])} of "
            f"{scenario.cluster.node.cpu:g} cores). Linux then shares the cores in proportion to requests.cpu, so every "
            f"pod there slowed down together — whatever its limit. Set requests.cpu near what the pods really use, "
            f"so the scheduler spreads them and the HPA's utilisation means what it says, or add nodes.")  # fmt: skip
    return Finding("node_contention", "Nodes out of CPU", text)


def restarts(scenario, summary, series) -> Finding | None:
    """Restarts other than OOMKills: liveness probes that timed out under load."""
    texts = []
    for name, d in summary.get("deployments", {}).items():
        n = (d.get("restarts") or 0) - (d.get("oom_kills") or 0)
        if n <= 0:
            continue
        probe = scenario.deployments[name].livenessProbe
        how = (f" (timeoutSeconds {probe.timeoutSeconds:g}, failureThreshold {probe.failureThreshold})"
               if probe is not None else "")  # fmt: skip
        texts.append(f"`{name}` containers restarted {n} time(s) without an OOMKill: the liveness probe{how} waited "
                     f"behind the load and failed, and each restart threw away in-flight work and capacity just when "
                     f"it was needed. Give the probe a longer timeout and higher failureThreshold, or serve it "
                     f"outside the request queue.")  # fmt: skip
    return Finding("restarts", "Probe failures and restarts", " ".join(texts)) if texts else None


def pending_pods(scenario, summary, series) -> Finding | None:
    """Pods that waited for room on a node."""
    texts = []
    for name in scenario.deployments:
        col = _col(series, f"{name}/pods_pending")
        if col is None or col.max() <= 0:
            continue
        secs = float((col > 0).sum() * _interval(series))
        if secs >= 30:
            texts.append(f"`{name}` had up to {int(col.max())} pod(s) Pending for {secs / 60:.1f} min: the cluster had "
                         f"no node with room for their requests. Add nodes (or a node autoscaler) for the max replicas.")
    return Finding("pending_pods", "Pods stuck Pending", " ".join(texts)) if texts else None


def datastore_saturation(scenario, summary, series) -> Finding | None:
    """A datastore server or its connection pool at its limit."""
    texts = []
    for store in scenario.datastores or {}:
        util, waiters = _col(series, f"{store}/utilization"), _col(series, f"{store}/pool_waiters")
        if util is not None and util.max() >= 0.9:
            texts.append(f"`{store}` was ≥ 90 % busy for {(util >= 0.9).sum() * _interval(series) / 60:.1f} min "
                         f"(peak {_pct(float(util.max()))}): queries queue on the server, so more API pods will not help.")
        stats = summary.get("datastores", {}).get(store, {}) or {}
        timeouts, refused = stats.get("pool_timeouts") or 0, stats.get("refused") or 0
        if waiters is not None and waiters.max() > 0 and (timeouts or (waiters > 0).sum() * _interval(series) >= 60):
            wait = (stats.get("pool_wait_s") or {}).get("p99")
            texts.append(f"Up to {int(waiters.max())} requests waited for a pooled `{store}` connection"
                         + (f" (p99 wait {_secs(wait)})" if wait else "") + ".")
        if timeouts:
            texts.append(f"`{store}`: {timeouts:g} request(s) failed on a pool timeout; raise pool_size/max_overflow "
                         f"within max_connections, or shorten what holds a connection.")
        if refused:
            texts.append(f"`{store}` refused {refused:g} new connection(s) (\"too many clients\"): the pools together "
                         f"opened more than max_connections; lower pool_size + max_overflow or put PgBouncer in front.")
    return Finding("datastore_saturation", "Datastore or pool saturated", " ".join(texts)) if texts else None


def job_backlog(scenario, summary, series) -> Finding | None:
    """A worker queue that kept growing."""
    texts = []
    for name, dep in scenario.deployments.items():
        if not dep.consumes:
            continue
        col = _col(series, f"{name}/jobs/backlog")
        if col is None:
            col = _col(series, "jobs/backlog")
        if col is None or len(col) < 4:
            continue
        half = len(col) // 2
        first, last = float(col.iloc[:half].mean()), float(col.iloc[half:].mean())
        if last <= max(2 * first, 10):
            continue
        jobs = summary.get("jobs", {}) or {}
        completed = jobs.get("completed") or 0  # a flow model leaves it None when no job finished
        done = f" {completed:g} jobs completed in the measured window." if "completed" in jobs else ""
        kills = (summary.get("deployments", {}).get(name, {}) or {}).get("oom_kills") or 0
        why = f" The `{name}` pods were OOMKilled {kills:g} time(s) (see OOMKills)." if kills else ""
        texts.append(f"The `{name}` job backlog grew from {first:.0f} to {last:.0f} on average between the run's halves "
                     f"(peak {col.max():.0f}): the workers cannot keep up.{done}{why} Add worker replicas or "
                     f"concurrency, or scale the workers on queue length instead of CPU (their jobs mostly wait on "
                     f"LLM calls).")  # fmt: skip
    return Finding("job_backlog", "Worker backlog growing", " ".join(texts)) if texts else None


RULES = [single_process_cpu, scale_up_lag, at_max_replicas, connection_budget, oom_kills, throttling, node_contention,
         restarts,
         pending_pods, datastore_saturation, job_backlog, alert_thresholds]  # fmt: skip


def findings(scenario, summary: dict, series: pd.DataFrame, alert_frame: pd.DataFrame | None = None) -> list[Finding]:
    """Every rule that has something to say, in :data:`RULES` order."""
    out = []
    for rule in RULES:
        found = rule(scenario, summary, series, alert_frame) if rule is alert_thresholds else rule(scenario, summary, series)
        if found is not None:
            out.append(found)
    return out
