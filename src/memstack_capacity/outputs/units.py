"""Numbers as the report writes them, one way everywhere: durations, percentages, request rates, money."""

from __future__ import annotations

__all__ = ["money", "percent", "rps", "seconds"]


def seconds(value: float) -> str:
    """A duration the way a person reads it: milliseconds below 1 s, seconds from there (``850 ms``, ``10.2 s``)."""
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.3g} s"


def percent(fraction: float) -> str:
    """A fraction as a percentage, with the digits a small one needs (``0.0015 %``, not ``0.00%``)."""
    p = 100 * fraction
    if p == 0:
        return "0 %"
    return f"{p:.2g} %" if abs(p) < 1 else f"{p:.3g} %"


def rps(value: float) -> str:
    """Requests per second: whole numbers as such (``900 req/s``), one decimal otherwise (``389.7 req/s``)."""
    return f"{value:.0f} req/s" if float(value).is_integer() else f"{value:.1f} req/s"


def money(value: float, currency: str) -> str:
    """An amount with its currency: cents from 1 up (``118.47 USD``, ``1,234.50 USD``), three significant
    digits below (``0.0135 USD``), so a short run's small cost still shows its digits."""
    if value == 0:
        return f"0 {currency}"
    return f"{value:,.2f} {currency}" if abs(value) >= 1 else f"{value:.3g} {currency}"
