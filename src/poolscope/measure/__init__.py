"""The measuring core: what runs a run's trials and records every item.

``runner`` plans the trials and runs them in interleaved rounds; ``trial`` is one trial as named
steps; ``probe`` records each item inside the workers; ``shipping`` gets the function, items and
results to and from worker processes. Around them: ``board`` (what each worker runs now),
``faults`` (why a worker ended), ``limits`` (--timeout, --max-memory), ``lifetime`` (nothing
outlives poolscope), ``_interrupt`` (Ctrl-C), ``_child`` and ``_subinterp`` (the other side of
isolation and of subinterpreters), ``preflight`` and ``gil_watch`` (the first items, before any
trial) and ``native`` (BLAS and OpenMP pools).

Nothing is imported here: a worker process imports only the modules it needs.
"""
