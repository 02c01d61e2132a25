"""The probes of issue 17, run as a hostile or careless user runs them: through the `slimkit`
command, on real run folders, a real study.db and a real server. Prints one table row per probe:
what was tried, what happened, pass or FAIL.

Usage: python benchmarks/probes.py [--out benchmarks/.probes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch

RUN = """version: 1
task: digits
seed: 0
baseline: {model: mlp, model_args: {width: 16}, train: {epochs: 2}}
profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}
steps:
  - {name: pruned, technique: prune, from: baseline, params: {ratio: 0.5, finetune: {epochs: 1}}}
"""

TUNE = """version: 1
task: digits
seed: 0
baseline: {model: mlp, model_args: {width: 16}, train: {epochs: 1}}
profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}
steps:
  - {technique: tune, params: {trials: 2, pruner: none, train: {epochs: 1},
     space: {train.lr: {low: 0.001, high: 0.1, log: true}}}}
"""

SLOW = RUN.replace("epochs: 2}", "epochs: 2000, patience: null}")  # caught running

ROWS: list[tuple[str, str, bool]] = []


class Payload:
    """Unpickling it touches ``marker``: the proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


def slimkit(*args: str, cwd: Path | None = None) -> tuple[int, list[str]]:
    """Exit code and stderr lines of one ``slimkit`` command."""
    proc = subprocess.run([sys.executable, "-m", "slimkit", *args], capture_output=True,
                          text=True, cwd=cwd)
    return proc.returncode, proc.stderr.strip().splitlines()


def probe(tried: str, check: Callable[[], tuple[str, bool]]) -> None:
    try:
        happened, ok = check()
    except Exception as err:  # a probe that crashed is a failed probe
        happened, ok = f"probe crashed: {type(err).__name__}: {err}", False
    ROWS.append((tried, happened, ok))
    print(f"{'pass' if ok else 'FAIL'}: {tried}: {happened}", flush=True)


def one_line(code: int, err: list[str], expected: int = 2, *words: str) -> tuple[str, bool]:
    """A refusal: ``expected`` exit code, one stderr line holding ``words``."""
    last = err[-1] if err else ""
    ok = code == expected and len(err) == 1 and all(w in last for w in words)
    return f"exit {code}, {len(err)} line(s): `{last[:150]}`", ok


def edit(folder: Path, change: Callable[[dict], None]) -> None:
    data = json.loads((folder / "run.json").read_text())
    change(data)
    (folder / "run.json").write_text(json.dumps(data))


def copy(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def hostile_run(base: Path, root: Path) -> tuple[Path, Path]:
    """A copy of ``base`` whose c0 is a format-1 model.pt with a pickle payload, its digest
    set as the sender would, and c1 dropped (as if killed): the folder and the marker."""
    run = copy(base, root / "hostile")
    marker = root / "ran"
    marker.unlink(missing_ok=True)
    pt = run / "candidates/c0/model.pt"
    torch.save({"format": "slimkit-model/1", "family": "mlp", "args": {"width": 16},
                "input_shape": [64], "num_classes": 10,
                "module_bytes": pickle.dumps(Payload(marker))}, pt)

    def change(data: dict) -> None:
        c0 = data["candidates"][0]
        c0["artifacts"]["torch"] = "candidates/c0/model.pt"
        c0["digests"]["torch"] = hashlib.sha256(pt.read_bytes()).hexdigest()
        data.update(candidates=[c0], status="running", selected=None, pareto=[])

    edit(run, change)
    return run, marker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, timeout: float = 5) -> tuple[int, float]:
    """Status and seconds of one GET (status 0: no answer within ``timeout``)."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            status = r.status
    except urllib.error.HTTPError as err:
        status = err.code
    except (TimeoutError, urllib.error.URLError, ConnectionError):
        status = 0
    return status, time.perf_counter() - start


class Server:
    """``slimkit serve`` in a subprocess (optionally with a file limit), until stopped."""

    def __init__(self, target: Path, *flags: str, files: int | None = None) -> None:
        self.port = free_port()

        def limit() -> None:
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

        self.log = target.parent / f"serve-{self.port}.log"  # a pipe nobody reads would block it
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slimkit", "serve", str(target), "--port",
                 str(self.port), *flags], stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=limit)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if get(self.port, "/healthz", 1)[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> str:
        """Stop the server; its log."""
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return self.log.read_text()


def send_big(port: int, size: int, results: list[int]) -> None:
    """POST a body of ``size`` bytes (as much of it as the server reads); the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     f"\r\nContent-Length: {size}\r\n\r\n".encode())
        try:
            chunk = b"[" + b"1.0," * (1 << 18)
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: it did not read the rest
        answer = sock.recv(4096)
    results.append(int(answer.split(b" ", 2)[1]) if answer else 0)


def probes_on_files(root: Path, base: Path, tune: Path) -> None:
    """Hostile and malformed files."""
    run, marker = hostile_run(base, root)
    probe("a model.pt with a pickle payload, `slimkit export RUN --candidate c0`",
          lambda: _no_code(marker, slimkit("export", str(run), "--candidate", "c0", "--to",
                                           str(root / "x.onnx")), "--trust-code"))
    probe("the same file, `slimkit profile RUN/candidates/c0/model.pt`",
          lambda: _no_code(marker, slimkit("profile", str(run / "candidates/c0/model.pt")),
                           "--trust-code"))
    probe("the same run resumed, `slimkit run recipe.yaml --out RUN`",
          lambda: _no_code(marker, slimkit("run", str(root / "run.yaml"), "--out", str(run),
                                           "--quiet"), "--trust-code"))
    probe("the same run, `slimkit serve RUN --candidate c0` (it serves the ONNX file)",
          lambda: _serves_onnx_only(run, marker))
    spec_run = copy(base, root / "spec-names-a-file")
    evil = root / "evil.py"
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
                    "def build(**kw):\n    return None\n")
    _name_family(spec_run / "candidates/c0/model.safetensors", f"{evil}:build")
    probe("a model.safetensors whose spec names `evil.py:build`, `slimkit export`",
          lambda: _no_code(marker, slimkit("export", str(spec_run), "--candidate", "c0",
                                           "--to", str(root / "x.onnx")), "--trust-code"))
    for field, value in (("candidates", "abc"), ("profile", None)):
        shape = copy(base, root / f"shape-{field}")
        if field == "candidates":
            edit(shape, lambda d: d.update(candidates="abc"))
        else:
            edit(shape, lambda d: d["candidates"][0].update(profile=None))
        probe(f"run.json with `{json.dumps({field: value})}`, `slimkit show RUN`",
              lambda shape=shape, field=field: one_line(*slimkit("show", str(shape)), 2,
                                                         "corrupt run manifest", field))
    truncated = copy(tune, root / "truncated-db")
    db = truncated / "study.db"
    db.write_bytes(db.read_bytes()[:4096])
    manifest = (truncated / "run.json").read_bytes()
    probe("a truncated study.db, `slimkit report RUN`",
          lambda: one_line(*slimkit("report", str(truncated)), 2, "study.db"))
    probe("the same, resuming the finished tune run",
          lambda: _unchanged(truncated / "run.json", manifest,
                             slimkit("run", str(root / "tune.yaml"), "--out", str(truncated),
                                     "--quiet")))
    (root / "exits.py").write_text("def load():\n    raise SystemExit(3)\n")
    probe("a data function raising SystemExit, `slimkit baseline --data exits.py:load`",
          lambda: one_line(*slimkit("baseline", "--data", f"{root / 'exits.py'}:load",
                                    "--model", "mlp", "--out", str(root / "exits-run"),
                                    "--quiet"), 2, "SystemExit"))


def _no_code(marker: Path, result: tuple[int, list[str]], *words: str) -> tuple[str, bool]:
    happened, ok = one_line(*result, 2, *words)
    ran = marker.exists()
    return f"{happened}; marker file {'WRITTEN' if ran else 'absent'}", ok and not ran


def _serves_onnx_only(run: Path, marker: Path) -> tuple[str, bool]:
    server = Server(run, "--candidate", "c0")
    try:
        status, _ = get(server.port, "/v1/metadata")
    finally:
        server.stop()
    return (f"metadata {status}; marker file {'WRITTEN' if marker.exists() else 'absent'}",
            status == 200 and not marker.exists())


def _name_family(path: Path, family: str) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    spec = json.loads(meta["spec"])
    spec["family"] = family
    save_file(tensors, str(path), metadata={**meta, "spec": json.dumps(spec)})


def _unchanged(path: Path, before: bytes, result: tuple[int, list[str]]) -> tuple[str, bool]:
    happened, ok = one_line(*result, 2, "study.db")
    same = path.read_bytes() == before
    return f"{happened}; run.json {'unchanged' if same else 'REWRITTEN'}", ok and same


def probes_on_writers(root: Path) -> None:
    """Two writers on one folder."""
    out = root / "two-writers"
    shutil.rmtree(out, ignore_errors=True)
    first = subprocess.Popen([sys.executable, "-m", "slimkit", "run", str(root / "slow.yaml"),
                              "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (out / ".slimkit.writer").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    def refused(*args: str) -> tuple[str, bool]:
        happened, ok = one_line(*slimkit(*args), 2, f"pid {first.pid}")
        live = first.poll() is None
        return f"{happened}; the first still running: {live}", ok and live

    probe("a second `slimkit run` on a live run's --out",
          lambda: refused("run", str(root / "slow.yaml"), "--out", str(out), "--quiet"))
    probe("`slimkit run --restart` (another recipe) from another process on the live run",
          lambda: refused("run", str(root / "run.yaml"), "--out", str(out), "--restart",
                          "--quiet"))
    code = first.wait()
    probe("the first writer, after both refusals",
          lambda: (f"exit {code}, {len(json.loads((out / 'run.json').read_text())['candidates'])}"
                   f" candidates", code == 0))


def probes_on_server(root: Path, base: Path) -> None:
    """Big bodies and slow clients against a real server."""
    server = Server(base)
    try:
        before = server.rss_mb()
        statuses: list[int] = []
        threads = [threading.Thread(target=send_big, args=(server.port, 50_000_000, statuses))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        grown = server.rss_mb() - before
        probe("four 50 MB bodies at once to /v1/predict",
              lambda: (f"statuses {sorted(statuses)}, server RSS {before:.0f} -> "
                       f"{before + grown:.0f} MB", statuses == [413] * 4 and grown < 20))
    finally:
        server.stop()
    server = Server(base, "--timeout", "3", files=300)
    try:
        socks = []
        for i in range(400):
            try:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                             b"\r\n\r\n[1," if i % 2 else b"POST /v1/pre")
                socks.append(sock)
            except OSError:
                pass
        health = []
        end = time.monotonic() + 8
        while time.monotonic() < end:
            health.append(get(server.port, "/healthz", 5))
            time.sleep(0.2)
        after = get(server.port, "/healthz", 5)[0]
        for sock in socks:
            sock.close()
    finally:
        log = server.stop()
    worst = max(seconds for _, seconds in health)
    answered = sum(code in (200, 503) for code, _ in health)
    refused = log.count("Too many open files")
    probe("400 half-sent requests, server file limit 300, `--timeout 3`, /healthz every 0.2 s",
          lambda: (f"{answered}/{len(health)} /healthz answered (200 or 503, slowest "
                   f"{worst:.2f} s), 200 after; accept() hit the file limit {refused} times "
                   f"and recovered", answered == len(health) and worst < 2 and after == 200))


def probes_small(root: Path, base: Path) -> None:
    """The smaller points."""
    started = time.perf_counter()
    result = slimkit("run", str(root / "run.yaml"), "--out", str(root / "storage-run"),
                     "--storage", "bogus://nowhere", "--quiet")
    took = time.perf_counter() - started
    probe("`--storage bogus://nowhere` on a new run",
          lambda: (f"{one_line(*result, 2, 'bogus://')[0]} after {took:.1f} s; run folder "
                   f"{'created' if (root / 'storage-run').exists() else 'not created'}",
                   one_line(*result, 2, "bogus://")[1] and not (root / "storage-run").exists()))
    corrupt = copy(base, root / "corrupt-onnx")
    onnx = corrupt / "candidates/c1/model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"corrupted!")
    edit(corrupt, lambda d: d.update(status="running"))
    code, err = slimkit("run", str(root / "run.yaml"), "--out", str(corrupt), "--quiet")
    remade = not onnx.read_bytes().endswith(b"corrupted!")
    probe("c1's model.onnx corrupted, then resume",
          lambda: (f"exit {code}: `{next((e for e in err if 'changed' in e), '')}`; remade: "
                   f"{remade}", code == 0 and remade))
    for target in ("/etc/passwd", "../../other/model.onnx"):
        folder = copy(base, root / "outside")
        edit(folder, lambda d, t=target: d["candidates"][1]["artifacts"].update(onnx=t))
        probe(f"run.json artifact `{target}`, `slimkit serve RUN`",
              lambda folder=folder: one_line(*slimkit("serve", str(folder)), 2,
                                             "outside the run folder"))
    bad_id = copy(base, root / "bad-id")
    edit(bad_id, lambda d: d.update(selected="c9"))
    probe("run.json `selected: c9` (no such candidate), `slimkit serve RUN`",
          lambda: one_line(*slimkit("serve", str(bad_id)), 2, "c9"))
    stale = base / "candidates" / ".model.onnx.x1y2.tmp"
    stale.write_text("half written by a killed process")
    slimkit("run", str(root / "run.yaml"), "--out", str(base), "--quiet")  # a finished run
    probe("a stale `.model.onnx.*.tmp` left by a kill, then the next command that writes",
          lambda: ("removed" if not stale.exists() else "still there", not stale.exists()))
    umask = os.umask(0)
    os.umask(umask)
    mode = (base / "run.json").stat().st_mode & 0o777
    probe(f"file modes under umask {umask:04o}",
          lambda: (f"run.json {mode:04o}", mode == 0o666 & ~umask))
    probe("`slimkit export RUN --to /nonexistent/dir/x.onnx`",
          lambda: (one_line(*slimkit("export", str(base), "--to", "/nonexistent/dir/x.onnx"),
                            2, "does not exist")[0],
                   not Path("/nonexistent").exists()))
    probe("a folder given as the recipe, `slimkit run FOLDER`",
          lambda: one_line(*slimkit("run", str(root)), 2, "is a folder"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/.probes")
    args = parser.parse_args()
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("run.yaml", RUN), ("tune.yaml", TUNE), ("slow.yaml", SLOW)):
        (root / name).write_text(text)
    base, tune = root / "base", root / "tune"
    for folder, recipe in ((base, "run.yaml"), (tune, "tune.yaml")):
        if not (folder / "run.json").exists():
            code, err = slimkit("run", str(root / recipe), "--out", str(folder), "--quiet")
            if code:
                raise SystemExit("\n".join(err))
    probes_on_files(root, base, tune)
    probes_on_writers(root)
    probes_on_server(root, base)
    probes_small(root, base)
    print("\n| what was tried | what happened | verdict |\n| --- | --- | --- |")
    for tried, happened, ok in ROWS:
        print(f"| {tried} | {happened.replace('|', '/')} | {'pass' if ok else 'FAIL'} |")
    print(f"\n{sum(ok for *_, ok in ROWS)}/{len(ROWS)} pass")


if __name__ == "__main__":
    main()
