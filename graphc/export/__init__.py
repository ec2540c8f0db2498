"""graphc.export: models as standalone C packages (export_c) and shared libraries (build_library)."""
from .library import build_library  # noqa: F401
from .package import export_c, export_package, load_weights  # noqa: F401
