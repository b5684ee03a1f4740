"""Findings: plain sentences on what limits capacity and what to change.

Each rule is a small function ``rule(scenario, summary, series) -> Finding | None``
over the scenario, the run's summary and its wide series (``component/metric``
columns indexed by ``t_s``). A rule returns ``None`` when it does not apply or its
data is absent, so rules about datastores, workers or the HPA start speaking as
soon as runs carry those series. :data:`RULES` lists them in report order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs.manifests.inputs import ManifestInputs
from memstack_capacity.outputs.manifests.platform import prometheus_rule
from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario
from memstack_capacity.outputs.plots import hpa_targets
from memstack_capacity.results.ceilings import NEVER_RAN, ready_fraction

#: The guide's reading of the two alerts whose deployed thresholds differ from it.
GUIDE_ERROR_RATIO, DEPLOYED_5XX_RPS, GUIDE_CPU_FRACTION, DEPLOYED_CPU_CORES = 0.05, 0.05, 0.8, 0.8
WINDOW_S = 300.0


@dataclass(frozen=True)
class Finding:
    """One finding: a stable ``key``, a short ``title`` and the ``text`` (plain sentences)."""

    key: str
    title: str
    text: str


def deployed_alerts(scenario) -> list[str]:
    """The alert names of the PrometheusRule the manifests emit for ``scenario`` (upstream's when the
    manifests cannot express the scenario)."""
    try:
        inputs = inputs_from_scenario(scenario)
    except ScenarioError:
        inputs = ManifestInputs.upstream()
    return [r["alert"] for g in prometheus_rule(inputs)["spec"]["groups"] for r in g["rules"]]


def deployed_alert(scenario, short: str) -> str:
    """The deployed name of the rule the guide calls ``short`` (``HighLatency`` → ``MemStackAPIHighLatency``)."""
    return next((name for name in deployed_alerts(scenario) if name.endswith(short)), short)


def _ran(summary, name: str) -> bool:
    """Whether deployment ``name`` had Ready pods at least 1 % of the time: rules about how it ran need it."""
    f = ready_fraction(summary, name)
    return f is None or f >= NEVER_RAN


def _col(series: pd.DataFrame, name: str) -> pd.Series | None:
    if series is None or name not in series.columns or not series[name].notna().any():
        return None
    return series[name].astype(float)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _secs(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:g} s"


def _cores(x: float) -> str:
    return f"{x * 1000:.0f}m" if x < 1 else f"{x:g}"


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


def _count(n) -> str:
    return "unbounded" if math.isinf(n) else f"{int(n)}"


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


def _interval(series: pd.DataFrame) -> float:
    t = np.asarray(series.index, dtype=float)
    return float(np.median(np.diff(t))) if t.size > 1 else 1.0


def _failed_between(series: pd.DataFrame, t0: float, t1: float) -> int:
    cols = [c for c in series.columns if c.startswith("ingress/errors_") and c.endswith("_rps")]
    if not cols:
        return 0
    window = series.loc[(series.index > t0) & (series.index <= t1), cols].fillna(0.0)
    return int(round(window.to_numpy().sum() * _interval(series)))


def _queue_cause(scenario, series, slow: pd.Series) -> tuple[str, int] | None:
    """The datastore server that was ≥ 90 % busy in most of the ``slow`` samples, and in how many."""
    best = None
    for store in scenario.datastores or {}:
        util = _col(series, f"{store}/utilization")
        if util is None:
            continue
        during = int((slow & (util.reindex(slow.index) >= 0.9)).sum())
        if during and (best is None or during > best[1]):
            best = (store, during)
    return best if best is not None and best[1] * 2 >= int(slow.sum()) else None


def _scaled_on(series, name: str, targets: dict, t0: float, t1: float) -> str:
    """Which HPA metric was above its target while ``name`` scaled (a sentence, '' when it was CPU)."""
    window = (series.index >= t0 + (t1 - t0) * 2 / 3) & (series.index <= t1)  # the scale-up's last third
    cpu, mem = (_col(series, f"{name}/{m}_utilization") for m in ("cpu", "memory"))
    if cpu is None or mem is None or "memory" not in targets or "cpu" not in targets or not window.any():
        return ""
    cpu_end, mem_end = float(cpu[window].iloc[-1]), float(mem[window].mean())
    if mem_end <= targets["memory"] or cpu_end >= targets["cpu"]:
        return ""
    return (f" The HPA ended up scaling `{name}` on memory ({_pct(mem_end)} of request against its "
            f"{_pct(targets['memory'])} target) while CPU fell to {_pct(cpu_end)}: requests waiting in the queue hold "
            f"their memory in the pods.")  # fmt: skip


def scale_up_lag(scenario, summary, series) -> Finding | None:
    """Scale-up slower than the load: from utilisation crossing the target to Ready pods catching up.

    When the slow answers of that window came while a datastore server was saturated, the cause
    is its queue, not the scale-up: the finding says so instead of proposing more pods.
    """
    texts, queued = [], []
    for name, dep in scenario.deployments.items():
        targets = hpa_targets(dep)
        target = targets.get("cpu")
        util, ready, desired = (_col(series, f"{name}/{m}") for m in ("cpu_utilization", "pods_ready", "replicas_desired"))
        if target is None or util is None or ready is None or desired is None or not _ran(summary, name):
            continue
        over = util > target * 1.1  # beyond the controller's 10 % tolerance
        if not over.any():
            continue
        t_over = float(over.idxmax())
        peak = desired[desired.index >= t_over].max()
        caught = ready[(ready.index >= t_over) & (ready >= peak)]
        t_caught = float(caught.index[0]) if len(caught) else float(series.index[-1])
        lag = t_caught - t_over
        failed = _failed_between(series, t_over, t_caught)
        p99 = _col(series, "ingress/latency_p99_s")
        bound = getattr(scenario.targets, "latency_p99", None)
        slow_mask = pd.Series(False, index=series.index)
        if p99 is not None and bound is not None:
            slow_mask = (p99 > bound.max) & (p99.index > t_over) & (p99.index <= t_caught)
        slow = int(slow_mask.sum())
        if lag < 60 or (failed == 0 and slow == 0):
            continue
        cause = _queue_cause(scenario, series, slow_mask) if slow else None
        if cause is not None:
            store, during = cause
            lost = f", and {failed} requests failed" if failed else ""
            queued.append((store, f"p99 was above {_secs(bound.max)} in {slow} sample intervals while `{name}` scaled "
                                  f"up ({t_over / 60:.1f}–{t_caught / 60:.1f} min), {during} of them while the `{store}` "
                                  f"server was ≥ 90 % busy{lost}: requests queued behind `{store}`, not behind missing "
                                  f"`{name}` pods, so more minReplicas or faster scale-up would not lower it."
                                  + _scaled_on(series, name, targets, t_over, t_caught)
                                  + f" Lift `{store}` (see the binding constraint)."))  # fmt: skip
            continue
        end = "by the end of the run" if not len(caught) else f"at {t_caught / 60:.1f} min"
        texts.append(f"`{name}` fell behind the load: CPU crossed the HPA target ({_pct(target)}) at {t_over / 60:.1f} min "
                     f"and Ready pods reached the {int(peak)} replicas the HPA asked for {end} ({lag:.0f} s later). "
                     f"Meanwhile {failed} requests failed"
                     + (f" and p99 exceeded {_secs(bound.max)} in {slow} sample intervals" if slow else "")
                     + ". Start with more replicas (minReplicas), allow faster scale-up (behavior.scaleUp policies), "
                       "or shorten pod start (image pull, startup, readiness probe).")  # fmt: skip
    if texts:
        return Finding("scale_up_lag", "Scale-up too slow for the ramp", " ".join(texts + [t for _, t in queued]))
    if queued:
        stores = ", ".join(dict.fromkeys(f"`{st}`" for st, _ in queued))
        return Finding("queued_not_scale_up", f"Latency from the {stores} queue, not from scale-up",
                       " ".join(t for _, t in queued))
    return None


def at_max_replicas(scenario, summary, series) -> Finding | None:
    """The HPA pinned at maxReplicas while a metric is still above its target."""
    texts = []
    for name, dep in scenario.deployments.items():
        hi = getattr(dep.hpa, "maxReplicas", None)
        desired = _col(series, f"{name}/replicas_desired")
        targets = hpa_targets(dep)
        if hi is None or desired is None or not targets or not _ran(summary, name):
            continue
        over = pd.Series(False, index=series.index)
        which = []
        for metric, target in targets.items():
            util = _col(series, f"{name}/{metric}_utilization")
            if util is None:
                continue
            above = (desired >= hi) & (util > target * 1.1)
            if above.any():
                which.append(f"{metric} {_pct(float(util[above].max()))} against {_pct(target)}")
            over |= above
        secs = float(over.sum() * _interval(series))
        if secs >= 60:
            texts.append(f"`{name}` sat at maxReplicas = {hi} for {secs / 60:.1f} min with the HPA's metrics still above "
                         f"target (peak {', '.join(which)}): the HPA could not add capacity. Raise maxReplicas "
                         f"(and check the cluster has room for it) or make each pod do more.")  # fmt: skip
    return Finding("at_max_replicas", "Autoscaler stuck at maxReplicas", " ".join(texts)) if texts else None


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


RULES = [single_process_cpu, scale_up_lag, at_max_replicas, connection_budget, oom_kills, throttling, restarts,
         pending_pods, datastore_saturation, job_backlog, alert_thresholds]  # fmt: skip


def findings(scenario, summary: dict, series: pd.DataFrame, alert_frame: pd.DataFrame | None = None) -> list[Finding]:
    """Every rule that has something to say, in :data:`RULES` order."""
    out = []
    for rule in RULES:
        found = rule(scenario, summary, series, alert_frame) if rule is alert_thresholds else rule(scenario, summary, series)
        if found is not None:
            out.append(found)
    return out
