"""Run folders -> tidy frames (:mod:`.frames`) -> scores ``{recipe: array(seeds x images)}``
(:mod:`.scores`) -> statistics (:mod:`.stats`) -> tables (:mod:`.tables`, written by
:mod:`.summary_files`), figures (:mod:`.plots`) and ``report.md`` (:mod:`.report`).

The ``compare``, ``plots`` and ``report`` commands live in :mod:`.commands`, which nothing here
imports. This layer reads run folders only; it never imports :mod:`benchmark.run`. Metric
labels, units, decimals and directions come from :data:`benchmark.metrics.METRICS`.
"""
