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

.PHONY: all test train clean

all: dino

dino: dino.c
	$(CC) $(CFLAGS) -o $@ dino.c $(LDLIBS)

test_dino: test_dino.c dino.c fuzz/fuzz.h
	$(CC) $(CFLAGS) -o $@ test_dino.c $(LDLIBS)

# The tests also run ./dino as a child process (bad command lines, kill and resume).
test: dino test_dino
	./test_dino

# make train: CIFAR-10 from data/ if present, else downloaded by data/cifar10.sh if the
# network allows, else the built-in synthetic set (with a notice). DATA=path trains on any
# supported data set; MINUTES sets the training budget (the k-NN evaluations come on top).
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
	./dino train --data "$$data" --out "$$out" --minutes $(MINUTES) $(ARGS)

clean:
	rm -f dino test_dino test_checkpoint.bin test_checkpoint.bin.tmp
