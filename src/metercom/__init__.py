"""metercom: read and run electricity meters (IEC 62056-21, DLMS/COSEM, Modbus), simulators and head-end."""

__version__ = "0.1.0.dev0"
