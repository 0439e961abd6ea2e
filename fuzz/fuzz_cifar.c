// libFuzzer target: the CIFAR-10 and CIFAR-100 readers (see fuzz.h). Built and run by `make fuzz`.
#define TESTING
#include "../dino.c"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_cifar(data, size);
    return 0;
}
