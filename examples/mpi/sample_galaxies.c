/* sample_galaxies.c: MPI-parallel star sampling through the C API (include/gforge.h). Rank r of P opens its
 * device, loads the flow and draws N stars for each galaxy of its block of the galaxies the checkpoint
 * stores (galaxy g, counted from 0, with seed SEED + g), into its own PREFIX_r.npy (float32 [n_r, D],
 * physical units). The blocks are contiguous and in order, so the ranks' files concatenated in rank order
 * are, bit for bit, what one process writes, and each galaxy's stars are `gforge flow sample --galaxy ID
 * --stars N --seed SEED+g`.
 *
 *   cargo build --release -p gforge-capi
 *   mpicc -std=c99 -O2 examples/mpi/sample_galaxies.c -Iinclude -Ltarget/release -lgforge \
 *       -Wl,-rpath,$PWD/target/release -o sample_galaxies
 *   mpirun -np 4 ./sample_galaxies flow.npz cpu 100000 7 stars      # stars_0.npy ... stars_3.npy
 *
 * DEVICE is any gf_device_open spec; "cuda:*" or "wgpu:*" gives rank r the device r modulo the count of
 * that backend's devices (one GPU per rank on a multi-GPU node).
 */
#include "gforge.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank = 0;

/* Any failure: which call on which rank, its status and the library's message; then stop every rank. */
#define CHECK(call)                                                                                   \
    do {                                                                                              \
        gf_status s_ = (call);                                                                        \
        if (s_ != GF_OK) {                                                                            \
            fprintf(stderr, "rank %d: %s: %s: %s\n", rank, #call, gf_status_name(s_), gf_last_error()); \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                             \
        }                                                                                             \
    } while (0)

static void fail(const char* what) {
    fprintf(stderr, "rank %d: %s\n", rank, what);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* "cuda:*" -> "cuda:<rank mod count>" over the devices of that backend gf_list_devices reports. */
static void device_for_rank(const char* spec, char* out, size_t out_len) {
    size_t len = strlen(spec);
    if (len < 2 || strcmp(spec + len - 2, ":*") != 0) {
        snprintf(out, out_len, "%s", spec);
        return;
    }
    gf_device_list* list;
    size_t n, count = 0;
    CHECK(gf_list_devices(&list));
    CHECK(gf_device_list_len(list, &n));
    for (size_t i = 0; i < n; i++) {
        gf_device_info info;
        CHECK(gf_device_list_get(list, i, &info));
        if (strncmp(info.spec, spec, len - 1) == 0) count++;
    }
    gf_device_list_free(list);
    if (count == 0) fail("no device of the backend the device spec names");
    snprintf(out, out_len, "%.*s%zu", (int)(len - 1), spec, (size_t)rank % count);
}

/* A little-endian float32 .npy of shape [rows, cols] (format 1.0; numpy.load reads it). */
static void write_npy(const char* path, const float* data, size_t rows, size_t cols) {
    const uint16_t probe = 1;
    if (*(const unsigned char*)&probe != 1) fail("this writer assumes a little-endian host");
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows,
                     cols);
    size_t header = (size_t)n + 1;                 /* the dictionary and its newline */
    size_t pad = (64 - (10 + header) % 64) % 64;   /* magic, version and length make 10 bytes */
    size_t hlen = header + pad;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    FILE* f = fopen(path, "wb");
    int ok = f && fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)n, f) == (size_t)n;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, sizeof *data, rows * cols, f) == rows * cols;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fail("cannot write the output .npy");
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 6) {
        if (rank == 0) fprintf(stderr, "usage: %s FLOW.npz DEVICE N SEED PREFIX\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    size_t n = (size_t)strtoull(argv[3], NULL, 10);
    uint64_t seed = (uint64_t)strtoull(argv[4], NULL, 10);

    char spec[64];
    device_for_rank(argv[2], spec, sizeof spec);
    gf_device* device;
    gf_flow* flow;
    CHECK(gf_device_open(spec, &device));
    CHECK(gf_flow_load(argv[1], device, &flow));
    gf_device_free(device); /* the flow keeps its device */

    size_t d, c, galaxies;
    CHECK(gf_flow_dim(flow, &d));
    CHECK(gf_flow_cond_dim(flow, &c));
    CHECK(gf_flow_galaxy_count(flow, &galaxies));
    size_t lo = galaxies * (size_t)rank / (size_t)size, hi = galaxies * (size_t)(rank + 1) / (size_t)size;
    double* cond = malloc(c * sizeof *cond);
    float* stars = malloc(((hi - lo) * n * d + 1) * sizeof *stars);
    if (!cond || !stars) fail("out of memory");
    for (size_t g = lo; g < hi; g++) {
        const char* id;
        CHECK(gf_flow_galaxy_id(flow, g, &id));
        CHECK(gf_flow_galaxy_condition(flow, id, cond, c));
        CHECK(gf_flow_sample(flow, n, cond, c, seed + g, stars + (g - lo) * n * d, n * d));
    }
    char path[4096];
    snprintf(path, sizeof path, "%s_%d.npy", argv[5], rank);
    write_npy(path, stars, (hi - lo) * n, d);

    unsigned long long mine = (unsigned long long)((hi - lo) * n), total = 0;
    MPI_Reduce(&mine, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%d rank(s): %llu stars of %zu galaxies into %s_*.npy\n", size, total, galaxies, argv[5]);
    free(cond);
    free(stars);
    gf_flow_free(flow);
    MPI_Finalize();
    return 0;
}
