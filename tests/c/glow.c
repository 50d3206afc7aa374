/* glow.c: HIGlow's conditional Glow through the C API. Run by tests/capi.rs:
 *   glow GLOW.npz N MAPS.f32 CONDS.f64 OUT_DIR
 * draws 3 maps at (0.3, 0.8), temperature 0.7, seed 5 into OUT_DIR/samples.f32; scores the N maps [N, S, S]
 * of MAPS.f32 (raw float32) at their conditions CONDS.f64 ([N, 2] raw float64) into OUT_DIR/logp.f64;
 * writes the 5 x 5 grid likelihood of map 0 over 2 symmetries into OUT_DIR/post.f64 (the Omega_m axis,
 * the sigma_8 axis, then the grid); and checks that every misuse is a status with a message. One line per
 * check; exits 1 if any is wrong. */
#include "expect.h"
#include "gforge.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_all(const char* path, void* dst, size_t size, size_t n) {
    FILE* f = fopen(path, "rb");
    int ok = f && fread(dst, size, n, f) == n;
    if (f) fclose(f);
    return ok;
}

static int write_all(const char* dir, const char* name, const void* src, size_t size, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE* f = fopen(path, "wb");
    int ok = f && fwrite(src, size, n, f) == n;
    return (f ? fclose(f) == 0 : 0) && ok;
}

int main(int argc, char** argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s GLOW.npz N MAPS.f32 CONDS.f64 OUT_DIR\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)strtoull(argv[2], NULL, 10), channels, side;
    gf_device* dev;
    gf_glow* glow;
    EXPECT(gf_device_open("cpu", &dev), GF_OK, NULL);
    EXPECT(gf_glow_load(argv[1], dev, &glow), GF_OK, NULL);
    gf_device_free(dev); /* the Glow keeps its device */
    EXPECT(gf_glow_map_shape(glow, &channels, &side), GF_OK, NULL);
    size_t dim = channels * side * side;
    double range[4];
    EXPECT(gf_glow_cond_range(glow, range, 4), GF_OK, NULL);
    printf("maps %zu x %zu x %zu, Omega_m in [%g, %g], sigma_8 in [%g, %g]\n", channels, side, side, range[0],
           range[1], range[2], range[3]);

    float* samples = malloc(3 * dim * sizeof *samples);
    double theta[2] = {0.3, 0.8};
    EXPECT(gf_glow_sample(glow, 3, theta, 2, 0.7f, 5, samples, 3 * dim), GF_OK, NULL);

    float* maps = malloc(n * dim * sizeof *maps);
    double* conds = malloc(2 * n * sizeof *conds);
    double* logp = malloc(n * sizeof *logp);
    if (!read_all(argv[3], maps, sizeof *maps, n * dim) || !read_all(argv[4], conds, sizeof *conds, 2 * n)) {
        fprintf(stderr, "cannot read %zu maps and conditions\n", n);
        return 1;
    }
    EXPECT(gf_glow_log_prob(glow, n, maps, n * dim, conds, 2 * n, logp, n), GF_OK, NULL);

    const size_t g = 5;
    double post[2 * 5 + 5 * 5];
    EXPECT(gf_glow_posterior(glow, maps, dim, g, 2, post, post + g, g, post + 2 * g, g * g), GF_OK, NULL);

    /* Misuse: each a status and a message, nothing written where it matters. */
    double lp1;
    gf_glow* other = glow;
    EXPECT(gf_glow_load("/nonexistent/glow.npz", NULL, &other), GF_ERR_USAGE, "device");
    check("a failed load leaves its handle NULL", other == NULL);
    EXPECT(gf_glow_sample(NULL, 1, theta, 2, 1.0f, 0, samples, dim), GF_ERR_USAGE, "glow is NULL");
    EXPECT(gf_glow_sample(glow, 1, theta, 1, 1.0f, 0, samples, dim), GF_ERR_USAGE, "cond_len");
    EXPECT(gf_glow_sample(glow, 2, theta, 2, 1.0f, 0, samples, dim), GF_ERR_USAGE, "maps_len");
    EXPECT(gf_glow_sample(glow, 1, theta, 2, -1.0f, 0, samples, dim), GF_ERR_USAGE, "temperature");
    double bad_theta[2] = {NAN, 0.8};
    EXPECT(gf_glow_sample(glow, 1, bad_theta, 2, 1.0f, 0, samples, dim), GF_ERR_USAGE, "finite");
    float saved = maps[7];
    maps[7] = 0.0f;
    EXPECT(gf_glow_log_prob(glow, 1, maps, dim, conds, 2, &lp1, 1), GF_ERR_DATA, "value 7");
    maps[7] = saved;
    EXPECT(gf_glow_log_prob(glow, 1, maps, dim, conds, 2, &lp1, 2), GF_ERR_USAGE, "log_prob_len");
    EXPECT(gf_glow_posterior(glow, maps, dim, g, 9, post, post + g, g, post + 2 * g, g * g), GF_ERR_USAGE,
           "symmetries");
    EXPECT(gf_glow_posterior(glow, maps, dim, g, 1, post, post + g, g - 1, post + 2 * g, g * g), GF_ERR_USAGE,
           "axis_len");
    /* One map scored alone is the first of the batch. */
    EXPECT(gf_glow_log_prob(glow, 1, maps, dim, conds, 2, &lp1, 1), GF_OK, NULL);
    printf("one map alone %.6f, in the batch %.6f\n", lp1, logp[0]);
    check("one map alone scores as in the batch", fabs(lp1 - logp[0]) <= 1e-9 * fabs(logp[0]));

    if (!write_all(argv[5], "samples.f32", samples, sizeof *samples, 3 * dim) ||
        !write_all(argv[5], "logp.f64", logp, sizeof *logp, n) ||
        !write_all(argv[5], "post.f64", post, sizeof *post, 2 * g + g * g)) {
        fprintf(stderr, "cannot write into %s\n", argv[5]);
        return 1;
    }
    gf_glow_free(glow);
    gf_glow_free(NULL);
    free(samples);
    free(maps);
    free(conds);
    free(logp);
    printf("\n%d failure(s)\n", failures);
    return failures != 0;
}
