"""The data-plane gateway: one stable URL per endpoint, forwarding to its ready replicas.

``routes`` holds what the controllers publish; ``proxy`` is the ASGI app that forwards requests.
"""
