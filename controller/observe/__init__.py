"""Observability of one controller: the HTTP admin server (`/metrics`, `/commands/<name>`,
`/healthz`, `/readyz`, the live console at `/`) and the event timeline behind it.

Everything here reads state at request time on the node's own trio thread: the Raft loop's
hot paths are not instrumented. See docs/operations.md.
"""
