"""Which recorder records which node, asked on the bus: for ``recorderctl status`` and,
every few seconds, by each shard (into its statistics and its status)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from recorderd.daemon.bus import Client
from recorderd.wire import shards_query_key
from recorderd.wire.shards import Coverage, ShardClaim, coverage

log = logging.getLogger(__name__)

#: Seconds between a shard's checks of which nodes the session's recorders cover.
COVERAGE_PERIOD_S: Final = 5.0
#: How long one coverage check waits for the other recorders and the nodes' tokens.
COVERAGE_TIMEOUT_S: Final = 2.0
#: Node ids remembered at most as ever uncovered (or ever overlapping) during a run.
EVER_LISTED: Final = 100


def ask(
    client: Client, prefix: str, session: str, timeout: float
) -> tuple[list[ShardClaim], list[str]]:
    """The recorders' claims of ``session`` (``*``: of every session), valid ones only,
    and the nodes alive: one query of each."""
    answers = client.query(shards_query_key(prefix, session), timeout)
    claims = [c for payload in answers if (c := ShardClaim.decode(payload)) is not None]
    return claims, client.alive(prefix, timeout)


def add_coverage(
    client: Client, prefix: str, answers: list[dict[str, Any]], timeout: float
) -> None:
    """Put a fresh ``coverage`` report (nodes alive vs the recorders' node patterns) into
    each status answer, per session (one query of the claims and one of the tokens)."""
    sessions = sorted({str(a["session"]) for a in answers})
    if not sessions:
        return
    claims, alive = ask(client, prefix, "*", timeout)
    reports = {s: coverage(s, claims, alive).to_dict() for s in sessions}
    for answer in answers:
        answer["coverage"] = reports[str(answer["session"])]


class CoverageWatch:
    """A shard's periodic coverage check: the last report, with the nodes found
    uncovered or overlapping at any check of the run; logged when it changes."""

    def __init__(
        self,
        client: Client,
        prefix: str,
        claim: ShardClaim,
        publish: Callable[[dict[str, object]], None],
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._claim = claim
        self._publish = publish
        self._said: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._ever: dict[str, set[str]] = {"uncovered": set(), "overlapping": set()}

    async def run(self) -> None:
        """Check every :data:`COVERAGE_PERIOD_S` seconds until cancelled."""
        session = self._claim.session
        while True:
            try:
                claims, alive = await asyncio.to_thread(
                    ask, self._client, self._prefix, session, COVERAGE_TIMEOUT_S
                )
            except Exception as exc:  # the bus closing under us, a Zenoh error
                log.debug("coverage check failed: %s", exc)
            else:
                self._found(coverage(session, [self._claim, *claims], alive))
            await asyncio.sleep(COVERAGE_PERIOD_S)

    def _found(self, report: Coverage) -> None:
        doc = report.to_dict()
        for what, found in (
            ("uncovered", report.uncovered),
            ("overlapping", list(report.overlapping)),
        ):
            ever = self._ever[what]
            ever.update(found[: max(0, EVER_LISTED - len(ever))])
            doc[f"{what}_during_run"] = sorted(ever)
        self._publish(doc)
        said = (tuple(report.uncovered), tuple(report.overlapping))
        if said == self._said:
            return
        self._said = said
        session = self._claim.session
        if report.uncovered_count:
            log.warning(
                "%d node(s) alive recorded by no recorder of session %s: %s",
                report.uncovered_count,
                session,
                ", ".join(report.uncovered[:10]),
            )
        if report.overlapping_count:
            pairs = list(report.overlapping.items())[:10]
            log.warning(
                "%d node(s) recorded by two or more recorders of session %s: %s",
                report.overlapping_count,
                session,
                ", ".join(f"{n} ({'+'.join(o)})" for n, o in pairs),
            )
