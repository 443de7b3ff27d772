"""Import ``overcomplete.sae`` (the sparse-autoencoder modules of the ``overcomplete`` library)
without running ``overcomplete/__init__.py``.

overcomplete 0.3.0's package init also imports its vision-model wrappers (torchvision, timm) and
its plotting helpers, which call ``matplotlib.cm.get_cmap`` (removed in matplotlib 3.9) and fail
at import. The SAE subpackage needs neither, so when the package is not loaded yet it is
registered as a bare namespace package and only ``overcomplete.sae`` is imported. Where the whole
package was already imported (an environment where its init works), that module is used as is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

from vwbench.errors import UserError


def import_overcomplete_sae() -> types.ModuleType:
    """Import ``overcomplete.sae`` without running ``overcomplete/__init__.py``.

    overcomplete 0.3.0's package init also imports its vision-model wrappers (torchvision, timm)
    and its plotting helpers, which call ``matplotlib.cm.get_cmap`` (removed in matplotlib 3.9)
    and fail at import. The SAE subpackage needs neither, so when the package is not loaded yet
    it is registered as a bare namespace and only the SAE code is imported.
    """
    if "overcomplete.sae" in sys.modules:
        return sys.modules["overcomplete.sae"]
    if "overcomplete" not in sys.modules:
        spec = importlib.util.find_spec("overcomplete")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("the sae study needs the 'overcomplete' package; install it with: pip install 'overcomplete>=0.3'")
        pkg = types.ModuleType("overcomplete")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__spec__ = spec
        pkg.__file__ = spec.origin
        sys.modules["overcomplete"] = pkg
    try:
        return importlib.import_module("overcomplete.sae")
    except ImportError as e:
        raise UserError(f"overcomplete's SAE code does not import ({e}); reinstall it: pip install 'overcomplete>=0.3'") from None
