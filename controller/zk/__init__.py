"""The ZooKeeper wire protocol (jute): records, framing, constants. Sans-IO."""
