"""Carriers by name. A shipment whose `carrier` is not here is free text (no booking, no tracking)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shop.carriers.base import Carrier
from shop.settings import get_settings

_CLASSES: dict[str, tuple[str, str]] = {
    "sandbox": ("shop.carriers.sandbox", "SandboxCarrier"),
    "kuaidi100": ("shop.carriers.kuaidi100", "Kuaidi100Carrier"),
    "aftership": ("shop.carriers.aftership", "AfterShipCarrier"),
}
CARRIERS = tuple(_CLASSES)
_made: dict[str, Carrier] = {}

if TYPE_CHECKING:  # loaded by name above, so mypy proves here that each class is a complete Carrier
    from shop.carriers.aftership import AfterShipCarrier
    from shop.carriers.kuaidi100 import Kuaidi100Carrier
    from shop.carriers.sandbox import SandboxCarrier

    _SANDBOX: Carrier = SandboxCarrier()
    _KUAIDI100: Carrier = Kuaidi100Carrier()
    _AFTERSHIP: Carrier = AfterShipCarrier()


def enabled() -> set[str]:
    return {name for name in get_settings().enabled_carriers() if name in _CLASSES}


def adapter(name: str | None) -> Carrier | None:
    """The enabled adapter called `name`, else None (a free-text carrier)."""
    if not name or name not in enabled():
        return None
    made = _made.get(name)
    if made is None:
        module, cls = _CLASSES[name]
        made = _made[name] = getattr(importlib.import_module(module), cls)()
    return made
