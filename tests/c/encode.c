/* encode.c: the autoencoder through the C API. Run by tests/capi.rs:
 *   encode AE.npz N IMAGES.f32 LATENTS.f32
 * reads N images [N, 3, S, S] (raw float32), writes their latents [N, L] (raw float32), and checks that
 * decoding them gives finite images in [0, 1]. */
#include "gforge.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                             \
    do {                                                                                        \
        gf_status s_ = (call);                                                                  \
        if (s_ != GF_OK) {                                                                      \
            fprintf(stderr, "%s: %s: %s\n", #call, gf_status_name(s_), gf_last_error());       \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

int main(int argc, char** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s AE.npz N IMAGES.f32 LATENTS.f32\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)strtoull(argv[2], NULL, 10), side, l;
    gf_device* dev;
    gf_ae* ae;
    CHECK(gf_device_open("cpu", &dev));
    CHECK(gf_ae_load(argv[1], dev, &ae));
    gf_device_free(dev);
    CHECK(gf_ae_image_size(ae, &side));
    CHECK(gf_ae_latent_dim(ae, &l));
    size_t px = n * 3 * side * side;
    float* images = malloc(px * sizeof *images);
    float* decoded = malloc(px * sizeof *decoded);
    float* latents = malloc(n * l * sizeof *latents);
    FILE* f = fopen(argv[3], "rb");
    if (!images || !decoded || !latents || !f || fread(images, sizeof *images, px, f) != px) {
        fprintf(stderr, "cannot read %zu images of %zu x %zu from %s\n", n, side, side, argv[3]);
        return 1;
    }
    fclose(f);
    CHECK(gf_ae_encode(ae, n, images, px, latents, n * l));
    CHECK(gf_ae_decode(ae, n, latents, n * l, decoded, px));
    for (size_t i = 0; i < px; i++) {
        if (!(decoded[i] >= 0.0f && decoded[i] <= 1.0f)) {
            fprintf(stderr, "decoded pixel %zu is %g, outside [0, 1]\n", i, decoded[i]);
            return 1;
        }
    }
    f = fopen(argv[4], "wb");
    if (!f || fwrite(latents, sizeof *latents, n * l, f) != n * l || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[4]);
        return 1;
    }
    printf("%zu images of %zu x %zu -> %zu latents each\n", n, side, side, l);
    gf_ae_free(ae);
    free(images);
    free(decoded);
    free(latents);
    return 0;
}
