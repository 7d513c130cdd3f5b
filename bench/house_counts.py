"""The house's counts (issue 26): functions with more than 6 parameters, the longest
functions, modules sharing a stem, README lines. Reads the tree as text (ast), runs nothing.

    .venv/bin/python bench/house_counts.py [checkout]   # default: this checkout
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path


def functions(root: Path):
    """(module path, function node) of every function of the package."""
    for p in sorted((root / "artprobe").rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
                yield p.relative_to(root), n


def n_params(fn) -> int:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return len([n for n in names if n not in ("self", "cls")])


def main(root: Path) -> None:
    fns = list(functions(root))
    wide = sorted(((n_params(f), f"{p}:{f.name}") for p, f in fns), reverse=True)
    wide = [w for w in wide if w[0] > 6]
    long = sorted(((f.end_lineno - f.lineno + 1, f"{p}:{f.name}") for p, f in fns), reverse=True)
    stems = defaultdict(list)
    for p in (root / "artprobe").rglob("*.py"):
        if p.name != "__init__.py":
            stems[p.stem].append(str(p.relative_to(root)))
    print(f"functions with > 6 parameters: {len(wide)}" + (f" (max {wide[0][0]})" if wide else ""))
    for n, name in wide:
        print(f"  {n:3d}  {name}")
    print("longest functions (lines):")
    for n, name in long[:5]:
        print(f"  {n:3d}  {name}")
    shared = {k: v for k, v in stems.items() if len(v) > 1}
    print(f"modules sharing a stem: {len(shared)} {shared or ''}")
    print(f"README lines: {len((root / 'README.md').read_text().splitlines())}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
