// libFuzzer target: the checkpoint reader, checkpoint_read (see fuzz.h). Built and run by `make fuzz`.
#define TESTING
#include "../dino.c"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_checkpoint(data, size);
    return 0;
}
