"""`emtune eval`: checkpoints × benchmarks → generate → grade → samples.jsonl + metrics.json per pair.

Output layout under the run's folder: `<label>/<benchmark>/samples.jsonl` and `metrics.json` (each pair folder
written whole or not at all), and `results.json` listing every pair's metrics, rewritten after each pair.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emtune.data.formats import encode_prompt, format_prompt
from emtune.data.sources import local_source_paths
from emtune.errors import ModelError
from emtune.evaluate.backends import Completion, GenerationBackend, GenerationParams, open_backend
from emtune.evaluate.grading import Grader
from emtune.evaluate.models import ModelRef, expand_models, local_model, local_paths
from emtune.evaluate.passk import summarize
from emtune.fsutil import atomic_dir, atomic_write_json, check_output, exclusive_lock, open_output_dir
from emtune.model.loading import load_tokenizer
from emtune.store.layout import step_name

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from emtune.config import RunConfig
    from emtune.config.evaluate import EvalConfig
    from emtune.data.benchmarks import Benchmark, BenchmarkItem

log = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
GREEDY_SAMPLES_FILE = "greedy_samples.jsonl"
METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"
LOGS_DIR = "logs"  # a backend's own log (vLLM's), one file per checkpoint
PULLED_DIR = ".pulled"  # store checkpoints pulled for the run, while it runs


def _load_benchmarks(cfg: RunConfig, names: list[str]) -> list[Benchmark]:
    from emtune.data.benchmarks import check_source_names, load_benchmark

    check_source_names(cfg.eval.sources)
    return [
        load_benchmark(name, cfg.eval.sources.get(name), check_count=cfg.eval.check_count, store=cfg.store)
        for name in names
    ]


@contextmanager
def _opened(cfg: RunConfig, ref: ModelRef, out: Path) -> Iterator[tuple[GenerationBackend, PreTrainedTokenizerBase]]:
    # A store step is pulled inside the output (removed on exit, and by the next run if this one is killed).
    with local_model(ref, cfg.store, pull_into=out / PULLED_DIR) as path:
        tokenizer = load_tokenizer(path)
        log_file = out / LOGS_DIR / f"{ref.label}.log"
        backend = open_backend(cfg.eval, path, tokenizer, cfg.model.trust_remote_code, log_file)
        try:
            yield backend, tokenizer
        finally:
            backend.close()


def _protocol(cfg: RunConfig) -> dict[str, Any]:
    keys = ("prompt_format", "n", "temperature", "top_p", "max_new_tokens", "seed", "limit", "greedy")
    return {key: getattr(cfg.eval, key) for key in keys}


def benchmark_params(ev: EvalConfig, benchmark: Benchmark) -> GenerationParams:
    """eval.*'s decoding settings, with the benchmark spec's own over them (eval.benchmark_sampling); a greedy
    benchmark decodes once per problem, whatever eval.n (greedy samples are identical)."""
    params = GenerationParams.from_config(ev)
    own = benchmark.spec.sampling if benchmark.spec is not None and ev.benchmark_sampling else None
    if own is not None:
        params = replace(
            params,
            temperature=params.temperature if own.temperature is None else own.temperature,
            max_new_tokens=own.max_new_tokens or params.max_new_tokens,
        )
    return replace(params, n=1) if params.temperature == 0 else params


def _graded_records(
    items: list[BenchmarkItem],
    prompts: list[str],
    completions: list[list[Completion]],
    tokenizer: PreTrainedTokenizerBase,
    grader: Grader,
    kind: str,
) -> list[dict[str, Any]]:
    """One record per completion, in problem then sample order, graded against the item's gold answer."""
    texts = [[str(tokenizer.decode(c.token_ids, skip_special_tokens=True)) for c in row] for row in completions]
    pairs = [(text, item.gold) for item, row in zip(items, texts, strict=True) for text in row]
    grades = iter(grader.grade(pairs, kind))
    records: list[dict[str, Any]] = []
    for item, prompt, row, row_texts in zip(items, prompts, completions, texts, strict=True):
        for sample, (completion, text) in enumerate(zip(row, row_texts, strict=True)):
            grade = next(grades)
            records.append(
                {
                    "id": item.id,
                    "sample": sample,
                    "prompt": prompt,
                    "completion": text,
                    "extracted": grade.extracted,
                    "gold": item.gold,
                    "correct": grade.correct,
                    "timed_out": grade.timed_out,
                    "tokens": len(completion.token_ids),
                    "finish_reason": completion.finish_reason,
                }
            )
    return records


def _evaluate(
    cfg: RunConfig,
    ref: ModelRef,
    benchmark: Benchmark,
    backend: GenerationBackend,
    tokenizer: PreTrainedTokenizerBase,
    grader: Grader,
    out: Path,
) -> dict[str, Any]:
    """Generate, grade and write one (checkpoint, benchmark) pair; returns its metrics."""
    ev = cfg.eval
    items = benchmark.items[: ev.limit] if ev.limit else benchmark.items
    spec, kind = benchmark.spec, benchmark.kind
    prompt_format = spec.effective_prompt_format(ev.prompt_format) if spec else ev.prompt_format
    questions = [spec.render(item.question) if spec else item.question for item in items]
    prompts = [format_prompt(question, prompt_format, tokenizer) for question in questions]
    prompt_ids = [encode_prompt(question, prompt_format, tokenizer) for question in questions]

    started = time.perf_counter()
    params = benchmark_params(ev, benchmark)
    completions = backend.generate(prompt_ids, params)
    generated_at = time.perf_counter()
    records = _graded_records(items, prompts, completions, tokenizer, grader, kind)
    graded_at = time.perf_counter()
    # Greedy decoding beside the sampled avg@n shows how far sampling falls below what the model "knows".
    greedy: dict[str, Any] = {}
    greedy_records: list[dict[str, Any]] = []
    if ev.greedy and params.temperature > 0:
        greedy_params = replace(params, n=1, temperature=0.0)
        greedy_completions = backend.generate(prompt_ids, greedy_params)
        greedy_records = _graded_records(items, prompts, greedy_completions, tokenizer, grader, kind)
        greedy = {"greedy": float(np.mean([r["correct"] for r in greedy_records])) if greedy_records else 0.0}

    n = params.n
    correct = [[r["correct"] for r in records[i * n : (i + 1) * n]] for i in range(len(items))]
    scores = summarize(correct, ev.pass_k)
    tokens = [r["tokens"] for r in records]
    generation_s, grading_s = generated_at - started, graded_at - generated_at
    metrics: dict[str, Any] = {
        "model": ref.spec,
        "label": ref.label,
        "step": ref.step,
        "benchmark": benchmark.name,
        "kind": kind,
        "backend": backend.name,
        "dtype": backend.dtype,
        "sampling": asdict(params),
        "protocol": _protocol(cfg),
        "items": len(items),
        "benchmark_items": len(benchmark.items),  # > items when eval.limit cut the benchmark short
        "samples": len(records),
        "accuracy": scores.get(f"avg@{n}", 0.0),
        **scores,
        **greedy,
        "mean_tokens": float(np.mean(tokens)) if tokens else 0.0,
        "truncated_fraction": float(np.mean([r["finish_reason"] == "length" for r in records])) if records else 0.0,
        "timeouts": sum(r["timed_out"] for r in records),
        "generation_s": generation_s,
        "grading_s": grading_s,
        "wall_s": graded_at - started,
        "tokens_per_s": sum(tokens) / generation_s if generation_s > 0 else 0.0,
        "graded_per_s": len(records) / grading_s if grading_s > 0 else 0.0,
    }
    # A piece of the eval folder, which `run` (or KFP, for a pipeline task) made fresh: no marker of its own.
    with atomic_dir(out / ref.label / benchmark.name, "eval", mark=False) as tmp:
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        (tmp / SAMPLES_FILE).write_text(lines, encoding="utf-8")
        if greedy_records:
            greedy_lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in greedy_records)
            (tmp / GREEDY_SAMPLES_FILE).write_text(greedy_lines, encoding="utf-8")
        atomic_write_json(tmp / METRICS_FILE, metrics)
    log.info(
        "%s on %s: accuracy %.1f%% (%d items, %d timeouts, %.0f tok/s)",
        ref.label,
        benchmark.name,
        100 * metrics["accuracy"],
        len(items),
        metrics["timeouts"],
        metrics["tokens_per_s"],
    )
    return metrics


def run(
    cfg: RunConfig,
    models: list[str],
    benchmarks: list[str] | None = None,
    out: Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Evaluate every checkpoint `models` names on every benchmark; returns the run's output folder.

    An existing non-empty `out` is replaced only with `overwrite` and only if emtune wrote it; it may not be,
    hold or lie inside a model folder or a benchmark file it reads. With `resume`, an earlier (interrupted) run
    in `out` is continued: each pair whose folder is complete (it exists: pairs are renamed into place whole) is
    kept, the others are evaluated.
    """
    out = Path(out) if out is not None else Path(cfg.run.out_dir) / "eval"
    loaded = _load_benchmarks(cfg, benchmarks or cfg.eval.benchmarks)  # bad names fail before any model loads
    refs = expand_models(models, cfg.store)
    sources = [path for source in cfg.eval.sources.values() for path in local_source_paths(source)]
    with exclusive_lock(out, "eval output"):  # one writer: a second eval into `out` is refused, not interleaved
        if resume and (out / RESULTS_FILE).is_file():
            check_output(out, [*local_paths(refs), *sources], overwrite=True)  # emtune's own eval folder
        else:
            open_output_dir(out, "eval", inputs=[*local_paths(refs), *sources], overwrite=overwrite)
        shutil.rmtree(out / PULLED_DIR, ignore_errors=True)  # a killed run's pulled checkpoints
        try:
            _run_pairs(cfg, refs, loaded, out)
        finally:
            shutil.rmtree(out / PULLED_DIR, ignore_errors=True)
    return out


def _run_pairs(cfg: RunConfig, refs: list[ModelRef], loaded: list[Benchmark], out: Path) -> None:
    """Every pair not yet complete in `out`; results.json names the planned pairs, so a report can tell which
    ones an interrupted run left out."""
    planned = [[ref.label, benchmark.name] for ref in refs for benchmark in loaded]
    results: list[dict[str, Any]] = []

    def record() -> None:
        atomic_write_json(
            out / RESULTS_FILE, {"eval": cfg.eval.model_dump(mode="json"), "planned": planned, "results": results}
        )

    with Grader(cfg.eval.grading_timeout_s, cfg.eval.grading_workers, cfg.eval.sandbox) as grader:
        for ref in refs:
            done = {b.name: out / ref.label / b.name / METRICS_FILE for b in loaded}
            if all(path.is_file() for path in done.values()):
                results.extend(json.loads(path.read_text(encoding="utf-8")) for path in done.values())
                log.info("kept the completed pairs of %s", ref.label)
                record()
                continue
            with _opened(cfg, ref, out) as (backend, tokenizer):
                record()  # the plan, once a model has passed its checks and opened
                for benchmark in loaded:
                    if done[benchmark.name].is_file():
                        results.append(json.loads(done[benchmark.name].read_text(encoding="utf-8")))
                        log.info("kept the completed pair %s on %s", ref.label, benchmark.name)
                    else:
                        results.append(_evaluate(cfg, ref, benchmark, backend, tokenizer, grader, out))
                    record()


def evaluate_pair(cfg: RunConfig, model: str, benchmark: str, out: Path, step: int | None = None) -> dict[str, Any]:
    """One (checkpoint, benchmark) pair into `out/<label>/<benchmark>/`, as the pipeline fans them out.

    `step` overrides the step read from the model's name (a store step URI or a step-N folder).
    """
    refs = expand_models([model], cfg.store)
    if len(refs) != 1:
        raise ModelError(f"evaluate_pair needs one checkpoint; {model!r} names {len(refs)} (pass a step URI)")
    ref = refs[0] if step is None else replace(refs[0], step=step, label=step_name(step))
    (loaded,) = _load_benchmarks(cfg, [benchmark])
    grader = Grader(cfg.eval.grading_timeout_s, cfg.eval.grading_workers, cfg.eval.sandbox)
    with grader, _opened(cfg, ref, Path(out)) as opened:
        return _evaluate(cfg, ref, loaded, *opened, grader, Path(out))
