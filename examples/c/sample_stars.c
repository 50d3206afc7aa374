/* sample_stars.c: draw stars for one galaxy from a flow that `gforge flow train` wrote, score them, and
 * write them out, through the C API (include/gforge.h).
 *
 *   cargo build --release -p gforge-capi
 *   cc -std=c99 -O2 examples/c/sample_stars.c -Iinclude -Ltarget/release -lgforge -o sample_stars
 *   LD_LIBRARY_PATH=target/release ./sample_stars flow.npz cpu g003 100000 7 stars.f32 logp.f64
 *
 * Arguments: checkpoint, device ("auto", "cpu", "wgpu:0", "cuda:0"), galaxy id stored in the checkpoint,
 * number of stars, seed, and optionally files for the stars (raw float32 [n, D]) and their log q (raw
 * float64 [n]); the same seed gives the stars `gforge flow sample --galaxy ID --seed S` writes.
 */
#include "gforge.h"

#include <stdio.h>
#include <stdlib.h>

/* Any failure: which call, its status and the library's message; then leave. */
#define CHECK(call)                                                                             \
    do {                                                                                        \
        gf_status s_ = (call);                                                                  \
        if (s_ != GF_OK) {                                                                      \
            fprintf(stderr, "%s: %s: %s\n", #call, gf_status_name(s_), gf_last_error());       \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static void write_raw(const char* path, const void* data, size_t bytes) {
    FILE* f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

int main(int argc, char** argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s FLOW.npz DEVICE GALAXY N SEED [STARS.f32 [LOGP.f64]]\n", argv[0]);
        return 2;
    }
    const char* model_path = argv[1];
    const char* galaxy = argv[3];
    size_t n = (size_t)strtoull(argv[4], NULL, 10);
    uint64_t seed = (uint64_t)strtoull(argv[5], NULL, 10);
    if (gf_abi_version() != GF_ABI_VERSION) {
        fprintf(stderr, "gforge.h is ABI %d, the library %d\n", GF_ABI_VERSION, gf_abi_version());
        return 1;
    }

    gf_device* device;
    const char* device_name;
    CHECK(gf_device_open(argv[2], &device));
    CHECK(gf_device_name(device, &device_name));
    gf_flow* flow;
    CHECK(gf_flow_load(model_path, device, &flow));

    size_t d, c;
    CHECK(gf_flow_dim(flow, &d));
    CHECK(gf_flow_cond_dim(flow, &c));
    double* cond = malloc(c * sizeof *cond);
    float* stars = malloc(n * d * sizeof *stars);
    double* log_prob = malloc(n * sizeof *log_prob);
    if (!cond || (n && (!stars || !log_prob))) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    CHECK(gf_flow_galaxy_condition(flow, galaxy, cond, c));
    printf("gforge %s on %s; galaxy %s:", gf_version(), device_name, galaxy);
    for (size_t j = 0; j < c; j++) {
        const char* name;
        CHECK(gf_flow_cond_name(flow, j, &name));
        printf(" %s=%g", name, cond[j]);
    }
    printf("\n");
    gf_device_free(device); /* the flow keeps its device; device_name was the device's */

    CHECK(gf_flow_sample(flow, n, cond, c, seed, stars, n * d));
    CHECK(gf_flow_log_prob(flow, n, stars, n * d, cond, c, log_prob, n));

    /* Column means and the mean log q, physical units. */
    double mean_lp = 0;
    for (size_t i = 0; i < n; i++) mean_lp += log_prob[i] / (double)n;
    printf("%zu stars, mean log q = %.4f nats; column means:", n, mean_lp);
    for (size_t j = 0; j < d; j++) {
        const char* name;
        double m = 0;
        CHECK(gf_flow_column_name(flow, j, &name));
        for (size_t i = 0; i < n; i++) m += stars[i * d + j] / (double)n;
        printf(" %s=%.4g", name, m);
    }
    printf("\n");

    if (argc > 6) write_raw(argv[6], stars, n * d * sizeof *stars);
    if (argc > 7) write_raw(argv[7], log_prob, n * sizeof *log_prob);
    free(cond);
    free(stars);
    free(log_prob);
    gf_flow_free(flow);
    return 0;
}
