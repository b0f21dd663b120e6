"""`tinylm bench tokenizer`: byte-level BPE training and encoding speed, and their peak memory.

The text is one every Python installation has: the embedded corpus, then the standard
library's Python sources in path order, up to 5 MB (1 MB with --quick). Each step runs in its
own process, so its peak memory (the maximum resident set size) is its own; "added" is that peak
less the process's size just before the step (the interpreter, and the text where it is read):

    train    ByteBPETokenizer.train(text, 10,000) (2,000 with --quick), GPT-2's pattern
    encode   tokenizer.encode(text): the ids of the whole text, in one list
    stream   tokenizer.encode_iterable(open(file)): the ids line by line, counted, none kept

With Hugging Face's `tokenizers` installed (Rust), its byte-level BPE trainer on the same text
and vocabulary size is timed too, as a reference.
"""
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

from .processes import python_module


def bench_text(size):
    """At least `size` bytes of UTF-8 text: the embedded corpus, then the standard library's
    .py files (sorted by path; tests and site-packages left out), whole files, until the size
    is reached."""
    from .data import default_corpus_text

    parts = [default_corpus_text()]
    total = len(parts[0].encode("utf-8"))
    stdlib = sysconfig.get_paths()["stdlib"]
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "test", "tests", "idle_test"))
        for name in sorted(files):
            if total >= size:
                return "".join(parts)
            if name.endswith(".py"):
                with open(os.path.join(root, name), "rb") as f:
                    text = f.read().decode("utf-8", errors="replace")
                parts.append(text)
                total += len(text.encode("utf-8"))
    if total < size:
        raise RuntimeError(f"bench tokenizer: the standard library at {stdlib} has only {total:,} bytes of text")
    return "".join(parts)


def _peak_mb():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


# --- the steps, each in its own process ------------------------------------------------------
def _train(text_path, vocab_size, tokenizer_path):
    from .data import ByteBPETokenizer

    text = _read(text_path)
    before = _peak_mb()
    start = time.perf_counter()
    tokenizer = ByteBPETokenizer.train(text, vocab_size)
    seconds = time.perf_counter() - start
    tokenizer.save(tokenizer_path)
    return {"seconds": seconds, "vocab_size": tokenizer.vocab_size, "peak_mb": _peak_mb(),
            "added_mb": _peak_mb() - before}


def _encode(text_path, tokenizer_path):
    from .data import load_tokenizer

    tokenizer, text = load_tokenizer(tokenizer_path), _read(text_path)
    before = _peak_mb()
    start = time.perf_counter()
    ids = tokenizer.encode(text)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": len(ids), "peak_mb": _peak_mb(), "added_mb": _peak_mb() - before}


def _stream(text_path, tokenizer_path):
    from .data import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_path)
    before = _peak_mb()
    start = time.perf_counter()
    with open(text_path, encoding="utf-8", newline="") as f:
        tokens = sum(1 for _ in tokenizer.encode_iterable(f))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tokens": tokens, "peak_mb": _peak_mb(), "added_mb": _peak_mb() - before}


def _hf_train(text_path, vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    before = _peak_mb()
    start = time.perf_counter()
    tokenizer.train([text_path], trainer)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "vocab_size": tokenizer.get_vocab_size(), "peak_mb": _peak_mb(),
            "added_mb": _peak_mb() - before}


WORKERS = {"train": _train, "encode": _encode, "stream": _stream, "hf_train": _hf_train}


def _run(name, *args):
    run = subprocess.run([*python_module("tinylm.bench_tokenizer"), name, *map(str, args)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"bench tokenizer: the {name} step failed: {last}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _hf_available():
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def bench_tokenizer(quick=False, file=None):
    """Run the steps, print a table and return {step: result}."""
    from .table import format_table

    file = file or sys.stdout
    size, vocab_size = (1_000_000, 2_000) if quick else (5_000_000, 10_000)
    text = bench_text(size)
    mb = len(text.encode("utf-8")) / 1e6
    with tempfile.TemporaryDirectory() as folder:
        text_path, tokenizer_path = os.path.join(folder, "text.txt"), os.path.join(folder, "bpe.json")
        with open(text_path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        results = {"train": _run("train", text_path, vocab_size, tokenizer_path),
                   "encode": _run("encode", text_path, tokenizer_path),
                   "stream": _run("stream", text_path, tokenizer_path)}
        if _hf_available():
            results["hf_train"] = _run("hf_train", text_path, vocab_size)
    if results["encode"]["tokens"] != results["stream"]["tokens"]:
        raise RuntimeError("bench tokenizer: encode and encode_iterable gave different numbers of tokens")
    tokens = results["encode"]["tokens"]
    rows = [["train (tinylm)", f"{results['train']['seconds']:.2f}", f"{mb / results['train']['seconds']:.2f} MB/s"]]
    if "hf_train" in results:
        rows.append(["train (HF tokenizers, Rust)", f"{results['hf_train']['seconds']:.2f}",
                     f"{mb / results['hf_train']['seconds']:.2f} MB/s"])
    rows += [["encode (whole text)", f"{results['encode']['seconds']:.2f}",
              f"{tokens / results['encode']['seconds']:,.0f} tokens/s"],
             ["encode_iterable (lines)", f"{results['stream']['seconds']:.2f}",
              f"{tokens / results['stream']['seconds']:,.0f} tokens/s"]]
    for row, step in zip(rows, [s for s in ("train", "hf_train", "encode", "stream") if s in results]):
        row += [f"{results[step]['peak_mb']:.0f}", f"{results[step]['added_mb']:.0f}"]
    print(f"byte-level BPE, vocabulary {vocab_size:,}, on {mb:.2f} MB of text ({tokens:,} tokens): the embedded "
          "corpus and the standard library's sources" + ("" if "hf_train" in results else
                                                        "; HF tokenizers not installed"), file=file)
    print(format_table(["step", "seconds", "speed", "peak RSS (MB)", "added (MB)"], rows), file=file)
    return results


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    print(json.dumps(WORKERS[name](*[int(a) if a.isdigit() else a for a in args])))
