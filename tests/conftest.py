"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seeds",
        action="store",
        type=int,
        default=None,
        help="number of simulator seeds to run (default: the CI count)",
    )
    parser.addoption(
        "--seed-start",
        action="store",
        type=int,
        default=0,
        help="first simulator seed",
    )
