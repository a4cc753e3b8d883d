"""One training run, in the order it happens.

:mod:`.spec` (:class:`~benchmark.run.spec.RunSpec`: what the run is) -> :mod:`.setup` (every
check before anything is written) -> :mod:`.lock` (the folder's owner), :mod:`.rng` (seeds and
RNG states), :mod:`.environment` (what the run records about the machine) -> :mod:`.loop` (the
training loop; :mod:`.checkpoint` writes its resume point, :mod:`.forward` runs the network at
the protocol's precision) -> :mod:`.evaluate` (validation and the one read of the test split)
-> :mod:`.views` and :mod:`.files` (what the run writes; file names, hashing and the typed files
are :mod:`benchmark.record`'s). :mod:`.execute` drives them
(:func:`~benchmark.run.execute.run`); :mod:`.command` is the ``run`` sub-command and
``--check-repro``; :mod:`.job` is one sweep job in its worker process.
"""
