"""When the control loops run: metrics-server's scrapes and each HorizontalPodAutoscaler's syncs.

In a cluster these loops keep their own clocks: metrics-server scrapes every
``--metric-resolution`` from when it started, and kube-controller-manager resyncs each HPA
every ``--horizontal-pod-autoscaler-sync-period`` from when that HPA entered its work queue.
So the delay from a load step to a decision spreads over about one resolution plus one
sync period. ``cluster.control_loops: independent`` draws each loop's phase from the run's
seed (or takes ``metrics_scrape_offset`` / ``hpa_sync_offset`` when set); ``aligned`` keeps
the best case — a scrape at 0, 15, 30 … s and every sync 1 s after a scrape — which the
controller's hand-derived tests use.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Under ``aligned`` loops each HPA syncs this long after a scrape.
SYNC_OFFSET_S = 1.0


@dataclass(frozen=True)
class LoopPhases:
    """The first scrape and each autoscaled deployment's first sync, in simulated seconds."""

    scrape_at: float
    sync_at: dict


def loop_phases(cluster, autoscaled, rng=None) -> LoopPhases:
    """The phases for `cluster`'s loops; `rng` (needed only for drawn phases) draws them, in name order."""
    independent = cluster.control_loops == "independent"

    def phase(given, period: float, aligned: float) -> float:
        if given is not None:
            return float(given)
        return float(rng.uniform(0.0, period)) if independent else aligned

    scrape = phase(cluster.metrics_scrape_offset, cluster.metrics_resolution, 0.0)
    syncs = {name: phase(cluster.hpa_sync_offset, cluster.hpa_sync_period, scrape + SYNC_OFFSET_S)
             for name in sorted(autoscaled)}
    return LoopPhases(scrape, syncs)
