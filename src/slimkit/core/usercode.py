"""Loading and calling the user's own functions: ``path/to/file.py:fn`` or ``package.module:fn``.

Every failure in the user's code becomes one clear line that names the file (or module), the
function and what was expected; a traceback line from the user's file says where it broke.

A reference runs code only when it is trusted: the user named it in this process (on the command
line, in a recipe, in a Python call: ``trust``), or the user opted in for references read from
files (``trusting(True)``, the ``--trust-code`` flag). A run folder, a study's storage or a model
file naming ``evil.py:fn`` is data someone sent; opening it never imports that file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from slimkit.core.errors import SlimkitError


def is_reference(text: str | None) -> bool:
    """``file.py:fn`` or ``package.module:fn`` (a registered name has no colon)."""
    return bool(text) and ":" in str(text)


def absolute(ref: str, base: str | Path | None = None) -> str:
    """``ref`` with a file path made absolute (relative to ``base``, default: the current
    folder), and so is the folder of a Hugging Face reference ``hf:PATH``; module references
    are returned as they are."""
    if ref.startswith("hf:"):
        folder = Path(ref[3:]).expanduser()
        return f"hf:{(Path(base or Path.cwd()) / folder).resolve()}"
    target, _, fn = ref.rpartition(":")
    if not target.endswith(".py"):
        return ref
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    return f"{path.resolve()}:{fn}"


def module_name(path: Path) -> str:
    """The name a user's file is imported under: stable for one path, so a model pickled in
    one process unpickles in another after ``import_file`` of the same path."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"slimkit_user_{path.stem}_{digest}"


def import_file(path: Path, error: type[SlimkitError]) -> ModuleType:
    """Import the Python file at ``path`` (once per process)."""
    name = module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise error(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise error(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # its own sibling imports work
    try:
        spec.loader.exec_module(module)
    except BaseException as err:
        del sys.modules[name]
        raise error(f"{path}: import failed: {describe_failure(err, path)}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def describe_failure(err: BaseException, path: Path | None = None) -> str:
    """``Kind: message (file.py line N)``, pointing at the user's own line when it is known."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    where = ""
    if isinstance(err, SyntaxError) and err.lineno:
        where = f" (line {err.lineno})"
    else:
        frames = traceback.extract_tb(err.__traceback__)
        mine = [f for f in frames if path is None or Path(f.filename) == path]
        if mine:
            where = f" ({Path(mine[-1].filename).name} line {mine[-1].lineno})"
    return f"{type(err).__name__}: {text}{where}"[:400]


OBJECT_PREFIX = "python:"
_OBJECTS: dict[str, Callable[..., Any]] = {}


def register_callable(fn: Callable[..., Any], kind: str, key: str) -> str:
    """A reference ``python:<kind>-<digest of key>`` to a function object of this process (the
    Python API's data and metric functions); it resolves only in this process. The same
    ``key`` gives the same reference, so a resumed run recognizes its inputs."""
    name = f"{OBJECT_PREFIX}{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    _OBJECTS[name] = fn
    return name


TRUST_HINT = "pass --trust-code (Python: trust_code=True) if you trust it"
_TRUSTED: set[str] = set()
_TRUST_ALL = [False]


def trust(*refs: str | None) -> None:
    """Mark references the user gave in this process as safe to import and call."""
    _TRUSTED.update(r for r in refs if isinstance(r, str) and is_reference(r))


@contextmanager
def trusting(enabled: bool = True) -> Iterator[None]:
    """Within the block, references read from files (run.json, a model file, a study) may run
    code too: the user's opt-in (``--trust-code``)."""
    before = _TRUST_ALL[0]
    _TRUST_ALL[0] = before or enabled
    try:
        yield
    finally:
        _TRUST_ALL[0] = before


def code_trusted(ref: str | None = None) -> bool:
    """Whether ``ref`` (or, without one, any reference read from a file) may run code."""
    return _TRUST_ALL[0] or (ref is not None and ref in _TRUSTED)


def check_trusted(ref: str, error: type[SlimkitError], what: str) -> None:
    """Refuse to import ``ref`` unless it is trusted (see the module docstring)."""
    if not code_trusted(ref) and not ref.startswith(OBJECT_PREFIX):
        raise error(f"{what} {ref!r} was read from a run, model file or study, not given in "
                    f"this command, and loading it runs the code it names; {TRUST_HINT}")


def load_function(ref: str, error: type[SlimkitError], what: str) -> Callable[..., Any]:
    """The function ``ref`` names; ``what`` says what it is for (in messages). Only a trusted
    reference is imported."""
    check_trusted(ref, error, what)
    if ref.startswith(OBJECT_PREFIX):
        if ref not in _OBJECTS:
            raise error(f"{what} {ref!r}: a Python object of another process; run it from "
                        f"the process that holds it, or give a file.py:function")
        return _OBJECTS[ref]
    target, sep, fn = ref.rpartition(":")
    if not sep or not target or not fn:
        raise error(f"{what} {ref!r}: expected path/to/file.py:function or "
                    f"package.module:function")
    if target.endswith(".py"):
        module = import_file(Path(target), error)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as err:
            raise error(f"{what} {ref!r}: cannot import module {target!r} ({err})") from None
        except (Exception, SystemExit) as err:
            raise error(f"{what} {ref!r}: import failed: {describe_failure(err)}") from None
    obj = getattr(module, fn, None)
    if obj is None:
        found = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        listed = ", ".join(found) or "none"
        raise error(f"{what} {ref!r}: {target} has no function {fn!r}; functions there: "
                    f"{listed}")
    if not callable(obj):
        raise error(f"{what} {ref!r}: {fn!r} is a {type(obj).__name__}, not a function")
    return obj


def call(fn: Callable[..., Any], ref: str, error: type[SlimkitError], *args: Any,
         **kwargs: Any) -> Any:
    """Call the user's ``fn``; an exception inside it becomes one line naming ``ref``."""
    try:
        return fn(*args, **kwargs)
    except SlimkitError:
        raise
    except (Exception, SystemExit) as err:
        target = ref.rpartition(":")[0]
        path = Path(target) if target.endswith(".py") else None
        raise error(f"{ref} raised {describe_failure(err, path)}") from None


def accepted(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword names ``fn`` takes, and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)
