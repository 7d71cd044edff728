"""The ``metercom`` command line: thin front ends over sessions, simulators and the service."""
