"""The reliability drills behind ``make reliability``: govern under real load, faults and hostile
input, against a real uvicorn server with several workers on a real PostgreSQL.

Each scenario returns a :class:`reliability.report.Row`; ``python -m reliability`` runs them and
writes RELIABILITY.md.
"""
