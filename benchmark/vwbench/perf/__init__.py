"""``vwbench bench``: how fast vwbench is, measured against the straightforward way, side by side.

| module | job |
|---|---|
| ``workload`` | the training workload both sides of a comparison build (model, split, words, config) |
| ``naive`` | the reference loops: whole model every step, one word at a time; diffusers' textual inversion |
| ``jobs`` | what one measuring process does (batched training, a reference loop, one mAP backend) |
| ``harness`` / ``child`` | one fresh process per measured thing, with its peak memory |
| ``sections`` | the sections: run both sides, check they agree, give the ratio |
| ``bench`` | one bench run: sections, machine, memory table, projection |
| ``report`` | ``leaderboards/perf.md`` and ``perf.json``, written atomically |
| ``project`` | the paper's study priced at the measured costs (``--project paper``) |
| ``paper_tier`` | the paper-tier architectures with random weights (the GPU path) |

Nothing here is imported by ``vwbench`` itself; the command imports it when it runs.
"""
