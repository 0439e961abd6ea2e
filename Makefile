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

test_dino: test_dino.c dino.c
	$(CC) $(CFLAGS) -o $@ test_dino.c $(LDLIBS)

test: test_dino
	./test_dino

train: dino
	@echo "make train arrives with the next issue (data sets, multi-crop, the training loop)."
	@echo "For now: make test proves the network, the loss and the training step against PyTorch."

clean:
	rm -f dino test_dino test_checkpoint.bin test_checkpoint.bin.tmp
