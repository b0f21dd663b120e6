"""Plain-text tables, for the reports of the CLI, the checks, the lessons and the benchmarks."""


def format_table(head, rows):
    """Plain-text columns, left-aligned, a rule under the heading."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])
