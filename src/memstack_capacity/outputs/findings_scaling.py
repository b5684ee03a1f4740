"""Findings about the autoscaler: scale-up slower than the load (or latency that a saturated
datastore explains instead), and an HPA pinned at maxReplicas with its metrics above target."""

from __future__ import annotations

import pandas as pd

from memstack_capacity.outputs.findings_common import Finding, _col, _interval, _pct, _ran, _secs
from memstack_capacity.outputs.plots import hpa_targets


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
