"""DLMS/COSEM application layer: A-XDR, ACSE and xDLMS APDUs, security (IEC 62056-5-3, -6-2)."""
