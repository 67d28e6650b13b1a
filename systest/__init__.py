"""The system-test harness: tills, the sync agent and the edge run together.

The one package that may know all three (tests/sync and bench/drain.py use it); no
shipped command imports it. ``systest.sync`` drives tills, agents and edges as real
processes; ``systest.postgres`` is a throwaway PostgreSQL cluster for the edge's store.
"""
