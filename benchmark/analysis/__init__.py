"""Run folders -> tidy frames (:mod:`.frames`) -> statistics (:mod:`.stats`) -> tables
(:mod:`.tables`), figures (:mod:`.plots`) and ``report.md`` (:mod:`.report`).

The ``compare``, ``plots`` and ``report`` commands live in :mod:`.commands`, which nothing here
imports. This layer reads run folders only; it never imports :mod:`benchmark.run`.
"""
