"""When a bundle backend's components are in memory: all at once, or one at a time.

A generation uses its components in turn (text encoder, UNet loop, decoder), so holding them
all is only worth it when the same backend generates again (the demo, the benchmarks, an app):
it saves reloading them. A one-shot generation (`sfmobile generate`) opens each when first
needed and closes the one before, so its peak memory is that of the largest component, not the
sum of all of them (issue 14: a 512x512 int8 generation under 1.5 GB).

Closing a component drops every reference to its session; the C heap then still holds the freed
pages, so on glibc `malloc_trim(0)` hands them back to the system (else the next component's
allocations would sit on top of the resident high-water mark). One-at-a-time mode also fixes
glibc's mmap threshold at 128 KiB (process-wide; glibc otherwise raises it up to 32 MiB as large
blocks are freed, after which a run's activations come from the heap and stay there): measured
on a full-size int8 snapfusion generation, the UNet's peak fell from 2.86 GB to 2.40 GB
(docs/memory.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from sfmobile.heap import prefer_returnable_memory, return_freed_memory

Component = TypeVar("Component")


class Components(Generic[Component]):
    """The components of one bundle, opened by `open_component(name)`.

    resident: every component opened now and kept (errors in any model file surface before a
    generation starts); otherwise at most one is open at a time: asking for another closes the
    open one first, then opens the new one (a model file's errors surface when it is first used).
    """

    def __init__(
        self,
        names: Iterable[str],
        open_component: Callable[[str], Component],
        resident: bool = True,
    ) -> None:
        self.names = tuple(names)
        self.open_component = open_component
        self.resident = resident
        self.opened: dict[str, Component] = {}
        if resident:
            for name in self.names:
                self.opened[name] = open_component(name)
        else:
            prefer_returnable_memory()

    def get(self, name: str) -> Component:
        """The named component, opened if it is not (closing the open one unless resident)."""
        if name not in self.names:
            raise KeyError(name)
        if name not in self.opened:
            if not self.resident:
                self.close()
            self.opened[name] = self.open_component(name)
        return self.opened[name]

    def close(self) -> None:
        """Close every open component and return the memory they held."""
        if not self.opened:
            return
        self.opened.clear()
        return_freed_memory()


class ComponentAccess:
    """`text_encoder`, `unet`, `decoder` and `encoder` (None when the bundle has none) of a
    backend whose `components` opens them."""

    components: Components

    @property
    def text_encoder(self):
        return self.components.get("text_encoder")

    @property
    def unet(self):
        return self.components.get("unet")

    @property
    def decoder(self):
        return self.components.get("decoder")

    @property
    def encoder(self):
        return self.components.get("encoder") if "encoder" in self.components.names else None
