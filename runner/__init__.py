"""Composition of the research commands: parameter sweeps, walk-forward, the run store.

A runner sits above ``engine``, ``strategies`` and ``datasets`` and composes them; none of
those packages imports it.
"""
