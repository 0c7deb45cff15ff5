"""The pieces of ``benchmarks/bench_encoder.py``, the script behind ``make bench``.

- :mod:`.measure`: FLOPs (analytic and counted), timing in turns, peak memory, profiles;
- :mod:`.machine`: the CPU's name and bfloat16 support, and the load other processes put on it;
- :mod:`.models`: the run's sizes and the models and inputs that are timed;
- :mod:`.floor`: the kernels any padding-free forward runs, bare and with the least eager
  PyTorch around them, timed beside section 1's rows for the targets' reasons;
- :mod:`.report`: the report's markdown tables and their numbers for the JSON file;
- :mod:`.targets`: the PASS/MISS lines below the tables;
- the sections, one module per group: :mod:`.comparisons` (1 and 2: ours beside torch's encoder
  and BertModel), :mod:`.throughput` (3, 4 and 8: FLOPs, bfloat16, CUDA), :mod:`.compiled` (5:
  ``torch.compile``), :mod:`.sentences` (6: sentence embeddings), :mod:`.sweep` (7: length sweep).

The script imports them as ``encoder.<module>`` (its own folder is on ``sys.path`` when it runs).
"""
