"""The house's rules, read from the source with `ast`: imports point down (app → indexer → training), no two
modules import each other (directly or round a loop), and no file or function outgrows one job."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"training": 0, "indexer": 1, "app": 2}
MAX_FILE_LINES = 260  # the aim is ~250; a file past this has more than one job
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, ast.Module]:
    return {f"{f.parent.name}.{f.stem}": ast.parse(f.read_text()) for pkg in FLOORS
            for f in sorted((ROOT / pkg).glob("*.py"))}


def _imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The project's modules that `tree` imports, at module level or inside a function."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n in known and n.split(".")[0] in FLOORS}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules) | set(FLOORS)
    return {m: _imports(t, known) - {m, m.split(".")[0]} for m, t in modules.items()}


def test_imports_only_point_down_the_floors():
    upward = [(m, n) for m, names in _graph().items() for n in names
              if FLOORS[n.split(".")[0]] > FLOORS[m.split(".")[0]]]
    assert upward == []


def test_no_module_imports_itself_round_a_loop():
    graph = _graph()
    cycles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                cycles.append(path[path.index(n):] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_files_and_functions_keep_to_one_job():
    long_files, long_functions = [], []
    for pkg in FLOORS:
        for f in sorted((ROOT / pkg).glob("*.py")):
            text = f.read_text()
            if len(text.splitlines()) > MAX_FILE_LINES:
                long_files.append(f"{pkg}/{f.name}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long_functions.append(f"{pkg}/{f.name}:{node.name}: {length} lines")
    assert long_files == [] and long_functions == []
