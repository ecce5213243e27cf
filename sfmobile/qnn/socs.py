"""The Snapdragon SoCs a QNN bundle can be compiled for: the one table of them.

htp_arch and soc_model are the QNN execution provider's options of the same names; a context
binary is compiled for one (htp_arch, soc_model) pair and the phone must carry that chip. QNN's
HTP simulator needs both (without them the first graph fails with MEM_ALLOC, ENVIRONMENT.md).
Values from Qualcomm's QNN SoC table; each row was compiled and run on the simulator here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfmobile.errors import InputError


@dataclass(frozen=True)
class Soc:
    name: str  # Qualcomm part number, e.g. SM8650
    marketing_name: str
    htp_arch: int  # Hexagon tensor processor version (v69, v73, ...)
    soc_model: int  # QNN's SoC id
    example_phone: str


SOCS = {
    soc.name: soc
    for soc in (
        Soc("SM8450", "Snapdragon 8 Gen 1", 69, 36, "Samsung Galaxy S22 (Snapdragon)"),
        Soc("SM8475", "Snapdragon 8+ Gen 1", 69, 42, "OnePlus 10T"),
        Soc("SM8550", "Snapdragon 8 Gen 2", 73, 43, "Samsung Galaxy S23"),
        Soc("SM8650", "Snapdragon 8 Gen 3", 75, 57, "Samsung Galaxy S24 Ultra"),
        Soc("SM8750", "Snapdragon 8 Elite", 79, 69, "Samsung Galaxy S25"),
    )
}


def soc(name: str) -> Soc:
    """The table row of `name` (case-insensitive), or an InputError listing the known SoCs."""
    found = SOCS.get(name.upper())
    if found is None:
        raise InputError(f"--soc {name!r}: expected one of {', '.join(SOCS)}")
    return found
