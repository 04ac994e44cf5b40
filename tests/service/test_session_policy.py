"""The leader's session expiry policy (pure, times fed in)."""

from __future__ import annotations

from controller.service.session_policy import SessionExpiryPolicy


def test_a_silent_session_is_due_once_after_its_timeout() -> None:
    policy = SessionExpiryPolicy()
    policy.touched(1, 4000, now=0.0)
    assert policy.next_deadline() == 4.0
    assert policy.due(3.9, {1}) == []
    assert policy.due(4.0, {1}) == [1]
    assert policy.due(10.0, {1}) == []  # named once until closed
    policy.closed(1)
    assert policy.tracked == 0


def test_touches_push_the_deadline_later() -> None:
    policy = SessionExpiryPolicy()
    policy.touched(1, 4000, now=0.0)
    policy.touched(1, 4000, now=3.0)
    assert policy.due(5.0, {1}) == []
    assert policy.due(7.0, {1}) == [1]


def test_a_new_leader_gives_every_session_a_full_timeout() -> None:
    """ZooKeeper's leader cannot know how long sessions were silent under the old one."""
    policy = SessionExpiryPolicy()
    policy.touched(1, 4000, now=0.0)
    policy.restart({1: 4000, 2: 6000}, now=100.0)
    assert policy.due(103.9, {1, 2}) == []
    assert policy.due(104.0, {1, 2}) == [1]
    assert policy.due(106.0, {1, 2}) == [2]


def test_sessions_gone_from_the_table_are_forgotten_not_expired() -> None:
    policy = SessionExpiryPolicy()
    policy.touched(1, 1000, now=0.0)
    assert policy.due(5.0, set()) == []
    assert policy.tracked == 0


def test_adopt_keeps_known_deadlines() -> None:
    policy = SessionExpiryPolicy()
    policy.touched(1, 1000, now=0.0)
    policy.adopt({1: 1000, 2: 1000}, now=50.0)
    assert policy.due(1.0, {1, 2}) == [1]
    assert policy.due(51.0, {1, 2}) == [2]
