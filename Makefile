# dino.c: `make` builds ./dino, `make test` builds and runs the tests.
CC ?= cc

# -O3 and -march=native let the compiler unroll and vectorise the plain loops (there are no
# intrinsics in dino.c); each is kept only if the compiler accepts it. -fno-math-errno: sqrtf
# need not set errno, so AdamW's loop runs in vector square roots (the same results; AdamW was
# 10% of the default training step's profile without it).
CFLAGS ?= -O3 -fno-math-errno -Wall -Wextra
CFLAGS += $(shell $(CC) -march=native -x c -E /dev/null >/dev/null 2>&1 && echo -march=native)
# With -march=native on an AVX-512 CPU, GCC still prefers 256-bit vectors for the loops it
# vectorises on its own (those without simdlen(16)): layernorm, the residual adds.
# 512 made a benchmark step 2.8% faster here (README, Performance); elsewhere it changes nothing.
CFLAGS += $(shell $(CC) -mprefer-vector-width=512 -x c -E /dev/null >/dev/null 2>&1 && echo -mprefer-vector-width=512)
LDLIBS = -lm

# stb (stb_image, stb_image_resize, stb_image_write) comes from the system: Debian's
# libstb-dev puts it under /usr/include/stb. Point STB_INCLUDE elsewhere if yours lives
# somewhere else (the directory that holds stb/stb_image.h).
STB_INCLUDE ?= /usr/include
CFLAGS += -I$(STB_INCLUDE)

# OpenMP: on if the compiler has it. NO_OMP=1 builds single-threaded (the results are
# the same: every parallel loop writes disjoint memory).
# -fopenmp-simd: the `#pragma omp simd` loops (vectorised sums) compile the same way with
# or without OpenMP, so both builds give bit-identical results.
CFLAGS += -fopenmp-simd
ifeq ($(NO_OMP),1)
  $(info OpenMP off (NO_OMP=1): single-threaded build)
else
  OMP_OK := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null >/dev/null 2>&1 && echo yes)
  ifeq ($(OMP_OK),yes)
    CFLAGS += -fopenmp
  else
    $(info OpenMP not found: building single-threaded. Install it (Debian: libgomp1 comes with gcc; clang needs libomp-dev) or pass NO_OMP=1 to silence this.)
  endif
endif

.PHONY: all test train plot clean sanitize fuzz valgrind

all: dino

dino: dino.c
	$(CC) $(CFLAGS) -o $@ dino.c $(LDLIBS)

# The tests include dino.c without its command line (#ifndef TESTING), so the static functions
# that only the command line calls are unused there; ./dino itself builds without that flag.
test_dino: test_dino.c dino.c fuzz/fuzz.h
	$(CC) $(CFLAGS) -Wno-unused-function -o $@ test_dino.c $(LDLIBS)

# The tests also run ./dino as a child process (attn, embed, linear, bad command lines,
# kill and resume), so it is built first.
test: dino test_dino
	./test_dino

# make train: CIFAR-10 from data/ if present, else downloaded by data/cifar10.sh if the
# network allows, else the built-in synthetic set (with a notice). DATA=path trains on any
# supported data set; MINUTES sets the training budget (the k-NN evaluations come on top).
# It ends with the attention maps of 4 held-out images in runs/<run>/attention/ and their 8 nearest
# training images by the teacher's features in runs/<run>/neighbours.png (seconds).
MINUTES ?= 8
DATA ?=
# The synthetic set's recipe differs from the defaults (made for CIFAR-10) in two values of
# the official recipe: its crops (global 40-100% of the area, local 5-40%; its objects are
# shapes of 14-26 px on 32 px) and the teacher temperature warmed up from 0.04 to 0.07.
# In 8 minutes they reach k-NN 65 where the defaults reach 47 (README, "What 30 CPU minutes
# learn", has the runs).
SYNTHETIC_RECIPE = --global_scale_min 0.4 --local_scale_min 0.05 --local_scale_max 0.4 --teacher_temp 0.07
train: dino
	@set -e; data="$(DATA)"; \
	if [ -z "$$data" ]; then \
	  if [ -f data/cifar-10-batches-bin/data_batch_1.bin ]; then data=data/cifar-10-batches-bin; \
	  elif bash data/cifar10.sh; then data=data/cifar-10-batches-bin; \
	  else data=synthetic; \
	    echo "note: CIFAR-10 is not in data/ and could not be downloaded, so this run uses the built-in synthetic"; \
	    echo "      data set. To train on CIFAR-10: data/cifar10.sh (or data/cifar10.sh DIR with a copy you have)."; \
	  fi; \
	fi; \
	recipe=; if [ "$$data" = synthetic ]; then recipe="$(SYNTHETIC_RECIPE)"; fi; \
	out=runs/train-$$(date +%Y%m%d-%H%M%S); \
	echo "./dino train --data $$data --out $$out --minutes $(MINUTES) $$recipe $(ARGS)"; \
	./dino train --data "$$data" --out "$$out" --minutes $(MINUTES) $$recipe $(ARGS); \
	echo "attention maps of the trained teacher on 4 held-out images (the paper's figure 1):"; \
	./dino attn --model "$$out/model.bin" --data "$$data" --split test --index 0 --index 1 --index 2 --index 3 \
	  --output "$$out/attention"; \
	./dino neighbours --model "$$out/model.bin" --train "$$data" --test "$$data" --index 0 --index 1 --index 2 --index 3 \
	  --k 8 --output "$$out/neighbours.png"

# make plot RUN=runs/x: the run's training curves (loss, teacher entropy, KL, k-NN) as
# runs/x/curves.png, drawn by data/plot.gp with gnuplot (Debian: apt-get install gnuplot-nox).
# K, for the ln K line of the entropy plot, is read from the checkpoint: config field 9
# (out_dim) is the int32 at byte 4 * (3 + 9) of the header.
RUN ?=
plot:
	@if [ -z "$(RUN)" ]; then echo "usage: make plot RUN=runs/<run>   (the directory holding log.csv)"; exit 1; fi
	@if [ ! -f "$(RUN)/log.csv" ]; then echo "error: $(RUN)/log.csv not found: is $(RUN) the --out directory of a run?"; exit 1; fi
	@command -v gnuplot >/dev/null 2>&1 || { echo "error: make plot needs gnuplot, which is not installed (Debian: apt-get install gnuplot-nox)"; exit 1; }
	@K=$$(od -An -t d4 -j 48 -N 4 "$(RUN)/model.bin" 2>/dev/null | tr -d ' '); \
	gnuplot -e "run='$(RUN)'$${K:+; K=$$K}" data/plot.gp

# make sanitize: the tests built with AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer; any report fails the run. The tests run ./dino too, so it is
# built the same way (DINO=./dino_san). -O1 keeps the stack traces readable. Shifts of
# negative values are recoverable only so that .ci/ubsan.supp can name the one known case
# (halt_on_error stops on every other).
SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize-recover=shift-base
SAN_CFLAGS = $(filter-out -O3,$(CFLAGS)) $(SAN_FLAGS)
sanitize:
	$(CC) $(SAN_CFLAGS) -o dino_san dino.c $(LDLIBS)
	$(CC) $(SAN_CFLAGS) -Wno-unused-function -o test_dino_san test_dino.c $(LDLIBS)
	DINO=./dino_san UBSAN_OPTIONS=suppressions=.ci/ubsan.supp:halt_on_error=1:print_stacktrace=1 ./test_dino_san

# make fuzz: libFuzzer targets for the readers of files a user hands to dino.c (fuzz/*.c:
# checkpoints, CIFAR, IDX, image folders), each run for FUZZ_SECONDS on a seed corpus that
# fuzz/make_seeds.c writes to fuzz/corpus/. libFuzzer comes with clang (Debian: clang). A
# crash leaves its input in fuzz/crashes/; once fixed, move it to fuzz/regressions/<target>/,
# where make test replays it.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_TARGETS = checkpoint cifar idx image_folder
FUZZ_FLAGS = -g -O1 -Wno-pass-failed -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp-simd -I$(STB_INCLUDE)
fuzz:
	@echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' | \
	  $(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null >/dev/null 2>&1 || \
	  { echo "make fuzz needs clang with libFuzzer ($(FUZZ_CC) -fsanitize=fuzzer failed); Debian: apt-get install clang"; exit 1; }
	$(CC) -O1 -g -fopenmp-simd -I$(STB_INCLUDE) -o fuzz/make_seeds fuzz/make_seeds.c $(LDLIBS)
	./fuzz/make_seeds fuzz/corpus
	mkdir -p fuzz/crashes
	@status=0; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS) s (log: fuzz/fuzz_$$t.log)"; \
	  $(FUZZ_CC) $(FUZZ_FLAGS) -o fuzz/fuzz_$$t fuzz/fuzz_$$t.c $(LDLIBS) || exit 1; \
	  if ./fuzz/fuzz_$$t fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 -close_fd_mask=2 \
	       -artifact_prefix=fuzz/crashes/$$t- -print_final_stats=1 > fuzz/fuzz_$$t.log 2>&1; then \
	    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' fuzz/fuzz_$$t.log; \
	  else \
	    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' fuzz/fuzz_$$t.log; \
	    echo "fuzz_$$t FOUND A PROBLEM: the input is in fuzz/crashes/, the report in fuzz/fuzz_$$t.log"; status=1; \
	  fi; \
	done; exit $$status

# make valgrind: memcheck on a short training run (k-NN at start and end included), its
# resume and a k-NN evaluation of the checkpoint; any error or leak fails. Built without
# -march=native, whose AVX-512 instructions valgrind does not know. One thread: libgomp
# never joins its worker threads, and memcheck counts their thread-local blocks as
# "possibly lost".
VALGRIND = valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1
VG_RUN = --data synthetic --synthetic-n 64 --threads 1 --dim 16 --depth 1 --heads 2 --head_hidden 32 --bottleneck 16 --out_dim 32 --n_local 2 --batch 8
valgrind:
	$(CC) $(filter-out -O3 -march=native,$(CFLAGS)) -O2 -g -o dino_vg dino.c $(LDLIBS)
	@set -e; out=$$(mktemp -d); \
	echo "== train"; $(VALGRIND) ./dino_vg train $(VG_RUN) --steps 6 --save-every 3 --eval-every 4 --out $$out/run; \
	echo "== resume"; $(VALGRIND) ./dino_vg train $(VG_RUN) --no-final-eval --resume $$out/run/model.bin --steps 8; \
	echo "== knn"; OMP_NUM_THREADS=1 $(VALGRIND) ./dino_vg knn --model $$out/run/model.bin --train synthetic --test synthetic --synthetic-n 64 --baseline; \
	rm -rf $$out

clean:
	rm -f dino test_dino test_checkpoint.bin test_checkpoint.bin.tmp dino_san test_dino_san dino_vg
	rm -f fuzz/make_seeds $(addprefix fuzz/fuzz_,$(FUZZ_TARGETS))
