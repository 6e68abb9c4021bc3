"""TensorFlow imported when it is first used, not when Rasa starts (for the Rasa server: bot/serve.py).

Rasa 3.6 imports TensorFlow whatever the pipeline: `rasa.nlu.extractors.extractor` imports `rasa.utils.train_utils`,
which imports the TensorFlow training callbacks, and every NLU component and policy module goes through it. Our
model has no TensorFlow component, so the Rasa server would carry TensorFlow (about half of its memory,
docs/PERFORMANCE.md) without ever calling it.

`install()` defers the modules named in DEFERRED_MODULES: `import tensorflow` puts the module object in place at
once (with its name, spec, file and package path, as an import sets them), and the module's own code runs the first
time a name it defines is read (`tf.constant`, `from tensorflow import keras`). A model or an endpoint that uses
TensorFlow (DIETClassifier, TEDPolicy, training in the same process) gets the real module then, at the cost of the
import at that moment; nothing else changes. `loaded()` tells whether a deferred module's code has run.

(The standard library's `importlib.util.LazyLoader` does not do here: on Python 3.10 any attribute read runs the
module, including the `__spec__` that every later `import` of an imported module reads.)
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any, Optional, Sequence

# `rasa.utils.train_utils` binds names of `rasa.utils.tensorflow.callback` at import, whose classes subclass
# `tf.keras` classes; the extractors that every NLU component imports import it without reading it. Deferring it and
# TensorFlow keeps TensorFlow out until something reads either.
DEFERRED_MODULES = ("tensorflow", "rasa.utils.train_utils")

_LOCK = threading.RLock()
_LOADERS = {}  # module name -> the real loader, while the module's code has not run


def _run(module: types.ModuleType) -> None:
    """Runs a deferred module's code (once; a module that failed to run is taken out, as a failed import)."""
    with _LOCK:
        loader = _LOADERS.pop(module.__name__, None)
        if loader is None:
            return
        module.__class__ = types.ModuleType
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module.__name__, None)
            raise


class _DeferredModule(types.ModuleType):
    """A module whose code has not run yet: reading a name it does not have yet runs it."""

    def __getattr__(self, name: str) -> Any:  # only called for names the module does not have (yet)
        _run(self)
        return types.ModuleType.__getattribute__(self, name)


class _DeferringLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        _LOADERS[module.__name__] = self.loader
        module.__class__ = _DeferredModule


class _ImportedLoader(importlib.abc.Loader):
    """Gives the import system a module that is already there (imported by its package's code), unchanged."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set it to ours


class _DeferringFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        parent = fullname.rpartition(".")[0]
        if parent in _LOADERS:
            # A submodule of a package whose code has not run (`import tensorflow.compat.v1` first): the package
            # runs first, as it would have. If its code imported the submodule, that module is the answer; it is
            # taken out of sys.modules for a moment, or the import system would run its code a second time.
            _run(sys.modules[parent])
            module = sys.modules.pop(fullname, None)
            if module is not None:
                return importlib.util.spec_from_loader(fullname, _ImportedLoader(module))
            return self._others_spec(fullname, sys.modules[parent].__path__)
        if fullname not in self.names:
            return None
        spec = self._others_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec  # only plain source modules are deferred
        spec.loader = _DeferringLoader(spec.loader)
        return spec

    def _others_spec(self, fullname, path):  # type: ignore[no-untyped-def]
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path)
            if spec is not None:
                return spec
        return None


_finder: Optional[_DeferringFinder] = None


def install(names: Sequence[str] = DEFERRED_MODULES) -> None:
    """Defers `names` in this process (those not imported yet; an imported module stays as it is)."""
    global _finder
    if _finder is None:
        _finder = _DeferringFinder(names)
        sys.meta_path.insert(0, _finder)


def import_without(name: str, hidden: str = "tensorflow") -> None:
    """Imports module `name` as if `hidden` were not installed (`import hidden` raises ImportError meanwhile).

    For thinc (spaCy's layer library), which imports TensorFlow, if installed, at import only to offer its
    TensorFlow layers; our spaCy pipelines are blank and rule-based (bot/nlu/extract.py). thinc then reports
    TensorFlow as absent in this process; everything else still gets it (deferred) when it asks.
    """
    if name in sys.modules or hidden in sys.modules:
        return
    sys.modules[hidden] = None  # type: ignore[assignment]
    try:
        importlib.import_module(name)
    finally:
        del sys.modules[hidden]


def loaded(name: str = "tensorflow") -> bool:
    """Whether the module has been imported and its code has run (a deferred module not yet read: False)."""
    module = sys.modules.get(name)
    return module is not None and type(module) is not _DeferredModule


def defer_train_schema() -> None:
    """Models loaded for serving read their train schema when it is first read, not at load.

    A model archive holds two graph schemas, and loading it resolves the class of every node of both. Only the
    predict schema serves; the train schema's classes include Rasa's recipe validator, which imports DIET, the
    ResponseSelector and TED, and so TensorFlow. Its deserialisation is deferred to its first read (training or
    fine-tuning from the loaded model, `as_dict()`), which gives the same schema as before.
    """
    from rasa.engine.graph import GraphSchema
    from rasa.engine.storage.storage import ModelMetadata

    if getattr(ModelMetadata.from_dict, "_bot_deferred", False):
        return
    original = ModelMetadata.from_dict.__func__

    class ServingModelMetadata(ModelMetadata):
        @property  # type: ignore[override]
        def train_schema(self) -> GraphSchema:
            value = self.__dict__["_bot_train_schema"]
            if not isinstance(value, GraphSchema):
                value = self.__dict__["_bot_train_schema"] = GraphSchema.from_dict(value)
            return value

        @train_schema.setter
        def train_schema(self, value: Any) -> None:
            self.__dict__["_bot_train_schema"] = value

    def from_dict(cls, serialized):  # type: ignore[no-untyped-def]
        metadata = original(cls, dict(serialized, train_schema={"nodes": {}}))
        values = {field.name: getattr(metadata, field.name) for field in dataclasses.fields(metadata)}
        values["train_schema"] = serialized["train_schema"]
        return ServingModelMetadata(**values)

    from_dict._bot_deferred = True  # type: ignore[attr-defined]
    ModelMetadata.from_dict = classmethod(from_dict)  # type: ignore[assignment]
