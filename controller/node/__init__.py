"""The trio shell around the Raft core: one controller process."""
