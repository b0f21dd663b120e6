"""The `tinylm` command (also `python -m tinylm`).

    tinylm train                      train a small GPT on the text inside CPython, then sample
    tinylm sample --ckpt out/best.ckpt --prompt "The "
    tinylm eval --ckpt out/best.ckpt --data FILE
    tinylm bench kernels | train | ddp
    tinylm demo

Bad arguments or input: one line on stderr and exit status 2.
"""
import argparse
import dataclasses
import math
import os
import sys

from .config import flag, validate

def _add_config_args(parser, config_class, skip=()):
    """One --flag per field of a config dataclass, its help, type and choices from the field's
    metadata (tinylm.config.option); the fields in `skip` are left to the command."""
    for f in dataclasses.fields(config_class):
        if f.name in skip:
            continue
        helps = f.metadata["help"]
        if isinstance(f.default, bool):
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=f.default, help=helps)
            continue
        kind = {"float": float, "int": int}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
        default = "" if f.default is None else f" (default {f.default})"
        parser.add_argument(flag(f.name), type=kind, default=f.default, choices=f.metadata["choices"],
                            help=helps + default)


def _config_from(args, config_class, **given):
    """The config of the parsed flags, validated (tinylm.config.validate) before anything runs."""
    return validate(config_class(**{f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
                                    if f.name not in given}, **given))


def _add_generation_args(parser):
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=True,
                        help="sample (default) or greedy decoding (--no-do-sample)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--num-return-sequences", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)


def _generation_kwargs(args):
    return {"max_new_tokens": args.max_new_tokens, "do_sample": args.do_sample, "temperature": args.temperature,
            "top_k": args.top_k, "top_p": args.top_p, "num_return_sequences": args.num_return_sequences,
            "seed": args.seed}


def _print_samples(model, prompt, kwargs):
    from .generate import generate

    from .data.tokenizers import UNK

    tokenizer = model.tokenizer
    ids = tokenizer.input_ids(prompt)  # with the beginning-of-sequence token first where the model expects one
    if not ids:
        raise ValueError("the prompt is empty and the tokenizer has no beginning-of-sequence token to start from: "
                         "give --prompt some text (the default is a newline)")
    if UNK not in prompt and UNK in tokenizer.decode(ids):
        unknown = sorted({c for c in prompt if UNK in tokenizer.decode(tokenizer.encode(c))}) \
            if tokenizer.kind == "char" else []
        what = f"the characters {''.join(unknown)!r}" if unknown else "words"
        raise ValueError(f"the prompt has {what} the tokenizer never saw in training (they would become {UNK!r}); "
                         "use text like the training data")
    rows = generate(model, ids, **kwargs)
    for i, row in enumerate(rows):
        if len(rows) > 1:
            print(f"--- sample {i + 1}")
        print(tokenizer.decode(row[1 if tokenizer.add_bos else 0:].tolist()))  # the text: no <s> in front


def _train(args):
    from .tasks.lm import LanguageModeling, LMConfig
    from .train import Trainer

    cfg = _config_from(args, LMConfig)
    summary = Trainer(LanguageModeling(cfg)).run()
    print(f"best val loss {summary['best_metrics']['val_loss']:.4f}; checkpoints in {cfg.out}/ (best.ckpt, last.ckpt)"
          if summary["best_metrics"] else f"checkpoint in {cfg.out}/last.ckpt")
    model = _load(summary["best"] if summary["evals"] else summary["last"])
    print("samples:")
    _print_samples(model, "\n", {"max_new_tokens": 300, "do_sample": True, "temperature": 0.8, "seed": cfg.seed})
    return 0


def _load(path):
    """The language model of a checkpoint (its tokenizer is model.tokenizer)."""
    from .checkpoint import load_model

    return load_model(path, kinds=("gpt", "llama", "lstm", "rnn"))[0]


def _pretrain(args):
    from .tasks.mlm import PretrainConfig, pretrain

    summary = pretrain(**dataclasses.asdict(_config_from(args, PretrainConfig)))
    print(f"best val loss {summary['best_metrics']['val_loss']:.4f}; checkpoints {summary['best']}, {summary['last']}")
    return 0


def _compress(args):
    from .compress import compress_checkpoint, format_report

    from .tasks.distill import DistillConfig

    settings = {}
    if args.distill_from is not None:
        settings = dataclasses.asdict(_config_from(args, DistillConfig, out=None))
        del settings["out"]
    rows = compress_checkpoint(args.ckpt, args.out, quantize=args.quantize, prune=args.prune, data=args.data,
                               distill_from=args.distill_from, log=print, **settings)
    print(format_report(rows))
    print(f"wrote {rows[-1]['file']}")
    return 0


def _sample(args):
    if args.pretrained is not None:
        from .models.pretrained import from_pretrained, pretrained_tokenizer

        model = from_pretrained(args.pretrained)
        model.tokenizer = pretrained_tokenizer(args.pretrained)  # if there is none: the reason, in one line
    else:
        model = _load(args.ckpt)
    _print_samples(model, args.prompt, _generation_kwargs(args))
    return 0


def _eval(args):
    from . import checkpoint
    from .data import load_text
    from .metrics import evaluate_loss

    if checkpoint.load(args.ckpt)[1].get("task", {}).get("kind") == "classify":
        return _eval_classifier(args)
    if args.metrics is not None:
        raise ValueError(f"--metrics is for a fine-tuned classifier; {args.ckpt} holds a language model "
                         "(its loss and perplexity are printed without it)")
    model = _load(args.ckpt)
    ids = model.tokenizer.input_ids(load_text(args.data))  # as the model reads a text: <s> first where it expects one
    loss, tokens = evaluate_loss(model, ids, args.batch_size)
    print(f"{args.data}: {tokens} tokens predicted, loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f}")
    return 0


METRICS = ("accuracy", "precision", "recall", "f1", "confusion")


def _eval_classifier(args):
    """A fine-tuned classifier on a labelled file: the metrics asked for (004.metrics)."""
    from .table import format_table
    from .data.labelled import load_labelled
    from .tasks.classify import load_classifier, predict
    from .metrics import accuracy, confusion_matrix, precision_recall_f1

    wanted = [m.strip() for m in (args.metrics or ",".join(METRICS)).split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}: expected some of {', '.join(METRICS)}")
    data = load_labelled(args.data)
    _, labelset = load_classifier(args.ckpt)
    labelset.encode(data.labels)  # an unknown label: one clear error before any prediction
    predicted = list(predict(args.ckpt, data.texts))
    scores = precision_recall_f1(predicted, data.labels, average=None, labels=labelset.names)
    macro = precision_recall_f1(predicted, data.labels, average="macro", labels=labelset.names)
    print(f"{args.data}: {len(data.labels)} examples")
    if "accuracy" in wanted:
        print(f"accuracy {accuracy(predicted, data.labels):.4f}")
    columns = [m for m in ("precision", "recall", "f1") if m in wanted]
    if columns:
        rows = [[name] + [f"{scores[name][m]:.4f}" for m in columns] + [scores[name]["support"]]
                for name in labelset.names]
        rows.append(["macro"] + [f"{macro[m]:.4f}" for m in columns] + [len(data.labels)])
        print(format_table(["label"] + columns + ["support"], rows))
    if "confusion" in wanted:
        matrix, labels = confusion_matrix(predicted, data.labels, labels=labelset.names)
        print("confusion matrix (rows: true label, columns: predicted)")
        print(format_table([""] + labels, [[name] + list(map(int, row)) for name, row in zip(labels, matrix)]))
    return 0


def _finetune(args):
    from .tasks.classify import FinetuneConfig, compare_methods, comparison_table, cross_validate, finetune

    cfg = _config_from(args, FinetuneConfig)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("ckpt", "data", "method", "out")}
    if args.compare:
        print(comparison_table(compare_methods(cfg.ckpt, cfg.data, out=cfg.out, **settings)))
    elif args.folds:
        result = cross_validate(cfg.ckpt, cfg.data, cfg.method, k=args.folds, out=cfg.out, **settings)
        print(f"{args.folds}-fold accuracy of {cfg.method}: {result['mean']:.3f} ± {result['std']:.3f}")
    else:
        result = finetune(cfg.ckpt, cfg.data, cfg.method, out=cfg.out, **settings)
        print(f"{cfg.method}: test accuracy {result['accuracy']:.3f}, {result['trainable']:,} trainable "
              f"parameters, {result['seconds']:.1f}s; the classifier is {cfg.out}/best.ckpt")
    return 0


def _demo(args):
    from .demo import run

    _, report = run(steps=args.steps, seed=args.seed)
    return 0 if report.passed else 1


def _gradcheck(args):
    from .check.layers import LAYERS, run

    return 0 if run(list(LAYERS) if args.layer == "all" else [args.layer]) else 1


def _bench(args):
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.device == "cuda" and args.what not in ("kernels", "train"):
        raise ValueError(f"bench {args.what} runs on the CPU only: --device cuda is for bench kernels and train")
    if args.what == "kernels":
        from .backend import cupy_or_none
        from .bench import bench_gpu_kernels, bench_kernels

        if args.device != "cuda":
            bench_kernels(quick=args.quick, json_path=args.json)
        if args.device == "cuda" or (args.device is None and cupy_or_none() is not None):
            if args.device is None:
                print()
            bench_gpu_kernels(quick=args.quick)
    elif args.what == "tokenizer":
        from .bench_tokenizer import bench_tokenizer

        bench_tokenizer(quick=args.quick)
    elif args.what == "ddp":
        from .bench_ddp import bench_ddp

        if args.processes < 2:
            raise ValueError(f"--processes must be at least 2, got {args.processes}")
        bench_ddp(nproc=args.processes, steps=args.steps, quick=args.quick, png=args.png, json_path=args.json)
    else:
        from .bench_train import bench_train

        bench_train(steps=args.steps, quick=args.quick, converge=args.converge, json_path=args.json, model=args.model,
                    device=args.device or "cpu")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (the usage only with --help), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_grading_limits(parser, whose=""):
    """--time-limit and --memory-limit, the grader's limits (tinylm grade, and the autograders of
    tinylm course build)."""
    from . import grading

    parser.add_argument("--time-limit", type=float, default=grading.TIME_LIMIT,
                        help=f"{whose}seconds per exercise (default {grading.TIME_LIMIT:g})")
    parser.add_argument("--memory-limit", type=float, default=grading.MEMORY_LIMIT,
                        help=f"{whose}MiB of address space for the process running the learner's code (default "
                        f"{grading.MEMORY_LIMIT:g}; Linux)")


def build_parser():
    parser = Parser(prog="tinylm", description="A from-scratch, readable deep-learning engine for language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="train a language model, then print samples",
                           description="Train a language model on a text file (default: the documentation "
                           "text inside CPython) and print samples. Defaults: nanoGPT's small CPU GPT.")
    from .tasks.lm import LMConfig

    _add_config_args(train, LMConfig)
    train.set_defaults(run=_train, config=LMConfig)

    from .tasks.mlm import PretrainConfig

    pre = sub.add_parser("pretrain", help="pretrain a BERT-style encoder (MLM + NSP) or a GPT (CLM)",
                         description="Pretrain on a text file (default: the documentation text inside CPython): "
                         "masked language modelling + next sentence prediction for a BERT-style encoder "
                         "(003.mlm, 003.nsp), or causal language modelling for a GPT.")
    _add_config_args(pre, PretrainConfig)
    pre.set_defaults(run=_pretrain, config=PretrainConfig)

    from .tasks.classify import FinetuneConfig

    fine = sub.add_parser("finetune", help="fine-tune a pretrained model for text classification",
                          description="Fine-tune a pretrained GPT, Llama or BERT-style checkpoint for classification "
                          "(003.finetune): feature extraction (head), full fine-tuning (full) or prompt tuning "
                          "(prompt); --compare runs all three and an LSTM classifier on one split.")
    fine.add_argument("--compare", action="store_true", help="all methods (and an LSTM) in one table")
    fine.add_argument("--folds", type=int, default=0, help="k-fold cross-validation of --method instead")
    _add_config_args(fine, FinetuneConfig)
    fine.set_defaults(run=_finetune, config=FinetuneConfig)

    comp = sub.add_parser("compress", help="quantize, prune and/or distill a checkpoint, with a report",
                          description="Post-training int8 quantization of Linear weights, global magnitude "
                          "pruning and knowledge distillation (001.compress); prints size, parameters, speed "
                          "and validation loss before and after.")
    comp.add_argument("--ckpt", required=True, help="a language-model checkpoint")
    comp.add_argument("--out", default=None, help="where to write (default CKPT.compressed.ckpt)")
    comp.add_argument("--quantize", choices=["int8"], default=None, help="quantize Linear weights")
    comp.add_argument("--prune", type=float, default=None, help="target sparsity in [0, 1), e.g. 0.5")
    comp.add_argument("--data", default=None, help="text for the validation loss (default: the embedded corpus)")
    comp.add_argument("--distill-from", default=None, help="a larger teacher checkpoint to distill from; the "
                      "distillation run's folder is OUT.distill (without OUT's extension)")
    from .tasks.distill import DistillConfig

    _add_config_args(comp.add_argument_group("distillation (with --distill-from)"), DistillConfig, skip=("out",))
    comp.set_defaults(run=_compress, config=DistillConfig)

    sample = sub.add_parser("sample", help="generate text from a checkpoint or a pretrained model folder",
                            description="Generate text from a checkpoint, or from a Hugging Face-format GPT-2 "
                            "or Llama folder on disk (Hugging Face generate keywords).")
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", help="checkpoint file (e.g. out/best.ckpt)")
    source.add_argument("--pretrained", metavar="DIR", help="a folder with config.json, model.safetensors or "
                        "pytorch_model.bin, and vocab.json + merges.txt, tokenizer.json or SentencePiece's "
                        "tokenizer.model (nothing is downloaded)")
    _add_generation_args(sample)
    sample.set_defaults(run=_sample)

    evaluate = sub.add_parser("eval", help="loss and perplexity of a checkpoint on a text file",
                              description="Mean cross-entropy (nats/token) and perplexity on a text file.")
    evaluate.add_argument("--ckpt", required=True, help="checkpoint file")
    evaluate.add_argument("--data", required=True, help="UTF-8 text file")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--metrics", default=None,
                          help="for a fine-tuned classifier and a labelled .csv/.jsonl file: some of "
                          f"{', '.join(METRICS)}, comma-separated (default all)")
    evaluate.set_defaults(run=_eval)

    demo = sub.add_parser("demo", help="fit a tiny character model, print its loss and a gradient check",
                          description="Fit a tiny character model on the text shipped with CPython, print "
                          "the loss going down, then a gradient check table.")
    demo.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)

    from . import lesson

    lessons = sub.add_parser("lesson", help="the lessons: list them or run one",
                             description="Lessons that follow the source articles formula by formula.")
    lesson_sub = lessons.add_subparsers(dest="action", metavar="ACTION", required=True)
    lesson_sub.add_parser("list", help="every lesson, its title and the formula ids it covers").set_defaults(
        run=lesson.main_list)
    run_lesson = lesson_sub.add_parser("run", help="run one lesson, its explanations printed between the results",
                                       description="Run a lesson cell by cell: its explanations as text, its "
                                       "results, its checks. A learner's copy (FILE.py) runs too: a failing "
                                       "check is shown and the run goes on (exit status 1 at the end).")
    run_lesson.add_argument("name", help="e.g. 01_tensors, 01 or tensors; or a lesson file, e.g. student/03_lstm.py")
    run_lesson.add_argument("--fast", action="store_true", help="smaller sizes (seconds, not a minute)")
    run_lesson.add_argument("--quiet", action="store_true", help="the results only, without the explanations")
    run_lesson.add_argument("--out", default=None, help="folder for the pictures and files, one subfolder per "
                            "lesson (default lesson_output: lesson 03's go to lesson_output/03/)")
    run_lesson.set_defaults(run=lesson.main_run)

    exercise = sub.add_parser("exercise", help="write a learner's copy of a lesson",
                              description="Write a copy of a lesson with its solution blocks replaced by "
                              "raise NotImplementedError(hint), for a learner to fill in.")
    exercise.add_argument("name", help="the lesson (see `tinylm lesson list`)")
    exercise.add_argument("--out", required=True, help="folder to write the copy into")
    exercise.add_argument("--force", action="store_true", help="overwrite an existing copy (your work in it is lost)")
    exercise.set_defaults(run=lesson.main_exercise)

    from . import course, grading

    grade = sub.add_parser("grade", help="grade a learner's copy of a lesson",
                           description="Grade the exercise functions of a learner's copy of a lesson (.py or "
                           ".ipynb) without running the file: they run in a separate process, with a time limit, "
                           "on the grader's own inputs, against the lesson's solutions. Prints each exercise's "
                           "points and every check with expected vs got. Exit status 0 only at full marks.")
    grade.add_argument("file", help="the learner's copy (written by `tinylm exercise` or `tinylm course build`)")
    grade.add_argument("--seed", type=int, default=None, help="the inputs' seed (default: a new one; the report "
                       "names it)")
    _add_grading_limits(grade)
    grade.set_defaults(run=grading.main_grade)

    hint = sub.add_parser("hint", help="a hint for a lesson's exercise, in three levels",
                          description="Hints for a lesson's exercises: levels 1 and 2 nudge, level 3 is the recipe.")
    hint.add_argument("lesson", help="the lesson (see `tinylm lesson list`)")
    hint.add_argument("exercise", nargs="?", default=None, help="one exercise (default: all of the lesson's)")
    hint.add_argument("--level", type=int, choices=(1, 2, 3), default=1, help="1 (default), 2 or 3 (the recipe)")
    hint.set_defaults(run=grading.main_hint)

    courses = sub.add_parser("course", help="build course materials for instructors",
                             description="Course materials for instructors.")
    course_sub = courses.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = course_sub.add_parser("build", help="student notebooks, instructor copies and Otter autograders",
                                  description="Write student notebooks (no solutions), instructor notebooks, an "
                                  "Otter-Grader autograder per lesson and an instructor README into --out.")
    build.add_argument("--lessons", required=True, help="comma-separated lessons, e.g. 01,03,05")
    build.add_argument("--out", required=True, help="folder to write the course into")
    build.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    _add_grading_limits(build, "the autograders' ")
    build.set_defaults(run=course.main_build)

    from . import track

    tracks = sub.add_parser("track", help="build the engine yourself, step by step, checked against tinylm",
                            description="The build-the-engine track: ten steps, from a Tensor's ops and "
                            "backward pass to Numba kernels, Adam, an LSTM, attention and a small GPT trained "
                            "on your own engine; each step checked by property tests against tinylm.")
    track_sub = tracks.add_subparsers(dest="action", metavar="ACTION", required=True)
    track_start = track_sub.add_parser("start", help="write the skeleton package to fill in")
    track_start.add_argument("--out", required=True, help="folder to write engine/ and README.md into")
    track_start.add_argument("--force", action="store_true", help="overwrite an existing OUT/engine")
    track_start.set_defaults(run=track.main_start)
    track_check = track_sub.add_parser("check", help="check your steps against tinylm (exit 0 when all pass)")
    track_check.add_argument("dir", help="the folder given to `tinylm track start --out`")
    track_check.add_argument("--step", type=int, default=None,
                             help="check this step only (default: every step in order, up to the first failing)")
    track_check.add_argument("--examples", type=int, default=25, help="hypothesis examples per property (default 25)")
    track_check.set_defaults(run=track.main_check)

    from .check.layers import LAYERS

    check = sub.add_parser("gradcheck", help="check a layer's gradients three ways",
                           description="For every parameter and input of a layer: autograd vs central "
                           "differences vs the hand-derived formula, max abs and relative error, PASS/FAIL. "
                           "Exit status 1 on any FAIL.")
    check.add_argument("layer", choices=list(LAYERS) + ["all"])
    check.set_defaults(run=_gradcheck)

    bench = sub.add_parser("bench", help="speed benchmarks", description="Speed benchmarks, as ratios "
                           "against references measured in the same run.")
    bench.add_argument("what", choices=["kernels", "train", "ddp", "tokenizer"], help="kernels: each kernel against NumPy, "
                       "its BLAS and PyTorch; train: GPT or Llama training steps against PyTorch eager (when "
                       "installed); ddp: MPI all-reduce and data-parallel training here, projected to clusters; "
                       "tokenizer: BPE training and encoding speed and peak memory")
    bench.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    bench.add_argument("--json", metavar="FILE", help="bench kernels|train|ddp: also write the figures and the "
                       "machine they were measured on (CPU, vector width, BLAS, threads) to FILE as JSON")
    bench.add_argument("--device", choices=["cpu", "cuda"], default=None, help="bench kernels: only the CPU rows, "
                       "or only the GPU rows (default: both, the GPU rows where a CUDA device answers); bench "
                       "train: train both frameworks there (default cpu)")
    bench.add_argument("--steps", type=int, default=50, help="training steps to time (bench train, ddp)")
    bench.add_argument("--converge", action="store_true", help="bench train: the full schedule over --steps "
                       "steps, then the validation loss of both (use --steps 2000)")
    bench.add_argument("--model", choices=["gpt", "llama"], default="gpt", help="bench train: nanoGPT's small GPT "
                       "(default) or a Llama of the same sizes (RMSNorm, RoPE, SwiGLU, 2 key/value heads)")
    bench.add_argument("--processes", type=int, default=2, help="bench ddp: MPI processes to measure on (default 2)")
    bench.add_argument("--png", default="ddp_scaling.png", help="bench ddp: where to draw the projected scaling "
                       "efficiency (default ddp_scaling.png)")
    bench.set_defaults(run=_bench)
    return parser


def main(argv=None):
    """Run a command; an error is one line on stderr (a traceback only with TINYLM_DEBUG=1): exit 2,
    or 128 + the signal's number when training was interrupted (130 for Ctrl-C, 143 for SIGTERM)."""
    from .distributed import launch, world
    from .train import TrainingInterrupted

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a bad argument, already reported in one line (2)
        return done.code
    nproc = getattr(args, "nproc", 1)
    try:
        if nproc > 1 and world().size == 1:  # --nproc N: the same command on N processes, once it checks out
            _config_from(args, args.config, **({"out": None} if args.command == "compress" else {}))
            return launch(sys.argv[1:] if argv is None else list(argv), nproc)
        if not world().is_root:
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # rank 0 alone prints
        return args.run(args)
    except TrainingInterrupted as e:
        if world().is_root:
            print(f"tinylm {args.command}: {e}", file=sys.stderr)
        return e.exit_status
    except (ValueError, TypeError, IndexError, RuntimeError, OSError, MemoryError) as e:
        if os.environ.get("TINYLM_DEBUG"):
            raise
        reason = f"not enough memory ({e})" if isinstance(e, MemoryError) else str(e)
        rank = "" if world().is_root else f" (rank {world().rank})"
        print(f"tinylm {args.command}{rank}: error: {reason}".splitlines()[0], file=sys.stderr, flush=True)
        if world().size > 1:  # the other processes may wait for this one in a collective: end them all
            world().comm.Abort(2)
        return 2


if __name__ == "__main__":
    sys.exit(main())
