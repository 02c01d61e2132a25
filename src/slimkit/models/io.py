"""Saving and loading a model as data.

A model file is a safetensors file: the tensors, and JSON metadata holding the spec that
rebuilds the model (family, args, shapes) and its structure: for each submodule whose plain
attributes (ints, floats, strings, tuples of them) differ from the freshly built family, those
attributes (channel counts after structured pruning, head counts, ...). Loading builds the
family, applies the structure, resizes the tensors to the stored shapes and loads them. Nothing
is unpickled, and a family that is the user's own code (``file.py:fn``) is imported only when
it is trusted (``slimkit.core.usercode``: named by the user in this process, or ``--trust-code``).

Saving checks that the rebuilt model computes what the model did. A model that cannot be
rebuilt that way (a model object given to the Python API, a layer replaced by one of another
type) also gets a pickle of the whole module beside it (``model.pkl``), which is unpickled only
with ``--trust-code``. Files of the format before this one (``model.pt``, format 1) load the
same way: weights-only loading, and their pickled modules only with ``--trust-code``.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model as load_tensors
from safetensors.torch import save_model as save_tensors
from torch import nn

from slimkit.core.atomic import atomic_path
from slimkit.core.errors import StoreError
from slimkit.core.usercode import TRUST_HINT, code_trusted, import_file
from slimkit.models.base import MODELS
from slimkit.models.build import build_model
from slimkit.models.user import is_object_family

MODEL_FORMAT = "slimkit-model/2"
LEGACY_FORMAT = "slimkit-model/1"
MODEL_FILE = "model.safetensors"
PLAIN = (bool, int, float, str)
SKIPPED = ("training",)  # mode, not structure


def _plain(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(isinstance(v, PLAIN) for v in value)
    return isinstance(value, PLAIN) or value is None


def _attributes(module: nn.Module) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and k not in SKIPPED and _plain(v)}


def _fresh(spec: dict[str, Any]) -> nn.Module:
    return build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                       spec["num_classes"], spec.get("input_dtype", "float32"))


def structure_of(model: nn.Module, fresh: nn.Module) -> dict[str, dict[str, Any]] | None:
    """The attributes of ``model``'s submodules that differ from ``fresh`` (the family built
    from the spec), or None when the two differ in more than attributes and tensor shapes (other
    submodules, other layer types, other tensor names)."""
    ours, theirs = dict(model.named_modules()), dict(fresh.named_modules())
    if ours.keys() != theirs.keys() or model.state_dict().keys() != fresh.state_dict().keys():
        return None
    changes: dict[str, dict[str, Any]] = {}
    for name, module in ours.items():
        reference = theirs[name]
        if type(module) is not type(reference):
            return None
        given = _attributes(reference)
        diff = {k: list(v) if isinstance(v, tuple) else v
                for k, v in _attributes(module).items() if given.get(k, ...) != v}
        if diff:
            changes[name] = diff
    return changes


def apply_structure(model: nn.Module, structure: dict[str, dict[str, Any]],
                    shapes: dict[str, list[int]]) -> None:
    """Give ``model`` (freshly built) the attributes in ``structure`` and tensors of ``shapes``
    (uninitialized; the stored values are loaded next)."""
    modules = dict(model.named_modules())
    for name, attributes in structure.items():
        if name not in modules:
            raise StoreError(f"the model has no layer {name!r}")
        module = modules[name]
        for key, value in attributes.items():
            if not hasattr(module, key):
                raise StoreError(f"layer {name!r} has no attribute {key!r}")
            current = getattr(module, key)
            setattr(module, key, tuple(value) if isinstance(current, tuple) else value)
    for name, module in modules.items():
        prefix = f"{name}." if name else ""
        for kind in ("_parameters", "_buffers"):
            tensors = getattr(module, kind)
            for key, tensor in tensors.items():
                shape = shapes.get(prefix + key)
                if tensor is None or shape is None or list(tensor.shape) == shape:
                    continue
                empty = torch.empty(shape, dtype=tensor.dtype)
                tensors[key] = (nn.Parameter(empty, requires_grad=tensor.requires_grad)
                                if kind == "_parameters" else empty)


def _example(spec: dict[str, Any]) -> torch.Tensor:
    return torch.ones(2, *spec["input_shape"], dtype=getattr(torch, spec.get("input_dtype",
                                                                             "float32")))


def _same_outputs(model: nn.Module, rebuilt: nn.Module, spec: dict[str, Any]) -> bool:
    example = _example(spec)
    training = model.training
    with torch.no_grad():
        ours, theirs = model.eval()(example), rebuilt.eval()(example)
    model.train(training)
    if not (isinstance(ours, torch.Tensor) and isinstance(theirs, torch.Tensor)):
        return False
    return ours.shape == theirs.shape and torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def _rebuild(spec: dict[str, Any], structure: dict[str, dict[str, Any]], path: Path,
             fresh: nn.Module | None = None) -> nn.Module:
    model = _fresh(spec) if fresh is None else fresh
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
        apply_structure(model, structure, shapes)
        load_tensors(model, str(path), strict=True)
    except StoreError as err:
        raise StoreError(f"{path}: the stored structure does not fit {spec['family']} "
                         f"({err})") from None
    except (RuntimeError, SafetensorError, OSError) as err:
        raise StoreError(f"{path}: weights do not fit the model ({str(err)[:200]})") from None
    return model


def _pickle_path(path: Path) -> Path:
    return path.with_suffix(".pkl")


def save_model(path: Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save ``model`` with its spec to the safetensors file ``path``, atomically. A model its
    family cannot rebuild is also pickled beside it (loaded only with ``--trust-code``)."""
    path = Path(path)
    try:
        fresh: nn.Module | None = _fresh(spec)
    except Exception:
        fresh = None
    structure = None if fresh is None else structure_of(model, fresh)
    metadata = {"format": MODEL_FORMAT, "spec": json.dumps(spec),
                "structure": json.dumps(structure)}
    with atomic_path(path) as tmp:
        save_tensors(model, str(tmp), metadata=metadata, force_contiguous=True)
        if structure is not None and not _same_outputs(
                model, _rebuild(spec, structure, tmp, fresh), spec):
            structure = None  # attributes alone do not describe it: keep the module as well
            metadata["structure"] = "null"
            save_tensors(model, str(tmp), metadata=metadata, force_contiguous=True)
    if structure is None or is_object_family(spec["family"]):  # objects: for other processes
        buffer = io.BytesIO()
        torch.save(model, buffer)
        with atomic_path(_pickle_path(path)) as tmp:
            tmp.write_bytes(buffer.getvalue())


def _header(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise StoreError(f"{path}: corrupt model file ({str(err)[:200]})") from None


def _unpickle(path: Path, data: bytes, family: str) -> nn.Module:
    if not code_trusted(family):
        raise StoreError(f"{path}: this model is stored as a pickled module; unpickling runs "
                         f"code from the file; {TRUST_HINT}")
    target = family.rpartition(":")[0]
    if target.endswith(".py"):  # the user's classes live in their file
        import_file(Path(target), StoreError)
    try:
        module = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as err:
        raise StoreError(f"{path}: cannot rebuild the model ({type(err).__name__}: "
                         f"{str(err)[:200]})") from None
    if not isinstance(module, nn.Module):
        raise StoreError(f"{path}: not a slimkit model file")
    return module


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model``; returns (model in eval mode, spec)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: model file is missing")
    with path.open("rb") as handle:
        start = handle.read(9)
    if start[8:9] != b"{":  # not a safetensors header (its size, then JSON): a torch file
        return _load_legacy(path)
    header = _header(path)
    if header.get("format") != MODEL_FORMAT:
        raise StoreError(f"{path}: not a slimkit model file (format "
                         f"{header.get('format')!r}, expected {MODEL_FORMAT!r})")
    try:
        spec, structure = json.loads(header["spec"]), json.loads(header["structure"])
    except (KeyError, json.JSONDecodeError) as err:
        raise StoreError(f"{path}: corrupt model file header ({err})") from None
    if not isinstance(spec, dict) or not {"family", "args", "input_shape",
                                          "num_classes"} <= spec.keys():
        raise StoreError(f"{path}: corrupt model file header (spec)")
    if structure is None or (is_object_family(spec["family"]) and spec["family"] not in MODELS):
        pickled = _pickle_path(path)
        if not pickled.is_file():
            raise StoreError(f"{path}: its pickled module {pickled.name} is missing")
        return _unpickle(pickled, pickled.read_bytes(), spec["family"]).eval(), spec
    if not isinstance(structure, dict):
        raise StoreError(f"{path}: corrupt model file header (structure)")
    return _rebuild(spec, structure, path).eval(), spec


def _load_legacy(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """A ``model.pt`` of format 1: weights-only when it holds a state dict; its pickled module
    (``module_bytes``, or a whole pickled file) only with ``--trust-code``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # well formed, but it names classes: a pickled module
        payload = None
    except Exception as err:
        raise StoreError(f"{path}: corrupt model file ({type(err).__name__})") from None
    if payload is None:
        if not code_trusted():
            raise StoreError(f"{path}: not a weights-only model file; unpickling it runs code "
                             f"from the file; {TRUST_HINT}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise StoreError(f"{path}: corrupt model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != LEGACY_FORMAT:
        raise StoreError(f"{path}: not a slimkit model file")
    spec = {k: v for k, v in payload.items()
            if k not in ("format", "state_dict", "module", "module_bytes")}
    if "module_bytes" in payload or "module" in payload:
        module = payload.get("module")
        if "module_bytes" in payload:
            module = _unpickle(path, payload["module_bytes"], spec["family"])
        if not isinstance(module, nn.Module):
            raise StoreError(f"{path}: not a slimkit model file")
        print(f"note: {path} is in slimkit's earlier model format (a pickled module), loaded "
              f"because you trust it", file=sys.stderr)
        return module.eval(), spec
    model = _fresh(spec)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as err:
        raise StoreError(f"{path}: weights do not fit the model ({str(err)[:200]})") from None
    return model.eval(), spec
