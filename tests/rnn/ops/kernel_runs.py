"""What the kernel tests ask of a graph: the op types it holds, and which
kernels ran while a function was called (rnn.kernel_info()'s counters)."""


def op_types(concrete):
    """Every op type in a concrete function's graph and its function library."""
    graph = concrete.graph
    types = {op.type for op in graph.get_operations()}
    for f in graph.as_graph_def().library.function:
        types.update(node.op for node in f.node_def)
    return types


def kernel_runs(library, ops, fn, *args):
    """``(fn(*args), runs)``: runs counts each op of ``ops`` (names in
    ``library``) that ran during the call, in the order given."""
    before = library.calls()
    result = fn(*args)
    after = library.calls()
    return result, tuple(after[op] - before[op] for op in ops)
