"""Plain-text tables, for the reports of the CLI, the checks, the lessons and the benchmarks.

Widths are display widths, so Chinese text lines up: an East Asian wide character takes two
columns of a terminal, a combining mark none."""
import unicodedata


def display_width(text):
    """The columns `text` takes in a terminal (wide and full-width characters count 2)."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in str(text))


def pad(text, width):
    """`text` followed by spaces up to `width` display columns."""
    text = str(text)
    return text + " " * max(0, width - display_width(text))


def wrap(text, width):
    """The words of `text` in lines of at most `width` display columns (a longer word gets a
    line of its own)."""
    lines = []
    for word in str(text).split():
        if lines and display_width(f"{lines[-1]} {word}") <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def format_table(head, rows):
    """Plain-text columns, left-aligned by display width, a rule under the heading."""
    widths = [max(display_width(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(pad(v, w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])
