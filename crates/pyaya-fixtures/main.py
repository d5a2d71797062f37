"""The fixtures have no user space of their own: the test suite loads them."""

raise SystemExit("load these objects from the tests (tests/kernel), not with `pyaya run`")
