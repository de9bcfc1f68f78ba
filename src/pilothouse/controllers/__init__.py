"""Reconcilers, one per kind, and the manager that drives them from the store's watch and a resync.

Each reconciler follows load -> decide -> apply: ``decide`` is a pure function of the object and what
the runtime observes, so the interesting logic is tested without processes; ``apply`` makes the
runtime and the status match the decision and is safe to repeat after a crash.
"""
