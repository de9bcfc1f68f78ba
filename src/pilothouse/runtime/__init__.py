"""Where workloads run. ``protocol`` is the contract; ``local`` runs processes on this machine.

Controllers act only through the protocol; the Kubernetes runtime (Deployments, Services, Jobs) is a
second implementation of the same contract.
"""
