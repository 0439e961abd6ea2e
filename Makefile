# dino.c: `make` builds ./dino, `make test` builds and runs the tests.
CC ?= cc

# -O3 and -march=native let the compiler unroll and vectorise the plain loops (there are no
# intrinsics in dino.c); each is kept only if the compiler accepts it.
CFLAGS ?= -O3 -Wall -Wextra -Wno-unused-function
CFLAGS += $(shell $(CC) -march=native -x c -E /dev/null >/dev/null 2>&1 && echo -march=native)
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

.PHONY: all test train plot clean

all: dino

dino: dino.c
	$(CC) $(CFLAGS) -o $@ dino.c $(LDLIBS)

test_dino: test_dino.c dino.c
	$(CC) $(CFLAGS) -o $@ test_dino.c $(LDLIBS)

# the tests also run ./dino as a command (attn, embed, linear), so it is built first
test: dino test_dino
	./test_dino

# make train: CIFAR-10 from data/ if present, else downloaded by data/cifar10.sh if the
# network allows, else the built-in synthetic set (with a notice). DATA=path trains on any
# supported data set; MINUTES sets the training budget (the k-NN evaluations come on top).
# It ends with the attention maps of 4 held-out images in runs/<run>/attention/ (seconds).
MINUTES ?= 7
DATA ?=
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
	out=runs/train-$$(date +%Y%m%d-%H%M%S); \
	./dino train --data "$$data" --out "$$out" --minutes $(MINUTES) $(ARGS); \
	echo "attention maps of the trained teacher on 4 held-out images (the paper's figure 1):"; \
	./dino attn --model "$$out/model.bin" --data "$$data" --split test --index 0 --index 1 --index 2 --index 3 \
	  --output "$$out/attention"

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

clean:
	rm -f dino test_dino test_checkpoint.bin test_checkpoint.bin.tmp
