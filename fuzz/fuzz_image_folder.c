// libFuzzer target: image folders, decoded by stb_image (see fuzz.h). Built and run by `make fuzz`.
#define TESTING
#include "../dino.c"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_image_folder(data, size);
    return 0;
}
