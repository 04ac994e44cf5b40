"""Demo brokers that register with the controller quorum (built in a later issue)."""
