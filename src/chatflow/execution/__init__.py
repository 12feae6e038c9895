"""Running workflows: scheduling (queue), the thread-side pipeline, and progress bridging."""
