"""Money arithmetic in integer fen.

:func:`allocate` spreads an amount over parts in proportion to weights with the
largest-remainder method, so the parts always add up exactly to the whole: a ¥10 discount
over three equal lines is 334 + 333 + 333 fen, never 333 × 3 = 999.
"""

from __future__ import annotations

from collections.abc import Sequence


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` (may be negative) over ``weights`` (non-negative ints) exactly.

    Ties in the remainders go to the earlier part, so the result is deterministic. With all
    weights zero the total is split as evenly as possible.
    """
    n = len(weights)
    if n == 0:
        if total != 0:
            raise ValueError("cannot allocate a non-zero total over no parts")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    sign = -1 if total < 0 else 1
    amount = abs(total)
    w = list(weights) if sum(weights) > 0 else [1] * n
    wsum = sum(w)
    base = [amount * wi // wsum for wi in w]
    remainders = [amount * wi % wsum for wi in w]
    left = amount - sum(base)
    order = sorted(range(n), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        base[i] += 1
    return [sign * b for b in base]


def apply_rate(amount_fen: int, rate_bp: int) -> int:
    """``amount × rate`` for a rate in basis points, rounded half up to the fen."""
    return (amount_fen * rate_bp + 5000) // 10000


def yuan(fen: int) -> str:
    """1234 → '12.34' (for display and gateway payloads that want yuan strings)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"
