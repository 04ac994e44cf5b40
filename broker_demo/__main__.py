"""`python -m broker_demo --id N ...`: run one demo broker (same as `kraft broker run`)."""

from broker_demo.cli import main

main()
