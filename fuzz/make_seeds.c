/*
Writes the seed corpus of the fuzz targets: small valid inputs of every kind each reader
takes, so the fuzzer starts from files that get deep into the reader and mutates from
there. Usage: fuzz/make_seeds DIR (writes DIR/<target>/<seed>).
*/
#define TESTING
#include "../dino.c"

static void put(const char *dir, const char *target, const char *name, const void *data, size_t size) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0) die("make_seeds: cannot write %s", path);
}

static void put_be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

// The smallest models there are: a few hundred parameters, checkpoints of a few KB.
static void checkpoint_seeds(const char *dir) {
    Config c = default_config();
    c.img_size = 8; c.patch = 4; c.dim = 4; c.depth = 1; c.heads = 1; c.mlp_ratio = 1;
    c.head_hidden = 4; c.bottleneck = 4; c.out_dim = 4; c.n_local = 0; c.local_size = 4; c.batch = 1;
    for (int variant = 0; variant < 3; variant++) {
        if (variant == 1) { c.n_local = 1; c.channels = 1; }
        if (variant == 2) { c.depth = 2; c.heads = 2; c.drop_path = 0.1f; }
        Dino d;
        dino_build(&d, &c);
        d.step = 3 * variant; d.adam_steps = d.step; d.adam_steps_last = variant;
        char path[1024], name[32];
        snprintf(name, sizeof(name), "tiny%d.bin", variant);
        snprintf(path, sizeof(path), "%s/checkpoint", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/checkpoint/%s", dir, name);
        save_checkpoint(&d, path);
        dino_free(&d);
    }
}

static void cifar_seeds(const char *dir) {
    uint8_t rec[2 * 3074];
    for (size_t i = 0; i < sizeof(rec); i++) rec[i] = (uint8_t)(i * 7);
    rec[0] = 3; rec[3073] = 9;
    put(dir, "cifar", "cifar10_2_records.bin", rec, 2 * 3073);
    rec[0] = 4; rec[1] = 87; rec[3074] = 19; rec[3075] = 99;
    put(dir, "cifar", "cifar100_2_records.bin", rec, 2 * 3074);
    put(dir, "cifar", "cifar10_1_record.bin", rec, 3073);
}

// fuzz_idx splits its input after byte 1 + (size - 1) * data[0] / 255: images, then labels.
static void idx_seeds(const char *dir) {
    for (int variant = 0; variant < 2; variant++) {
        int n = 3, side = variant ? 7 : 4;
        size_t ni = 16 + (size_t)n * side * side, nl = 8 + n, size = 1 + ni + nl;
        uint8_t buf[1 + 16 + 3 * 49 + 8 + 3];
        uint8_t *img = buf + 1, *lab = img + ni;
        put_be32(img, 0x803); put_be32(img + 4, n); put_be32(img + 8, side); put_be32(img + 12, side);
        for (size_t i = 16; i < ni; i++) img[i] = (uint8_t)(i * 13);
        put_be32(lab, 0x801); put_be32(lab + 4, n);
        lab[8] = 1; lab[9] = 7; lab[10] = 2;
        // the first byte that makes the split land right after the images
        int first = 0;
        while (first < 255 && 1 + (size - 1) * first / 255 < 1 + ni) first++;
        buf[0] = (uint8_t)first;
        if (1 + (size - 1) * first / 255 != 1 + ni) continue; // no exact split for this size
        char name[32];
        snprintf(name, sizeof(name), "idx_%dx%d", side, side);
        put(dir, "idx", name, buf, size);
        put(dir, "idx", variant ? "images_only_b" : "images_only_a", buf, 1 + ni); // labels empty
    }
}

static void write_func(void *context, void *data, int size) {
    FILE *f = (FILE *)context;
    fwrite(data, 1, size, f);
}

static void image_seeds(const char *dir) {
    int w = 6, h = 5;
    uint8_t px[6 * 5 * 4];
    for (int i = 0; i < w * h * 4; i++) px[i] = (uint8_t)(i * 37);
    const char *names[] = { "rgb.png", "grey.png", "rgba.png", "rgb.bmp", "rgb.tga", "rgb.jpg", "grey.jpg" };
    for (int k = 0; k < 7; k++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/image_folder", dir);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/image_folder/%s", dir, names[k]);
        FILE *f = fopen(path, "wb");
        if (f == NULL) die("make_seeds: cannot write %s", path);
        switch (k) {
            case 0: stbi_write_png_to_func(write_func, f, w, h, 3, px, w * 3); break;
            case 1: stbi_write_png_to_func(write_func, f, w, h, 1, px, w); break;
            case 2: stbi_write_png_to_func(write_func, f, w, h, 4, px, w * 4); break;
            case 3: stbi_write_bmp_to_func(write_func, f, w, h, 3, px); break;
            case 4: stbi_write_tga_to_func(write_func, f, w, h, 3, px); break;
            case 5: stbi_write_jpg_to_func(write_func, f, w, h, 3, px, 90); break;
            case 6: stbi_write_jpg_to_func(write_func, f, w, h, 1, px, 90); break;
        }
        fclose(f);
    }
    // a format stb_image reads but does not write: a 1x1 GIF (dino.c leaves PNM and HDR off)
    const uint8_t gif[] = { 'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0,
                            0x21, 0xf9, 4, 1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0, 0x3b };
    put(dir, "image_folder", "tiny.gif", gif, sizeof(gif));
}

int main(int argc, char **argv) {
    if (argc != 2) die("usage: fuzz/make_seeds DIR");
    mkdir(argv[1], 0755);
    checkpoint_seeds(argv[1]);
    cifar_seeds(argv[1]);
    idx_seeds(argv[1]);
    image_seeds(argv[1]);
    printf("seed corpus written to %s/{checkpoint,cifar,idx,image_folder}\n", argv[1]);
    return 0;
}
