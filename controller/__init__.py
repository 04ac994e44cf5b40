"""kraft-controller: a KRaft-style metadata controller quorum on trio."""

__version__ = "0.1.0"
