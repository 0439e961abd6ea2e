#!/bin/sh
# The benchmark protocol of the README's performance section: ./dino bench and
# data/bench_torch.py on the same configuration and thread count, run alternately
# (dino.c, PyTorch, dino.c, ...) so both see the same machine, RUNS times each; prints
# every run, the medians and the ratio of images per second, and the ratio run by run.
#   sh data/bench_compare.sh                 # 2 threads, 5 runs of 5 steps each
#   THREADS=1 RUNS=3 sh data/bench_compare.sh
#   TORCH_ARGS=--stock sh data/bench_compare.sh   # torch without the threading env fix
# Both run the fixed benchmark configuration (their defaults).
set -eu
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
TORCH_ARGS=${TORCH_ARGS:-}
PY=${PYTHON:-/usr/bin/python3}
cd "$(dirname "$0")/.."
[ -x ./dino ] || make dino
"$PY" -c "import torch" 2>/dev/null || { echo "error: $PY cannot import torch (apt-get install python3-torch)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
i=1
while [ "$i" -le "$RUNS" ]; do
    ./dino bench --threads "$THREADS" --steps "$STEPS" | grep '^bench dino.c' | tee -a "$log"
    # shellcheck disable=SC2086
    "$PY" data/bench_torch.py --threads "$THREADS" --steps "$STEPS" $TORCH_ARGS | grep '^bench torch' | tee -a "$log"
    i=$((i + 1))
done
awk -v threads="$THREADS" '
    { for (f = 1; f < NF; f++) if ($f == "step") { ms = $(f + 1); break }
      for (f = 1; f < NF; f++) if ($(f + 1) ~ /^MiB/) { mib = $f; break }
      who = ($2 == "dino.c:") ? "dino" : "torch"; n[who]++; t[who, n[who]] = ms; if (mib + 0 > m[who] + 0) m[who] = mib }
    function median(who,   i, j, x, k) {
        k = n[who]
        for (i = 1; i <= k; i++) a[i] = t[who, i]
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] + 0 < a[i] + 0) { x = a[i]; a[i] = a[j]; a[j] = x }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
    END { d = median("dino"); p = median("torch")
          printf "medians over %d alternating runs, %d threads: dino.c %.1f ms/step (peak %s MiB), PyTorch %.1f ms/step (peak %s MiB)\n", n["dino"], threads, d, m["dino"], p, m["torch"]
          printf "dino.c / PyTorch images per second: %.2fx\n", p / d
          # the spread within the sitting: run i of dino.c against run i of PyTorch, which followed it
          printf "run by run:"
          for (i = 1; i <= n["dino"] && i <= n["torch"]; i++) printf " %.2fx", t["torch", i] / t["dino", i]
          printf "\n" }' "$log"
