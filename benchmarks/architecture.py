"""The architecture's numbers, measured from the source: what issue 34 asks to bring down.

    .venv/bin/python benchmarks/architecture.py [--root CHECKOUT] [--out benchmarks/results/architecture.json]

- table-name literals outside the catalogue: string constants in the package that name a table folder;
- `run_date=` spellings outside the catalogue;
- function-level imports of the project's own modules (hidden dependencies);
- import loops between folders (a folder = a package directory; function-level imports count too);
- top-level packages the wheel installs; the largest function.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("profile_features", "student", "spark_jobs", "rankers")  # rankers: older checkouts
CATALOGUE = "profile_features/catalogue.py"


def sources(root: Path) -> dict[str, ast.Module]:
    found = {}
    for top in PROJECT:
        for path in sorted((root / top).rglob("*.py")):
            found[str(path.relative_to(root))] = ast.parse(path.read_text(), str(path))
    return found


def module_name(path: str, mapped_folders: dict[str, str] | None = None) -> str:
    """The import name of the file at `path`; `mapped_folders` (folder -> package, setup.cfg `package_dir`):
    student/ installs as profile_features.student."""
    parts = path[:-3].split("/")
    mapped = (mapped_folders or {}).get(parts[0])
    if mapped:
        parts = mapped.split(".") + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_dir(root: Path) -> dict[str, str]:
    """folder -> the package it installs as (an older checkout without package_dir: none)."""
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    lines = config.get("options", "package_dir", fallback="").splitlines()
    return {b.strip(): a.strip() for a, _, b in (line.partition("=") for line in lines if "=" in line)}


def table_names(root: Path) -> set[str]:
    sys.path.insert(0, str(root))
    try:
        from profile_features import catalogue

        return {t.name for t in catalogue.TABLES}
    except ImportError:  # before the catalogue existed: the folders the jobs wrote then
        return set(
            "validated/items validated/interactions rejects histories user_stats item_stats profiles profile_cache "
            "profile_dead_letters profile_refresh_rejects user_profile_embeddings item_text_embeddings encoders "
            "transforms user_semantic item_semantic student user_student item_student runs _staging".split()
        )
    finally:
        sys.path.pop(0)


def table_literals(trees: dict[str, ast.Module], names: set[str]) -> list[str]:
    """`path:line value` for each string constant equal to a table name or containing `<name>/run_date`."""
    hits = []
    for path, tree in trees.items():
        if path == CATALOGUE:
            continue
        docstrings = {id(n.body[0].value) for n in ast.walk(tree) if _has_docstring(n)}
        keys = _key_constants(tree)  # summary["profiles"], {"histories": ...}: dictionary keys, not paths
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | keys:
                value = node.value
                if value in names or any(value.startswith(f"{n}/") for n in names):
                    hits.append(f"{path}:{node.lineno} {value!r}")
    return hits


def _key_constants(tree: ast.Module) -> set[int]:
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys |= {id(k) for k in node.keys if k is not None}
        elif isinstance(node, ast.Subscript):
            keys.add(id(node.slice))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("get", "pop", "setdefault"):
            keys |= {id(a) for a in node.args[:1]}
    return keys


def run_date_spellings(trees: dict[str, ast.Module]) -> list[str]:
    hits = []
    for path, tree in trees.items():
        if path == CATALOGUE:
            continue
        docstrings = {id(n.body[0].value) for n in ast.walk(tree) if _has_docstring(n)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "run_date=" in node.value:
                hits.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.JoinedStr) and any(
                isinstance(v, ast.Constant) and "run_date=" in str(v.value) for v in node.values
            ):
                hits.append(f"{path}:{node.lineno}")
    return sorted(set(hits))


def _has_docstring(node) -> bool:
    return (
        isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    )


def imports(trees: dict[str, ast.Module], root: Path = ROOT) -> list[tuple[str, str, bool]]:
    """(importing module, imported project module, inside a function?) for every project import."""
    found = []
    mapped_folders = _package_dir(root)
    for path, tree in trees.items():
        here = module_name(path, mapped_folders)
        package = here if path.endswith("__init__.py") else here.rpartition(".")[0]
        for node, in_function in _walk(tree, False):
            for target in _targets(node, package):
                if target.split(".")[0] in PROJECT:
                    found.append((here, target, in_function))
    return found


def _walk(node, in_function):
    for child in ast.iter_child_nodes(node):
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        yield from _walk(child, inner)


def _targets(node, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([base] if base else []))
    return [base]


def folder(module: str) -> str:
    """The package directory a module lives in: `profile_features.spark.io` -> `profile_features.spark`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "profile_features" and len(parts) > 2 else parts[0]


def loops(edges: list[tuple[str, str, bool]], key) -> list[list[str]]:
    """Import cycles between the groups `key` puts modules in (components with more than one group).
    The package root's own modules (config, storage, ...) are the shared base, not a folder."""
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        a, b = key(source), key(target)
        if a != b and "profile_features" not in (a, b):
            graph.setdefault(a, set()).add(b)
    return sorted(sorted(c) for c in _components(graph) if len(c) > 1)


def package_loops(edges: list[tuple[str, str, bool]]) -> list[list[str]]:
    """Cycles between the top-level packages (profile_features, student, spark_jobs)."""
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        a, b = source.split(".")[0], target.split(".")[0]
        if a != b:
            graph.setdefault(a, set()).add(b)
    return sorted(sorted(c) for c in _components(graph) if len(c) > 1)


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on.discard(w)
                component.add(w)
                if w == v:
                    break
            out.append(component)

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def installed_top_level(root: Path) -> list[str]:
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    include = config.get("options.packages.find", "include", fallback="").split()
    names = {name.split(".")[0] for name in include}
    package_dir = config.get("options", "package_dir", fallback="")
    names |= {line.split("=")[0].strip().split(".")[0] for line in package_dir.splitlines() if "=" in line}
    return sorted(names)


def largest_function(trees: dict[str, ast.Module]) -> tuple[str, int]:
    best = ("", 0)
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > best[1]:
                    best = (f"{path}:{node.lineno} {node.name}", length)
    return best


def measure(root: Path) -> dict:
    trees = sources(root)
    edges = imports(trees, root)
    own_function_level = [e for e in edges if e[2]]
    lines = sum(len(ast.unparse(t).splitlines()) for t in trees.values())
    where, length = largest_function(trees)
    literals = table_literals(trees, table_names(root))
    return {
        "files": len(trees),
        "table_name_literals_outside_catalogue": len(literals),
        "table_name_literal_files": len({h.split(":")[0] for h in literals}),
        "run_date_spellings_outside_catalogue": len(run_date_spellings(trees)),
        "function_level_project_imports": len(own_function_level),
        "function_level_imports_per_1k_lines": round(1000 * len(own_function_level) / max(lines, 1), 2),
        "folder_import_loops": loops(edges, folder),
        "package_import_loops": package_loops(edges),
        "installed_top_level_packages": installed_top_level(root),
        "largest_function": {"where": where, "lines": length},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    figures = measure(args.root.resolve())
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
