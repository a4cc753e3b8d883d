"""One training run, in the order it happens.

:mod:`.spec` (:class:`~benchmark.run.spec.RunSpec`: what the run is) -> :mod:`.setup` (every
check before anything is written) -> :mod:`.state` (lock, atomic files, RNG, environment) ->
:mod:`.loop` (the training loop; :mod:`.checkpoint` writes its resume point, :mod:`.forward`
runs the network at the protocol's precision) -> :mod:`.evaluate` (validation and the one read
of the test split) -> :mod:`.files` (the run-folder files). :mod:`.execute` drives them
(:func:`~benchmark.run.execute.run`); :mod:`.command` is the ``run`` sub-command and
``--check-repro``; :mod:`.job` is one sweep job in its worker process.
"""
