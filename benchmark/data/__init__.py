"""Data: LOL-style paired folders (:mod:`.pairs`), the synthetic default set (:mod:`.synth`)
and byte-level image checks (:mod:`.imagefiles`). Imports nothing above :mod:`benchmark.errors`.
"""
