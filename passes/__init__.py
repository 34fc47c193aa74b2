"""The compiler's passes, one per module, registered by kebab-case name."""

from collections.abc import Callable

from xdsl.passes import ModulePass

# pass name -> (module, class); loaded lazily so `xdsl-opt` starts fast.
PASS_MODULES: dict[str, tuple[str, str]] = {}


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass factories by name."""
    import importlib

    def factory(module: str, cls: str) -> Callable[[], type[ModulePass]]:
        return lambda: getattr(importlib.import_module(module), cls)

    return {name: factory(m, c) for name, (m, c) in PASS_MODULES.items()}
