"""How the study reports write numbers: intervals, p-values, estimates, the sides of 0, names."""

from __future__ import annotations

from typing import Any

from ytfgvc.metrics import Comparison
from ytfgvc.study.stats import Estimate

DISPLAY = {"rra": "RRA", "tsn": "TSN", "avgpool": "average pooling"}


def fmt_interval(iv: list[float] | None, signed: bool = True, digits: int = 2) -> str:
    if iv is None:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"[{f.format(iv[0])}, {f.format(iv[1])}]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float | None) -> str:
    """``p = 0.123`` or ``p < 0.001``."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def fmt_estimate(e: Estimate | None, unit: str = " pp", digits: int = 2) -> str:
    if e is None:
        return "n/a"
    return f"{e.mean:+.{digits}f}{unit} {fmt_interval(e.interval, digits=digits)}"


def fmt_comparison(c: Comparison | dict[str, Any]) -> str:
    c = c if isinstance(c, dict) else c.to_dict()
    return f"{c['diff']:+.2f} pp {fmt_interval(c['interval'])}"


def side_of_zero(interval: list[float]) -> str:
    lo, hi = interval
    return "lies above 0" if lo > 0 else "lies below 0" if hi < 0 else "contains 0"


def display(name: str) -> str:
    return DISPLAY.get(name, name)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def names(items: list[str]) -> str:
    return ", ".join(items) if items else "none"
