// libFuzzer target: the IDX (MNIST) images and labels reader (see fuzz.h). Built and run by `make fuzz`.
#define TESTING
#include "../dino.c"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_idx(data, size);
    return 0;
}
