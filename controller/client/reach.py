"""Finding out fast whether any controller is reachable, before opening a session.

A refused port fails at once and a silent address after `PROBE_TIMEOUT_S`, instead of the
client's session timeout; the wording matches `kraft quorum status`'s.
"""

from __future__ import annotations

import trio

from controller.node.config import Address

PROBE_TIMEOUT_S = 2.0  # TCP connect to every server at once: refused or silent ones fail here


class Unreachable(Exception):
    """No controller answered; worded as `kraft quorum status` words it (exit 1)."""


async def probe(servers: list[Address]) -> list[Address]:
    """TCP-connect to every server at once. Raise Unreachable if none accepts; else return
    the servers minus those that did not answer at all (they would stall the client).
    A refused server stays: the client skips it at once, and it may come back."""
    problems: dict[Address, str] = {}
    silent: set[Address] = set()

    async def one(address: Address) -> None:
        try:
            with trio.fail_after(PROBE_TIMEOUT_S):
                stream = await trio.open_tcp_stream(address.host, address.port)
            await stream.aclose()
        except trio.TooSlowError:
            problems[address] = f"no answer within {PROBE_TIMEOUT_S:g} s"
            silent.add(address)
        except OSError as exc:
            problems[address] = str(exc) or type(exc).__name__

    async with trio.open_nursery() as nursery:
        for address in dict.fromkeys(servers):
            nursery.start_soon(one, address)
    if all(a in problems for a in servers):
        details = "; ".join(f"{a}: {problems[a]}" for a in dict.fromkeys(servers))
        raise Unreachable(f"no controller reachable ({details})")
    return [a for a in dict.fromkeys(servers) if a not in silent]
