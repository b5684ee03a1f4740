"""The kernel's record: request rows and the monitor's samples, computed after the run.

:func:`record_answers` writes the answers (in the order the ingress gives them) through the
recorder's columns; :func:`record_samples` reproduces ``components/monitor.py`` from the
per-request times: a sample at every ``sample_interval`` up to the horizon, taken before
anything else that happens at that instant, level metrics as counts of events strictly
before it and rates over the events in ``[previous sample, sample)``.
"""

from __future__ import annotations

from array import array

import numpy as np

from memstack_capacity.components.recorder import OK, STATUS_LABELS

_DTYPES = {"i": np.intc, "d": np.float64, "b": np.int8}
_COLUMNS = (("cls", "cls", "i"), ("t_arrival", "t0", "d"), ("t_end", "t_end", "d"), ("status", "status", "b"),
            ("reason", "reason", "b"), ("pod", "pod", "i"))


def record_answers(model, ans) -> None:
    """Append the answers to the request log (and the streaming stats when the engine keeps them)."""
    append_rows(model.recorder.requests, ans)
    stats = getattr(model.ingress, "stats", None)
    if stats is not None:
        _record_stats(stats, ans)


def append_rows(log, ans) -> None:
    """Append rows (``cls``, ``t0``, ``t_end``, ``status``, ``reason``, ``pod`` arrays) to a RequestLog.

    A sampled log (``every`` > 1) keeps the rows whose running count is a multiple of
    ``every``, as ``RequestLog.add`` does one by one.
    """
    n = len(ans.t_end)
    every = getattr(log, "every", 1)
    bulk = hasattr(log, "seen") or every == 1
    bulk = bulk and all(
        isinstance(getattr(log, name, None), array) and getattr(log, name).typecode == code for name, _, code in _COLUMNS
    )
    if bulk:
        keep = None
        if every != 1:
            keep = np.flatnonzero((log.seen + np.arange(1, n + 1)) % every == 0)
        for name, attr, code in _COLUMNS:
            column = np.asarray(getattr(ans, attr))
            if keep is not None:
                column = column[keep]
            getattr(log, name).frombytes(np.ascontiguousarray(column, dtype=_DTYPES[code]).tobytes())
        if hasattr(log, "seen"):
            log.seen += n
    else:
        add = log.add
        for row in zip(*(getattr(ans, attr).tolist() for _, attr, _ in _COLUMNS)):
            add(*row)


def _record_stats(stats, ans) -> None:
    measured = ans.t0 >= stats.warmup
    sketches = getattr(stats, "ok_latency", None)
    known = hasattr(stats, "counts") and hasattr(stats, "reasons") and sketches is not None and all(
        all(hasattr(s, a) for a in ("buckets", "zeros", "count", "total", "min", "max", "_inv_log_gamma")) for s in sketches
    )
    if not known:
        add = stats.add
        for row in zip(*(getattr(ans, a)[measured].tolist() for a in ("cls", "t0", "t_end", "status", "reason"))):
            add(*row)
        return
    for c, sketch in enumerate(sketches):
        mine = measured & (ans.cls == c)
        for key, table in (("status", stats.counts[c]), ("reason", stats.reasons[c])):
            counts = np.bincount(getattr(ans, key)[mine], minlength=len(table))
            for i, v in enumerate(counts.tolist()):
                table[i] += v
        ok = mine & (ans.status == OK)
        sketch.add_many((ans.t_end - ans.t0)[ok])  # in answer order, as the ingress adds them


def sample_times(interval: float, horizon: float) -> list[float]:
    """The monitor's sample instants: ``t += interval`` up to the horizon (one due at it included)."""
    out, t = [], 0.0
    while True:
        t = t + interval
        if t > horizon:
            return out
        out.append(t)


def _before(sorted_values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """How many values are strictly before each time."""
    return np.searchsorted(sorted_values, times, side="left")


def _busy_up_to(starts: np.ndarray, ends: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Busy time of the processes up to each instant of ``S``, from their busy intervals (an open
    one ends at inf)."""
    bs, be = np.sort(starts), np.sort(ends)
    cs = np.concatenate([[0.0], np.cumsum(bs)])
    ce = np.concatenate([[0.0], np.cumsum(be[np.isfinite(be)])])
    ns, ne = _before(bs, S), _before(be, S)
    return ce[ne] + S * (ns - ne) - cs[ns]


def record_samples(model, scenario, r) -> None:
    """The monitor's series for the run whose per-request times are in `r`."""
    interval = float(scenario.sample_interval)
    S = np.asarray(sample_times(interval, float(scenario.duration)))
    if not len(S):
        return
    api = scenario.deployments["api"]
    runtime = model.runtimes["api"]
    pods = [p for p in runtime.pods if p.phase == "Running"]
    n_pods = r.n_pods

    accepted_t0 = r.T[r.accepted]
    adm_sorted, done_sorted = np.sort(r.adm), np.sort(r.done)
    n_adm, n_done = _before(adm_sorted, S), _before(done_sorted, S)
    n_acc = _before(accepted_t0, S)
    n_arr = _before(r.T, S)

    used = _busy_up_to(r.busy_start, r.busy_end, S)
    cores = np.diff(np.concatenate([[0.0], used])) / interval
    pod_used = [_busy_up_to(r.busy_start[r.busy_pod == q], r.busy_end[r.busy_pod == q], S) for q in range(n_pods)]
    usage_at = {pod: pod_used[q] for q, pod in enumerate(runtime.pods)}

    # memory: memory_base per pod plus what admitted requests hold
    base = int(api.memory_base)
    mem_limit = api.resources.limits.memory
    mem_pod = np.full((n_pods, len(S)), base, dtype=np.int64)
    if np.any(r.mem):
        for c, m in enumerate(r.mem.tolist()):
            if not m:
                continue
            for q in range(n_pods):
                sel = (r.cls == c) & (r.pod == q)
                mem_pod[q] += int(m) * (_before(np.sort(r.adm[sel]), S) - _before(np.sort(r.done[sel]), S))
    mem_total = mem_pod.sum(axis=0)
    mem_frac = mem_pod.max(axis=0) / mem_limit if mem_limit is not None else np.zeros(len(S))

    req_cpu = sum(p.cpu_request for p in pods) or float("nan")
    req_mem = sum(p.mem_request for p in pods) or float("nan")

    ans = r.answers
    answered_by = [np.concatenate([[0], np.cumsum(ans.status == code)]) for code in range(len(STATUS_LABELS))]
    n_ans = _before(ans.t_end, S)
    ok_rows = np.flatnonzero(ans.status == OK)
    ok_end = ans.t_end[ok_rows]
    ok_lat = ok_end - ans.t0[ok_rows]
    n_ok = _before(ok_end, S)
    # requests the ingress still waits for: accepted, not yet answered OK or 504
    in_flight_ing = n_acc - (answered_by[OK][n_ans] + answered_by[2][n_ans])

    add = model.recorder.samples.add
    name = "api"
    prev_arr, prev_ans, prev_ok = 0, 0, 0
    for j, now in enumerate(S.tolist()):
        add(now, name, "replicas_desired", runtime.spec_replicas)
        add(now, name, "pods", len(pods))
        add(now, name, "pods_ready", runtime.ready_count())
        add(now, name, "pods_pending", 0)
        add(now, name, "cpu_cores", cores[j])
        add(now, name, "cpu_utilization", cores[j] / req_cpu)
        add(now, name, "memory_bytes", int(mem_total[j]))
        add(now, name, "memory_utilization", int(mem_total[j]) / req_mem)
        add(now, name, "memory_limit_fraction_max", float(mem_frac[j]))
        add(now, name, "in_flight", int(n_adm[j] - n_done[j]))
        add(now, name, "backlog", int(n_acc[j] - n_adm[j]))
        add(now, name, "throttled_fraction", 0.0 / (interval * len(pods)) if pods else 0.0)
        add(now, name, "throttled_s", 0.0)  # the kernel takes only pods whose CPU limit cannot bind
        add(now, name, "cfs_periods", 0)
        add(now, name, "cfs_throttled_periods", 0)
        add(now, name, "throttled_periods_fraction", 0.0)

        a_now = int(n_ans[j])
        counts = [int(col[a_now] - col[prev_ans]) for col in answered_by]
        add(now, "ingress", "arrivals_rps", (int(n_arr[j]) - prev_arr) / interval)
        prev_arr, prev_ans = int(n_arr[j]), a_now
        ok = counts[OK]
        add(now, "ingress", "throughput_rps", ok / interval)
        for code, label in enumerate(STATUS_LABELS[1:], start=1):
            add(now, "ingress", f"errors_{label}_rps", counts[code] / interval)
        answered = sum(counts)
        add(now, "ingress", "error_rate", (answered - ok) / answered if answered else 0.0)
        add(now, "ingress", "in_flight", int(in_flight_ing[j]))
        o_now = int(n_ok[j])
        if o_now > prev_ok:
            arr = ok_lat[prev_ok:o_now]
            p50, p95, p99 = np.percentile(arr, [50, 95, 99])
            add(now, "ingress", "latency_mean_s", float(arr.mean()))
            add(now, "ingress", "latency_p50_s", p50)
            add(now, "ingress", "latency_p95_s", p95)
            add(now, "ingress", "latency_p99_s", p99)
        prev_ok = o_now
        if model.monitor.extra:
            model.env._now = now
            model.node_sampler.usage = lambda pod, _j=j: float(usage_at[pod][_j])
            for sampler in model.monitor.extra:
                sampler(now, add)
