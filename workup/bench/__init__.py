"""Benchmarks behind ``workup bench <scenario>``: each scenario is a module here defining a click
``command``; ``_harness`` holds what they share (closed-loop driver, percentiles, processes,
tables, JSON results under ``perf/results/``). Nothing in the core imports this package."""
