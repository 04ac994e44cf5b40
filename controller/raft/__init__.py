"""Sans-IO Raft: no trio, no sockets, no clocks, no files.

The core (`RaftCore`) takes messages, ticks and proposals and returns a `Ready`
describing what to persist, what to send and what to apply.
"""
