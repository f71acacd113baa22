"""Inference traffic on the chip: the service model (time and energy of one inference from the
mapping and per-op costs), the workload (arrivals, batching, queue, replicas, power schedule) and
the request-level SimPy engine with its multi-scale windows (docs/traffic.md)."""
