"""The package layout: the import graph of gan_jax's modules has no cycle, and models/ holds Flax
modules only (no gan_jax.models module imports gan_jax.tasks)."""

import ast
from pathlib import Path

import gan_jax

ROOT = Path(gan_jax.__file__).parent


def module_names() -> dict[str, Path]:
    """'gan_jax.data.sources' -> its file, for every module under gan_jax/."""
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The gan_jax modules that module `name` imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            # `from gan_jax import evaluate` imports gan_jax.evaluate; `from gan_jax.x import f`, x
            found.update(submodules or {base})
    return found & modules - {name}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports(name, path, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle [a, b, ..., a] of `graph`, or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph[node]):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if cycle := visit(node):
            return cycle
    return None


def test_find_cycle_on_a_known_graph():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_function_level_and_from_imports():
    graph = import_graph()
    assert "gan_jax.data.sources" in graph["gan_jax.train"]   # from gan_jax.data.sources import ..
    assert "gan_jax.run" in graph["gan_jax.sample"]            # inside sample.main
    assert "gan_jax.parallel" in graph["gan_jax.train_step"]   # from gan_jax import parallel


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_models_do_not_import_tasks():
    graph = import_graph()
    offending = {name: sorted(t for t in targets if t.startswith("gan_jax.tasks"))
                 for name, targets in graph.items() if name.startswith("gan_jax.models")}
    assert {name: t for name, t in offending.items() if t} == {}


def test_every_model_has_a_task_and_a_config_check():
    from gan_jax.models import MODEL_CHECKS, MODELS
    from gan_jax.tasks import TASKS

    assert set(TASKS) == set(MODELS) == set(MODEL_CHECKS)
