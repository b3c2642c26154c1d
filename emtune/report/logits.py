"""`emtune report logits`: how several models' logits are distributed on the same prompts — the paper's
"logit shift" (entropy minimisation pushes the logits of confident tokens up).

Statistics (mean, std, skew) are exact over every logit at every prompt position; the histograms use a
fixed-size random subset of each prompt's logits so memory stays bounded for large vocabularies.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure

from emtune.data.formats import encode_prompt
from emtune.data.prompt_set import read_prompt_set
from emtune.errors import DataError
from emtune.evaluate.models import expand_models, local_model, local_paths
from emtune.fsutil import atomic_dir, atomic_write_json, atomic_write_text, check_output, parse_jsonl
from emtune.model.loading import load_model, load_tokenizer

if TYPE_CHECKING:
    from emtune.config import RunConfig

log = logging.getLogger(__name__)

_PROMPT_FIELDS = ("problem", "prompt", "question")
SAMPLE_PER_PROMPT = 20_000


def read_prompts(path: Path) -> list[str]:
    """Problems from prep's output (its folder or prompts.parquet), a JSONL file (field problem/prompt/question)
    or a text file (one per line)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".parquet":
        return read_prompt_set(path).problems
    if not path.is_file():
        raise DataError(f"prompts file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"prompts file {str(path)!r} is not text; expected JSONL, one prompt a line, or prep's output folder"
        ) from None
    if path.suffix != ".jsonl":
        prompts = [line for line in text.splitlines() if line.strip()]
    else:
        prompts = []
        for number, record in enumerate(parse_jsonl(text, f"prompts file {str(path)!r}"), 1):
            field = next((f for f in _PROMPT_FIELDS if f in record), None)
            if field is None:
                raise DataError(f"{path}:{number} has none of the fields {', '.join(_PROMPT_FIELDS)}")
            prompts.append(str(record[field]))
    if not prompts:
        raise DataError(f"prompts file {str(path)!r} holds no prompts")
    return prompts


class _Moments:
    """Running power sums in float64: exact mean, std and skew without keeping the values."""

    def __init__(self) -> None:
        self.count = 0
        self.sums = np.zeros(3)

    def add(self, values: torch.Tensor) -> None:
        x = values.double()
        self.count += x.numel()
        self.sums += [x.sum().item(), (x**2).sum().item(), (x**3).sum().item()]

    def summary(self) -> dict[str, float]:
        mean, m2, m3 = self.sums / self.count
        var = max(m2 - mean**2, 0.0)
        std = math.sqrt(var)
        third = m3 - 3 * mean * m2 + 2 * mean**3
        return {"count": self.count, "mean": mean, "std": std, "skew": third / std**3 if std > 0 else 0.0}


@torch.no_grad()
def model_logits(model_path: str, problems: list[str], cfg: RunConfig) -> tuple[dict[str, float], np.ndarray]:
    """Summary statistics of every prompt-position logit, and a random sample of them for the histogram."""
    tokenizer = load_tokenizer(model_path)
    dtype = "float32" if cfg.model.dtype == "auto" else cfg.model.dtype
    model = load_model(model_path, dtype, cfg.model.trust_remote_code).eval()
    generator = torch.Generator().manual_seed(cfg.eval.seed)
    moments, sample = _Moments(), []
    for problem in problems:
        ids = torch.tensor([encode_prompt(problem, cfg.eval.prompt_format, tokenizer)])
        logits = model(input_ids=ids).logits.float().flatten()
        moments.add(logits)
        take = torch.randint(0, logits.numel(), (min(SAMPLE_PER_PROMPT, logits.numel()),), generator=generator)
        sample.append(logits[take].numpy())
    return moments.summary(), np.concatenate(sample)


def _histogram(samples: dict[str, np.ndarray], path: Path) -> Path:
    fig = Figure(figsize=(7, 4.2), dpi=110)
    ax = fig.add_subplot()
    low = min(float(v.min()) for v in samples.values())
    high = max(float(v.max()) for v in samples.values())
    bins = np.linspace(low, high, 101)
    for label, values in samples.items():
        ax.hist(values, bins=bins.tolist(), density=True, histtype="step", linewidth=1.4, label=label)
    ax.set(xlabel="logit", ylabel="density", yscale="log", title="Logit distribution on the same prompts")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _markdown(stats: dict[str, dict[str, float]], prompts: int) -> str:
    lines = [
        "# Logit statistics",
        "",
        f"Every next-token logit at every position of {prompts} prompts.",
        "",
        "| model | mean | std | skew | logits |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {s['mean']:.4f} | {s['std']:.4f} | {s['skew']:.4f} | {s['count']} |" for m, s in stats.items()]
    return "\n".join([*lines, "", "![logits](logits.png)", ""])


def run(cfg: RunConfig, models: list[str], prompts: Path, out: Path, *, overwrite: bool = False) -> Path:
    """Compare the logits of `models` on the problems in `prompts`; writes logits.{png,json,md} into `out`.

    `out` may not be, hold or lie inside an input; an existing one is replaced only with `overwrite`.
    """
    problems = read_prompts(prompts)
    refs = expand_models(models, cfg.store)
    inputs = [Path(prompts), *local_paths(refs)]
    check_output(out, inputs, overwrite=overwrite)  # before the models run: a refusal costs nothing
    stats: dict[str, Any] = {}
    samples: dict[str, np.ndarray] = {}
    for ref in refs:
        with local_model(ref, cfg.store) as path:
            stats[ref.label], samples[ref.label] = model_logits(path, problems, cfg)
        log.info(
            "%s: logit mean %.3f std %.3f skew %.3f", ref.label, *(stats[ref.label][k] for k in ("mean", "std", "skew"))
        )
    with atomic_dir(Path(out), "report logits", inputs=inputs, overwrite=overwrite) as tmp:
        _histogram(samples, tmp / "logits.png")
        atomic_write_json(tmp / "logits.json", {"prompts": len(problems), "models": stats})
        atomic_write_text(tmp / "logits.md", _markdown(stats, len(problems)))
    return Path(out)
