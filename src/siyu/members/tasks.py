"""Jobs of the members module: importing this registers every part's outbox handlers and
sweepers (level review, card and recharge pay timeouts, points expiry and notices,
birthday perks)."""

from __future__ import annotations

import importlib

PARTS = ("levels", "cards", "birthday", "points", "mall", "wallet")

for _part in PARTS:
    try:
        importlib.import_module(f"siyu.members.tasks_{_part}")
    except ModuleNotFoundError as exc:  # a part without jobs
        if exc.name != f"siyu.members.tasks_{_part}":
            raise
