"""Device physics: the :class:`~twin.device.model.DeviceModel` protocol and its PCM implementation.

Layer 1 of twin (docs/architecture.md): imports only twin.units and twin.params; no simpy.
"""
