"""The Deployment controller's arithmetic, ported from Kubernetes (pure functions).

* ``ResolveFenceposts`` (``pkg/controller/deployment/util/deployment_util.go``): a
  percentage ``maxSurge`` is rounded **up**, ``maxUnavailable`` **down**, of
  ``spec.replicas``; when both come to zero, ``maxUnavailable`` is 1. ``MaxUnavailable``
  is capped at ``replicas``.
* ``rolloutRolling`` (``pkg/controller/deployment/rolling.go``): each sync either scales
  the new ReplicaSet up (``NewRSNewReplicas``: up to ``replicas + maxSurge`` counted over
  every ReplicaSet's ``spec.replicas``) or scales old ones down
  (``reconcileOldReplicaSets``: ``maxScaledDown = allPods - minAvailable -
  newRSUnavailable``; unhealthy old replicas first, oldest ReplicaSet first, then
  ``availablePods - minAvailable`` more). Terminating pods are not counted (as upstream:
  ``spec.replicas`` of the ReplicaSets).
* ``scale`` (``pkg/controller/deployment/sync.go``, ``GetProportion`` /
  ``getReplicaSetFraction`` in ``deployment_util.go``): a change of ``replicas`` during a
  rollout is shared among the active ReplicaSets in proportion to their size against the
  ``max-replicas`` annotation, leftovers to the largest (newest on ties when adding, oldest
  when removing).
* ``Recreate``: old ReplicaSets go to zero; the new one scales up once no old pod is left.
* PodDisruptionBudget (``pkg/controller/disruption/disruption.go``): ``desiredHealthy`` is
  ``minAvailable`` (a percentage of the expected count, rounded up) or ``expected -
  maxUnavailable`` (a percentage rounded up); ``disruptionsAllowed = currentHealthy -
  desiredHealthy``.
"""

from __future__ import annotations

import math


def _scaled(value, total: int, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``."""
    if isinstance(value, int):
        return value
    pct = float(str(value).rstrip("%"))
    raw = pct * total / 100.0
    return int(math.ceil(raw - 1e-12)) if round_up else int(math.floor(raw + 1e-12))


def fenceposts(strategy, replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for `replicas`, as ``ResolveFenceposts``."""
    if strategy.type != "RollingUpdate":
        return 0, 0
    ru = strategy.rollingUpdate
    surge = _scaled(ru.maxSurge, replicas, True)
    unavailable = _scaled(ru.maxUnavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(strategy, replicas: int) -> int:
    return fenceposts(strategy, replicas)[0]


def max_unavailable(strategy, replicas: int) -> int:
    if strategy.type != "RollingUpdate" or replicas == 0:
        return 0
    return min(fenceposts(strategy, replicas)[1], replicas)


def rollout_step(strategy, replicas: int, new: int, rs: dict, available, old_pods_left) -> dict:
    """One sync of a rollout: the ReplicaSet counts to change ({revision: replicas}), or {}.

    `rs` maps revision → spec.replicas in creation order (`new` is the newest);
    ``available(revision)`` counts its available pods (``available(None)``: all);
    ``old_pods_left()`` counts pods of older revisions not yet gone.
    """
    old = [r for r in rs if r != new]
    if strategy.type == "Recreate":
        active_old = {r: 0 for r in old if rs[r] > 0}
        if active_old:
            return active_old
        if old_pods_left() == 0 and rs[new] != replicas:
            return {new: replicas}
        return {}
    surge, _ = fenceposts(strategy, replicas)
    # reconcileNewReplicaSet
    if rs[new] > replicas:
        return {new: replicas}
    if rs[new] < replicas:
        total = sum(rs.values())
        max_total = replicas + surge
        if total < max_total:
            return {new: rs[new] + min(max_total - total, replicas - rs[new])}
    # reconcileOldReplicaSets
    if sum(rs[r] for r in old) == 0:
        return {}
    min_available = replicas - max_unavailable(strategy, replicas)
    new_unavailable = rs[new] - available(new)
    max_scaled_down = sum(rs.values()) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    changes: dict = {}
    cleaned = 0
    for r in old:  # cleanupUnhealthyReplicas, oldest first
        if cleaned >= max_scaled_down:
            break
        unhealthy = rs[r] - available(r)
        if rs[r] == 0 or unhealthy <= 0:
            continue
        down = min(max_scaled_down - cleaned, unhealthy)
        changes[r] = rs[r] - down
        cleaned += down
    # scaleDownOldReplicaSetsForRollingUpdate (availability from the status before the cleanup)
    avail = available(None)
    if avail > min_available:
        budget, done = avail - min_available, 0
        for r in old:
            if done >= budget:
                break
            current = changes.get(r, rs[r])
            if current == 0:
                continue
            down = min(current, budget - done)
            changes[r] = current - down
            done += down
    return {r: n for r, n in changes.items() if n != rs[r]}


def proportional_scale(active: list, replicas: int, strategy, max_annotation: int, newest: int) -> dict:
    """``sync.go: scale`` for several active ReplicaSets: {revision: new spec.replicas}.

    `active` is [(revision, spec.replicas)] in creation order; `max_annotation` is the
    ``deployment.kubernetes.io/max-replicas`` the ReplicaSets carry (the previous
    ``replicas + maxSurge``).
    """
    allowed = replicas + max_surge(strategy, replicas) if replicas > 0 else 0
    total = sum(n for _, n in active)
    to_add = allowed - total
    if to_add == 0:
        return {}
    # ReplicaSetsBySizeNewer when adding, BySizeOlder when removing: largest first
    order = sorted(active, key=lambda rn: (-rn[1], -rn[0] if to_add > 0 else rn[0]))
    added = 0
    sizes: dict = {}
    for rev, n in order:
        proportion = 0
        if n > 0 and to_add != added:
            if replicas == 0:
                fraction = -n
            else:
                fraction = int(math.floor(n * allowed / max(max_annotation, 1) + 0.5)) - n
            left = to_add - added
            proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rev] = n + proportion
        added += proportion
    first = order[0][0]
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def desired_healthy(pdb, expected: int) -> int:
    """``desiredHealthy`` of a PodDisruptionBudget for a controller of `expected` replicas.

    An integer ``minAvailable`` is taken as is (the controller's scale is not needed);
    percentages and ``maxUnavailable`` scale against `expected`.
    """
    if pdb.minAvailable is not None:
        if isinstance(pdb.minAvailable, int):
            return pdb.minAvailable
        return _scaled(pdb.minAvailable, expected, True)
    return max(0, expected - _scaled(pdb.maxUnavailable, expected, True))
