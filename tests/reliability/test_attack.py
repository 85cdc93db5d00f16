"""The attack drill's arithmetic and pass rule, the raw HTTP client it attacks with, and the
hostile suite's checks of issue 16's answers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import pytest
import yaml

from reliability import rawhttp
from reliability.attack import Phase, Sample, Timeline, refused_unread
from reliability.attackers import alias_bomb
from reliability.boundary_flows import formula_problem, label_problems
from reliability.latency import (
    MAX_P99_RATIO,
    AttackOutcome,
    Figures,
    failures,
    percentile,
    ratio,
)
from reliability.load import Sent


def test_percentiles_interpolate_between_ranks_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(reversed(values), 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="outside"):
        percentile(values, 101)


def test_figures_and_ratios() -> None:
    figures = Figures.of([10.0, 20.0, 30.0])
    assert (figures.count, figures.p50) == (3, 20.0)
    assert "p50 20.0 ms" in figures.text()
    assert ratio(30.0, 15.0) == 2.0
    assert ratio(1.0, 0.0) == math.inf
    assert ratio(0.0, 0.0) == 1.0
    assert math.isnan(ratio(math.nan, 10.0))


def _outcome(**changes: float) -> AttackOutcome:
    fields: dict[str, float] = {
        "baseline_p99_ms": 20.0,
        "attack_p99_ms": 30.0,
        "lost": 0,
        "honest_failures": 0,
        "unauthenticated": 110,
        "refused_unread": 110,
        "rss_growth_mb": 3.0,
    }
    fields.update(changes)
    return AttackOutcome(**fields)


def test_the_pass_rule_is_the_acceptance_bar() -> None:
    assert failures(_outcome()) == []
    assert failures(_outcome(attack_p99_ms=20.0 * MAX_P99_RATIO)) == []
    [slow] = failures(_outcome(attack_p99_ms=40.2))
    assert "2.01x" in slow
    # A p99 that cannot be measured is a failure, never a pass.
    assert failures(_outcome(attack_p99_ms=math.nan))
    assert failures(_outcome(baseline_p99_ms=math.nan))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"lost": 1}, "missing from the log"),
        ({"honest_failures": 2}, "not answered 200"),
        ({"refused_unread": 109}, "1 of 110 unauthenticated"),
        ({"unauthenticated": 0, "refused_unread": 0}, "no unauthenticated attack"),
        ({"rss_growth_mb": 150.0}, "memory grew 150 MB"),
        ({"rss_growth_mb": math.nan}, "memory grew"),
    ],
)
def test_each_other_condition_fails_the_row(change: dict[str, float], words: str) -> None:
    [problem] = failures(_outcome(**change))
    assert words in problem


def _sent(at: float, ms: float | None, status: int | None) -> Sent:
    done = None if ms is None else at + ms / 1000
    return Sent(subjects=["s"], endpoint="credit", at=at, done=done, status=status)


def test_a_phase_counts_what_the_honest_client_saw() -> None:
    phase = Phase(
        "attack",
        sent=[_sent(0.0, 10, 200), _sent(0.1, 30, 200), _sent(0.2, 5, None), _sent(0.3, 8, 429)],
        health=[(2.0, 200), (4.0, None)],
        rss=[(0.0, 900.0), (1.0, 950.0), (2.0, 920.0)],
    )
    # Latency of every answered request; a request with no answer is a failure, not a latency.
    assert phase.predict.count == 3
    assert phase.predict.p50 == pytest.approx(10.0)
    assert phase.healthz.count == 1
    assert phase.failed == 3  # one predict unanswered, one 429, one probe unanswered
    assert phase.rss_growth_mb == 50.0
    assert phase.slowest(1)[0][2] == 200
    assert math.isnan(Phase("empty").rss_growth_mb)


def test_phases_are_windows_of_one_warm_run() -> None:
    timeline = Timeline(
        sent=[_sent(at, 10 + at, 200) for at in (1.0, 5.0, 9.9, 10.0, 14.0)],
        health=[(1.0, 2.0, 200), (10.5, 3.0, 200)],
        samples=[
            Sample(at, 900 + at, cpu_s=at / 2, client_cpu_s=at / 10) for at in (1, 4, 9, 11, 19)
        ],
    )
    baseline, attack = timeline.phase("baseline", 0, 10), timeline.phase("attack", 10, 20)
    assert [s.at for s in baseline.sent] == [1.0, 5.0, 9.9]
    assert [s.at for s in attack.sent] == [10.0, 14.0]
    assert attack.healthz.count == 1 and baseline.healthz.p50 == 2.0
    assert attack.cpu_s == pytest.approx(4.0)  # 19/2 - 11/2
    assert attack.rss_growth_mb == pytest.approx(8.0)  # 919 - 911
    assert attack.slowest(1)[0][0] == pytest.approx(4.0)  # seconds into the attack window
    assert math.isnan(timeline.phase("later", 30, 40).cpu_s)


def _raw(status: int | None, before_body: bool, closed_s: float | None = 0.001) -> dict:
    return {
        "status": status,
        "before_body": before_body,
        "closed_s": closed_s,
        "sent_total": 2_000_000 if closed_s is not None else 200 * 2**20,
        "declared": 200 * 2**20,
    }


def test_an_unauthenticated_attack_counts_only_if_refused_unread() -> None:
    bombs = [_raw(401, True), _raw(401, False), _raw(422, True)]
    uploads = [_raw(401, True), _raw(401, True, closed_s=None), _raw(None, False)]
    # A bomb answered only after its body was sent, a 422, an upload whose connection the
    # server kept reading to the end, and no answer at all: none of them count.
    assert refused_unread(bombs, uploads) == 2


def test_the_alias_bomb_nests_nine_levels_of_aliases() -> None:
    text = alias_bomb()
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert len(node.value) == 9
    last = node.value[-1][1]
    assert len(last.value) == 9
    assert all(child is node.value[-2][1] for child in last.value)  # aliases, not copies
    assert len(text) < 1000


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _with_server(handler: Handler, client: Callable[[int], Awaitable[rawhttp.RawAnswer]]):
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await client(port)
    finally:
        server.close()
        await server.wait_closed()


async def _refuse_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")
    await writer.drain()
    writer.close()


async def _read_body_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    writer.write(b"HTTP/1.1 422 Unprocessable\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


def test_a_flood_refused_from_the_headers_is_answered_before_the_body() -> None:
    answer = asyncio.run(
        _with_server(_refuse_at_once, lambda port: rawhttp.flood(port, "/up", {}, 200 * 2**20))
    )
    assert answer.status == 401
    assert answer.body == b"no"
    assert answer.before_body
    assert answer.body_sent < answer.declared
    # The client went on sending; the server had closed, so a send failed long before 200 MB.
    assert answer.closed_s is not None
    assert answer.sent_total < answer.declared


def test_a_server_that_reads_the_body_first_is_seen_to() -> None:
    def ask(port: int) -> Awaitable[rawhttp.RawAnswer]:
        return rawhttp.ask_before_body(port, "POST", "/runs", {}, b"x" * 100, wait_s=0.3)

    answer = asyncio.run(_with_server(_read_body_first, ask))
    assert answer.status == 422
    assert answer.body_sent == answer.declared == 100
    assert not answer.before_body
    refused = asyncio.run(_with_server(_refuse_at_once, ask))
    assert (refused.status, refused.body_sent, refused.before_body) == (401, 0, True)


def test_a_trickle_stops_when_the_server_answers() -> None:
    async def deadline(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    answer = asyncio.run(
        _with_server(
            deadline, lambda port: rawhttp.trickle(port, "/p", {}, b"0123456789", every_s=0.05)
        )
    )
    assert answer.status == 408
    assert 2 <= answer.body_sent < 10


def test_csv_formula_check() -> None:
    subjects = ['=HYPERLINK("http://x")', "@SUM(A1)"]
    header = "decision_id,subject_id\n"
    good = header + 'a,"\'=HYPERLINK(""http://x"")"\nb,\'@SUM(A1)\n'
    assert formula_problem(good, subjects) == ""
    raw = header + 'a,"=HYPERLINK(""http://x"")"\nb,\'@SUM(A1)\n'
    assert "exported as formulas" in formula_problem(raw, subjects)
    assert "missing" in formula_problem(header + "b,'@SUM(A1)\n", subjects)


def test_metric_label_check() -> None:
    before = ['govern_x_total{endpoint="credit",status="200"} 1.0\n']
    fine = [before[0] + 'govern_x_total{endpoint="_unknown",status="404"} 50.0\n']
    assert label_problems(before, fine, "zz12", 16_384) == ""
    leaked = [before[0] + 'govern_x_total{endpoint="zz12-7",status="404"} 1.0\n']
    assert "made-up label values" in label_problems(before, leaked, "zz12", 16_384)
    grown = [fine[0] + "#" * 20_000]
    assert "grew" in label_problems(before, grown, "zz12", 16_384)
