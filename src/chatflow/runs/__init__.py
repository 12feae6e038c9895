"""A run's whole lifecycle, from the execute request to its last event.

submit (the request) -> validation -> queue (per chat, in order) -> executor (the async side:
steps, status, events) -> step_runner (a step thread, the time limit) -> step_jobs / step_io
(a worker process: read, compute, write) ; progress (the bridge back to the loop), states (status
changes with their events), outcomes (how a run ends), dry_run.
"""
