"""Traffic spikes folded into a load profile: the profile × the spike's multiplier (1 → factor → 1).

A profile is piecewise linear ``[(t_s, value)]`` (users or req/s; a repeated time is a
step). Folding is exact for an open source, whose piecewise-linear rate the
inverse-intensity sampler follows exactly; a ramp over a part of the profile that is not
constant is cut into RAMP_PIECES linear pieces.
"""

from __future__ import annotations

import bisect

#: Pieces a ramp of a spike is cut into when the base profile is not constant there.
RAMP_PIECES = 8


def _value(points: list, t: float, right: bool) -> float:
    """A piecewise-linear profile (steps where times repeat) at t, from the left or the right."""
    times = [p[0] for p in points]
    i = (bisect.bisect_right if right else bisect.bisect_left)(times, t)
    if i == 0:
        return points[0][1]
    if i >= len(points):
        return points[-1][1]
    j = i - 1
    (t0, v0), (t1, v1) = points[j], points[j + 1]
    if t1 == t0:
        return v1
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def fold_spike(points: list, at: float, factor: float, duration: float, ramp: float) -> list:
    """Multiply a piecewise-linear profile by the spike's multiplier (1 → factor → 1)."""
    mult = [(at, 1.0), (at + ramp, factor), (at + duration - ramp, factor), (at + duration, 1.0)]
    times = {p[0] for p in points} | {m[0] for m in mult}
    for a, b in ((at, at + ramp), (at + duration - ramp, at + duration)):
        if b > a:
            times |= {a + (b - a) * k / RAMP_PIECES for k in range(1, RAMP_PIECES)}
    out: list = []
    for t in sorted(times):
        left = _value(points, t, False) * _mult(mult, at, t, False)
        right = _value(points, t, True) * _mult(mult, at, t, True)
        out.append((t, left))
        if abs(right - left) > 1e-12:
            out.append((t, right))
    if points[0][0] > 0 and out[0][0] > 0:
        out.insert(0, (0.0, out[0][1]))
    return out


def _mult(mult: list, at: float, t: float, right: bool) -> float:
    if t < at or (t == at and not right):
        return 1.0
    return _value(mult, t, right)


def fold_spikes(points: list, events) -> list:
    """`points` with every ``traffic_spike`` among `events` folded in, in time order."""
    for event in sorted((e for e in events if e.kind == "traffic_spike"), key=lambda e: e.at):
        s = event.traffic_spike
        points = fold_spike(points, float(event.at), float(s.factor), float(s.duration), float(s.ramp))
    return points
