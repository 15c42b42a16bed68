"""The kill switch: a latch in the order path, kept in the journal.

It trips on any of (``live`` config section): equity ``max_drawdown`` below its peak,
``max_daily_loss`` below the UTC day's first equity, one symbol's position worth more than
``max_position_notional``, or more than ``max_orders_per_minute`` orders within 60 seconds.
Tripping writes the reason to the journal (``meta`` key ``killed`` and a ``kill`` event)
before anything else; the broker then cancels the open orders (and flattens with
``--flatten-on-kill``) and the run exits non-zero. A journal holding the latch refuses to
trade again until it is cleared (``cli.py live --run DIR --clear-kill``).

It fails closed: an equity that cannot be computed (NaN) trips it.
"""

from __future__ import annotations

import math
from typing import Any

from gogo2.errors import Gogo2Error, UserInputError

DAY_MS = 86_400_000


class KillSwitchTripped(Gogo2Error):
    exit_code = 5


class KilledRunError(UserInputError):
    """A run stopped by the kill switch is started again before being cleared."""


class KillSwitch:
    def __init__(self, limits: Any, journal: Any) -> None:
        self.limits = limits
        self.journal = journal

    @property
    def reason(self) -> str | None:
        return self.journal.meta("killed")

    def assert_clear(self) -> None:
        why = self.reason
        if why:
            raise KilledRunError(
                f"--run {self.journal.dir} was stopped by the kill switch ({why}); check the "
                "account, then clear it with: python cli.py live --run DIR --clear-kill"
            )

    def clear(self, now: int) -> str | None:
        why = self.reason
        if why:
            self.journal.event(now, "kill_cleared", reason=why)
            with self.journal.db:
                self.journal.db.execute("BEGIN IMMEDIATE")
                self.journal.db.execute("DELETE FROM meta WHERE key IN ('killed', 'peak')")
        return why

    def trip(self, now: int, why: str) -> None:
        self.journal.set_meta("killed", why)
        self.journal.event(now, "kill", reason=why)
        raise KillSwitchTripped(
            f"kill switch: {why}. New orders stopped, open ones cancelled. The limits are "
            "live.max_drawdown, live.max_daily_loss, live.max_position_notional and "
            "live.max_orders_per_minute in the config (null turns one off); a run with --run DIR "
            "stays stopped until: python cli.py live --run DIR --clear-kill"
        )

    def check_equity(self, now: int, equity: float) -> None:
        if not math.isfinite(equity):
            self.trip(now, "equity cannot be computed")
        peak = float(self.journal.meta("peak") or equity)
        if equity > peak or self.journal.meta("peak") is None:
            peak = equity
            self.journal.set_meta("peak", repr(peak))
        day = f"day.{now // DAY_MS}"
        first = self.journal.meta(day)
        if first is None:
            self.journal.set_meta(day, repr(equity))
            first = repr(equity)
        lim = self.limits
        if lim.max_drawdown is not None and equity < peak * (1 - lim.max_drawdown):
            self.trip(
                now,
                f"drawdown {1 - equity / peak:.2%} from the peak {peak:,.2f} passed "
                f"live.max_drawdown {lim.max_drawdown:.2%}",
            )
        f = float(first)
        if lim.max_daily_loss is not None and equity < f * (1 - lim.max_daily_loss):
            self.trip(
                now,
                f"daily loss {1 - equity / f:.2%} from {f:,.2f} passed live.max_daily_loss "
                f"{lim.max_daily_loss:.2%}",
            )

    def check_order(self, now: int, symbol: str, notional_after: float) -> None:
        lim = self.limits
        if lim.max_orders_per_minute is not None:
            n = self.journal.orders_since(now - 60_000)
            if n >= lim.max_orders_per_minute:
                self.trip(
                    now,
                    f"{n + 1} orders within 60 s passed live.max_orders_per_minute "
                    f"{lim.max_orders_per_minute}",
                )
        if lim.max_position_notional is not None and notional_after > lim.max_position_notional:
            self.trip(
                now,
                f"{symbol} position of {notional_after:,.2f} would pass "
                f"live.max_position_notional {lim.max_position_notional:,.2f}",
            )
