"""A demo broker for the metadata controller: it registers under `/brokers/ids/<id>` (an
ephemeral znode, broker epoch = its czxid), follows partition leadership through watches into a
pure metadata cache (`broker_demo.cache`), answers a status request on its port, and shuts
down in a controlled way (moving its leaderships away first) on SIGTERM/SIGINT.

Run it with `python -m broker_demo --id N` or `kraft broker run --id N`.
"""
