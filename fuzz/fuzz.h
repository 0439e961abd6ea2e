/*
What each fuzz target feeds its reader. Shared by the targets (fuzz/fuzz_*.c, built with
libFuzzer by `make fuzz`) and by test_dino.c, which replays every input kept in
fuzz/regressions/<target>/ through the same functions, so an input that once crashed a
reader stays a test. Include after dino.c (compiled with -DTESTING).

The readers take paths, so each input is written to a file in a private temporary
directory first: that is also how a user's file reaches them.
*/
#include <sys/types.h>

// A directory of our own for the files the readers open, made once per process and
// removed at exit with the files the functions below write into it.
static char fuzz_dir_name[64] = "";
static void fuzz_cleanup(void) {
    const char *files[] = { "model.bin", "data_batch_1.bin", "train.bin", "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                            "folder/class/image", "folder/class", "folder" };
    char path[128];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", fuzz_dir_name, files[i]);
        remove(path);
    }
    remove(fuzz_dir_name);
}
static const char *fuzz_dir(void) {
    if (fuzz_dir_name[0] == '\0') {
        snprintf(fuzz_dir_name, sizeof(fuzz_dir_name), "/tmp/dino_fuzz_XXXXXX");
        if (mkdtemp(fuzz_dir_name) == NULL) die("fuzz: cannot make a temporary directory");
        atexit(fuzz_cleanup);
    }
    return fuzz_dir_name;
}

static void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) die("fuzz: cannot write %s", path);
}

// The checkpoint reader. A header can describe any config that passes config_error; the
// file size must then match it, so the parameters are bounded by the input's size, but the
// batch and the number of local crops are not (they size activations, not the file).
// Inputs whose header asks for more than a small batch are left out, as they would only
// measure the machine's memory: dino_build's memory check is what guards those.
static void fuzz_checkpoint(const uint8_t *data, size_t size) {
    if (size >= CKPT_HEADER * 4) {
        int32_t h[CKPT_HEADER];
        memcpy(h, data, sizeof(h));
        if (h[3 + config_index("batch")] > 16 || h[3 + config_index("n_local")] > 8) return;
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/model.bin", fuzz_dir());
    fuzz_write(path, data, size);
    Dino d;
    if (checkpoint_read(&d, path) == 0) dino_free(&d);
}

// CIFAR-10 (1 label byte, any .bin name) and CIFAR-100 (2 label bytes, train.bin).
static void fuzz_cifar(const uint8_t *data, size_t size) {
    const char *names[2] = { "data_batch_1.bin", "train.bin" };
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", fuzz_dir(), names[i]);
        fuzz_write(path, data, size);
        Dataset ds;
        dataset_open(&ds, path, 0, NULL, 3, 32, 0, 0);
        dataset_free(&ds);
    }
}

// IDX images and labels: the input is both files, split where its first byte says.
static void fuzz_idx(const uint8_t *data, size_t size) {
    if (size < 1) return;
    size_t split = 1 + (size - 1) * data[0] / 255;
    char images[128], labels[128];
    snprintf(images, sizeof(images), "%s/train-images-idx3-ubyte", fuzz_dir());
    snprintf(labels, sizeof(labels), "%s/train-labels-idx1-ubyte", fuzz_dir());
    fuzz_write(images, data + 1, split - 1);
    fuzz_write(labels, data + split, size - split);
    Dataset ds;
    dataset_open(&ds, images, 0, NULL, 1, 32, 0, 0);
    dataset_free(&ds);
    remove(labels); // and the images alone
    dataset_open(&ds, images, 0, NULL, 1, 32, 0, 0);
    dataset_free(&ds);
}

// A folder with one class holding the input as an image file (any format stb_image
// reads), read as RGB at 32 px and, skipping unreadable images, as grey at 16 px. Images
// of more than a megapixel are refused here, as their resizing only makes the fuzzer slow.
static void fuzz_image_folder(const uint8_t *data, size_t size) {
    max_image_pixels = 1e6; // a header may ask for 100 megapixels, which take seconds to resize
    char dir[128], cls[160], path[200];
    snprintf(dir, sizeof(dir), "%s/folder", fuzz_dir());
    snprintf(cls, sizeof(cls), "%s/class", dir);
    snprintf(path, sizeof(path), "%s/image", cls);
    mkdir(dir, 0755);
    mkdir(cls, 0755);
    fuzz_write(path, data, size);
    Dataset ds;
    dataset_open(&ds, dir, 0, NULL, 3, 32, 0, 0);
    dataset_free(&ds);
    dataset_open(&ds, dir, 0, NULL, 1, 16, 0, 1);
    dataset_free(&ds);
}
