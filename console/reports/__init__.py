"""The tax reporter's and the promoter's side of the region console, as a library.

No web framework here: the pages and the JSON API (``console/routes/``) call these
functions with a :class:`console.scope.Scope` and an edge :class:`edge.store.Store`.
The figures come from the rollup tables that ingest keeps (never from the events
table, except for the late sales of a filed period, which are read by device and
sequence number); every statement lives in :mod:`console.reports.store`.
"""
