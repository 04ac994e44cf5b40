"""Micro-benchmark of jute record decode/encode (the per-request hot path).

    python -m benchmarks.records_bench [module ...]

Each argument is a module exposing the record classes (default `controller.zk.records`); a
file path is loaded as a module too, so an old copy of records.py can be compared side by
side in the same run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import timeit
from types import ModuleType
from typing import Any

from controller.zk.jute import Reader, Writer


def _load(name: str) -> ModuleType:
    if name.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"_bench_{abs(hash(name))}", name)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def _encode(record: object) -> bytes:
    w = Writer()
    record.write(w)  # type: ignore[attr-defined]
    return w.getvalue()


def cases(m: ModuleType) -> dict[str, tuple[Any, object]]:
    acl = [m.ACL(31, m.Id("world", "anyone"))]
    stat = m.Stat(1, 2, 1700000000000, 1700000000001, 3, 4, 0, 0, 5, 0, 6)
    return {
        "CreateRequest": (m.CreateRequest, m.CreateRequest("/app/node-0001", b"x" * 64, acl, 0)),
        "SetDataRequest": (m.SetDataRequest, m.SetDataRequest("/app/node-0001", b"y" * 64, 3)),
        "GetDataResponse": (m.GetDataResponse, m.GetDataResponse(b"z" * 64, stat)),
        "Multi(3 ops)": (
            m.MultiRequest,
            m.MultiRequest(
                [
                    (1, m.CreateRequest("/app/a", b"1", acl, 0)),
                    (5, m.SetDataRequest("/app/b", b"2", -1)),
                    (13, m.CheckVersionRequest("/app/c", 7)),
                ]
            ),
        ),
        "ReplyHeader": (m.ReplyHeader, m.ReplyHeader(5, 1234567, 0)),
    }


def bench(
    modules: list[ModuleType], number: int = 20000, repeat: int = 7
) -> list[dict[str, tuple[float, float]]]:
    """Best-of-`repeat` ns per decode and encode; modules alternate within every round so
    that load from other processes hits them alike."""
    out: list[dict[str, tuple[float, float]]] = [{} for _ in modules]
    all_cases = [cases(m) for m in modules]
    for name in all_cases[0]:
        best = [[float("inf"), float("inf")] for _ in modules]
        prepared = []
        for module_cases in all_cases:
            cls, record = module_cases[name]
            data = _encode(record)
            assert cls.read(Reader(data)) == record, name
            prepared.append((cls, record, data))
        for _ in range(repeat):
            for i, (cls, record, data) in enumerate(prepared):
                dec = timeit.timeit(
                    lambda c=cls, d=data: c.read(Reader(d)),  # type: ignore[misc]
                    number=number,
                )
                enc = timeit.timeit(lambda rec=record: _encode(rec), number=number)  # type: ignore[misc]
                best[i][0] = min(best[i][0], dec / number * 1e9)
                best[i][1] = min(best[i][1], enc / number * 1e9)
        for i in range(len(modules)):
            out[i][name] = (best[i][0], best[i][1])
    return out


def main(argv: list[str]) -> None:
    names = argv or ["controller.zk.records"]
    results = bench([_load(name) for name in names])
    print(f"{'record':<18}" + "".join(f"{'dec ns':>10}{'enc ns':>10}  " for _ in names))
    for case in results[0]:
        row = f"{case:<18}"
        for result in results:
            dec, enc = result[case]
            row += f"{dec:>10.0f}{enc:>10.0f}  "
        print(row)
    print("columns:", ", ".join(names))


if __name__ == "__main__":
    main(sys.argv[1:])
