"""The console in a real browser (headless Chromium driven by Playwright) against a real
quorum and demo broker processes: the broker and partition tables show the cluster, and after
a broker is SIGKILLed the open page (never reloaded) shows the new leaders, the broker as not
live and the timeline entries.

Chromium is Debian's (`apt-get install chromium`, as `.ci/run` does): Playwright launches it
by path, so no browser download is needed. A missing Chromium fails the test, never skips it.

Screenshot for the docs (the page after the broker's death):

    KRAFT_CONSOLE_SCREENSHOT=docs/console.png \\
        .venv/bin/pytest tests/observe/test_console_browser.py -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from controller.localquorum import LocalQuorum
from tests.brokers.helpers import BrokerProc, kraft_json, wait_until
from tests.quorums import checked_quorum

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

BROKER_IDS = (1, 2, 3)
TOPIC = "orders"
PARTITIONS = 4
UI_TIMEOUT_MS = 20_000  # the page polls /api/state every second; a session expires in ~4 s
SCREENSHOT_ENV = "KRAFT_CONSOLE_SCREENSHOT"


@contextmanager
def cluster(data: Path) -> Iterator[tuple[LocalQuorum, dict[int, BrokerProc]]]:
    """A 3-controller quorum (OS-chosen ports) with registered demo brokers 1, 2, 3."""
    with checked_quorum(data, fsync=False) as q:
        q.wait_until_ready()
        brokers: dict[int, BrokerProc] = {}
        try:
            for i in BROKER_IDS:
                brokers[i] = BrokerProc(i, q.connect_string, "--rack", f"r{i}")
            for b in brokers.values():
                b.wait_registered()
            yield q, brokers
        finally:
            for b in brokers.values():
                b.kill()


@contextmanager
def console_page(url: str) -> Iterator[Page]:
    """`url` open in headless Debian Chromium; fails on any uncaught page error."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (apt-get install chromium; .ci/run does)"
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            yield page
        finally:
            browser.close()
    assert not errors, errors


def describe(bootstrap: str) -> list[dict[str, Any]]:
    """The topic's partitions as `kraft topics describe` reports them."""
    [topic] = kraft_json("topics", "describe", TOPIC, "-b", bootstrap)["topics"]
    parts: list[dict[str, Any]] = topic["partitions"]
    return sorted(parts, key=lambda p: p["partition"])


def partition_rows(page: Page) -> Locator:
    heading = page.locator("#topics h3", has_text=f"{TOPIC} ({PARTITIONS} partitions)")
    return heading.locator("xpath=following-sibling::table[1]/tbody/tr")


def expect_partitions(page: Page, parts: list[dict[str, Any]]) -> None:
    rows = partition_rows(page)
    expect(rows).to_have_count(len(parts), timeout=UI_TIMEOUT_MS)
    for i, p in enumerate(parts):
        cells = [
            str(p["partition"]),
            str(p["leader"]),
            str(p["leader_epoch"]),
            ",".join(map(str, p["replicas"])),
            ",".join(map(str, p["isr"])),
        ]
        expect(rows.nth(i).locator("td")).to_have_text(cells, timeout=UI_TIMEOUT_MS)


def broker_row(page: Page, broker_id: int) -> Locator:
    return page.locator("#brokers tbody tr").filter(
        has=page.locator("td:first-child", has_text=re.compile(rf"^{broker_id}$"))
    )


def test_console_follows_a_broker_kill(tmp_path: Path) -> None:
    with cluster(tmp_path) as (q, brokers):
        bootstrap = q.connect_string
        created = kraft_json("topics", "create", TOPIC, "--partitions", str(PARTITIONS),
                             "--replication-factor", "2", "-b", bootstrap)  # fmt: skip
        assert created["ready"] is True
        before = describe(bootstrap)
        assert all(p["leader"] == p["replicas"][0] and p["isr"] for p in before), before
        # A follower's console: every controller serves the whole picture.
        lead = int(q.wait_for_leader()["node_id"])
        follower = next(i for i in q.ids if i != lead)

        with console_page(q.admin_url(follower)) as page:
            expect(page.locator("#conn")).to_have_text("live", timeout=UI_TIMEOUT_MS)
            expect(page.locator("#answered")).to_contain_text(
                f"answered by controller {follower} (follower"
            )
            expect(page.locator("#quorum-summary")).to_contain_text(f"leader {lead} ")
            expect(page.locator("#quorum tbody tr")).to_have_count(len(q.ids))

            led = {i: sum(p["leader"] == i for p in before) for i in BROKER_IDS}
            expect(page.locator("#brokers tbody tr")).to_have_count(len(BROKER_IDS))
            for i, b in brokers.items():
                expect(broker_row(page, i).locator("td")).to_have_text(
                    [str(i), f"r{i}", f"127.0.0.1:{b.port}", str(b.epoch), "yes", str(led[i])],
                    timeout=UI_TIMEOUT_MS,
                )
            expect_partitions(page, before)
            expect(page.locator("#timeline li.topic_created")).to_contain_text(
                f"topic {TOPIC} created with {PARTITIONS} partitions"
            )

            # SIGKILL the leader of partition 0: no controlled shutdown, the session expires.
            victim = before[0]["leader"]
            page.evaluate("window.__notReloaded = true")
            os.kill(brokers[victim].proc.pid, signal.SIGKILL)
            brokers[victim].proc.wait(10)

            def victim_gone() -> bool:
                return all(
                    p["leader"] != victim and victim not in p["isr"] for p in describe(bootstrap)
                )

            wait_until(
                victim_gone,
                timeout=30,
                what=f"broker {victim}'s leaderships and ISR memberships gone",
            )
            after = describe(bootstrap)
            for old, new in zip(before, after, strict=True):
                if old["leader"] == victim:
                    survivor = next(r for r in old["replicas"] if r != victim)
                    assert new["leader"] == survivor and new["leader_epoch"] > old["leader_epoch"]
                else:
                    assert new["leader"] == old["leader"]

            expect_partitions(page, after)
            for i, p in enumerate(after):
                if victim in p["replicas"]:
                    expect(partition_rows(page).nth(i)).to_have_class("underrep")
            dead = broker_row(page, victim)
            expect(dead).to_have_class("dead", timeout=UI_TIMEOUT_MS)
            expect(dead.locator("td")).to_have_text([str(victim), "?", "?", "?", "no", "0"])
            expect(page.locator("#brokers-summary")).to_contain_text(f"{len(BROKER_IDS) - 1} live")
            timeline = page.locator("#timeline")
            expect(timeline.locator("li.broker_death")).to_have_text(
                re.compile(rf"broker {victim} is gone$"), timeout=UI_TIMEOUT_MS
            )
            for old, new in zip(before, after, strict=True):
                if old["leader"] == victim:
                    text = (
                        f"{TOPIC}-{new['partition']}: leader {victim} -> {new['leader']} "
                        f"(leader epoch {new['leader_epoch']}, broker failure)"
                    )
                    expect(timeline.locator("li.leader_change", has_text=text)).to_have_count(1)
            assert page.evaluate("window.__notReloaded") is True
            expect(page.locator("#conn")).to_have_text("live")

            if out := os.environ.get(SCREENSHOT_ENV):
                page.screenshot(path=out, full_page=True)
