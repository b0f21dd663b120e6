"""Config dataclasses that describe themselves: each field carries its help text, its choices
and its range in the field's metadata, written once, where the field is declared.

    @dataclass
    class LMConfig(TrainConfig):
        n_layer: int = option(4, "transformer blocks (or recurrent layers)", min=1)

The command line builds one --flag per field from that metadata (tinylm.cli), and `validate`
checks a config against it before anything is allocated or written, so a bad value is one
clear line naming the option and what was expected.
"""
import dataclasses
import math


def option(default, help, *, choices=None, min=None, max=None, below=None):
    """A dataclass field with its help text and the values it accepts:
    choices (a list), min <= value <= max, value < below. None (when the default is None)
    is always accepted: it means "decided elsewhere" (the help says by what)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "min": min, "max": max,
                                                       "below": below})


def flag(name):
    """The command-line spelling of a field: n_embd -> --n-embd."""
    return "--" + name.replace("_", "-")


def validate(cfg):
    """Check every field of `cfg` against its metadata, then the config's own `check()` (rules
    between fields), if it has one; raise ValueError naming the first bad one."""
    for f in dataclasses.fields(cfg):
        value, meta = getattr(cfg, f.name), f.metadata
        if not meta or value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{flag(f.name)} must be a finite number, got {value}")
        if meta["choices"] is not None and value not in meta["choices"]:
            raise ValueError(f"{flag(f.name)} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        if meta["min"] is not None and value < meta["min"]:
            raise ValueError(f"{flag(f.name)} must be at least {meta['min']}, got {value}")
        if meta["max"] is not None and value > meta["max"]:
            raise ValueError(f"{flag(f.name)} must be at most {meta['max']}, got {value}")
        if meta["below"] is not None and value >= meta["below"]:
            raise ValueError(f"{flag(f.name)} must be below {meta['below']}, got {value}")
    if hasattr(cfg, "check"):
        cfg.check()
    return cfg
