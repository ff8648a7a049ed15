"""Benchmarks of sg-reconciler against its targets and against Cloud Custodian (c7n).

Run ``make bench`` (or ``.venv-bench/bin/python -m benchmarks.run``); see ``benchmarks/run.py``.
Everything runs against a local ``moto_server`` on 127.0.0.1: no traffic leaves the machine.
"""
