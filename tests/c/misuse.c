/* misuse.c: every bad argument a C program can pass gets a status and a message, never a crash; and the
 * per-star-condition calls agree with the one-condition calls. Run by tests/capi.rs:
 *   misuse FLOW.npz CORRUPT.npz MISSING.npz HAS_CUDA
 * One line per case; exits 1 if any case is wrong. */
#include "expect.h"
#include "gforge.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s FLOW.npz CORRUPT.npz MISSING.npz HAS_CUDA\n", argv[0]);
        return 2;
    }
    const char *good = argv[1], *corrupt = argv[2], *missing = argv[3];
    int has_cuda = atoi(argv[4]);

    /* Devices. */
    gf_device* dev = (gf_device*)1;
    EXPECT(gf_device_open(NULL, &dev), GF_ERR_USAGE, "spec is NULL");
    check("a failed open sets the handle to NULL", dev == NULL);
    EXPECT(gf_device_open("cpu", NULL), GF_ERR_USAGE, "device is NULL");
    EXPECT(gf_device_open("tpu", &dev), GF_ERR_USAGE, "bad device 'tpu'");
    EXPECT(gf_device_open("cuda:x", &dev), GF_ERR_USAGE, "bad device");
    EXPECT(gf_device_open("cuda:99", &dev), GF_ERR_DEVICE, "cuda");
    EXPECT(gf_device_open("wgpu:99", &dev), GF_ERR_DEVICE, "wgpu");
    if (!has_cuda) EXPECT(gf_device_open("cuda:0", &dev), GF_ERR_DEVICE, "no NVIDIA driver");
    EXPECT(gf_device_name(NULL, NULL), GF_ERR_USAGE, "NULL");

    gf_device_list* list;
    size_t len = 0;
    gf_device_info info;
    const char* notes;
    EXPECT(gf_list_devices(&list), GF_OK, NULL);
    EXPECT(gf_device_list_len(list, &len), GF_OK, NULL);
    EXPECT(gf_device_list_get(list, 0, &info), GF_OK, NULL);
    check("the first device is the CPU", strcmp(info.spec, "cpu") == 0 && info.name[0]);
    EXPECT(gf_device_list_get(list, len, &info), GF_ERR_USAGE, "device");
    EXPECT(gf_device_list_get(list, 0, NULL), GF_ERR_USAGE, "info is NULL");
    EXPECT(gf_device_list_notes(list, &notes), GF_OK, NULL);
    if (!has_cuda) check("the notes say why CUDA offers no device", strstr(notes, "cuda") != NULL);
    gf_device_list_free(list);

    EXPECT(gf_device_open("cpu", &dev), GF_OK, NULL);

    /* Checkpoints. */
    gf_flow* flow = (gf_flow*)1;
    EXPECT(gf_flow_load(missing, dev, &flow), GF_ERR_IO, "missing.npz");
    check("a failed load sets the handle to NULL", flow == NULL);
    EXPECT(gf_flow_load(corrupt, dev, &flow), GF_ERR_DATA, "corrupt.npz");
    EXPECT(gf_flow_load(NULL, dev, &flow), GF_ERR_USAGE, "path is NULL");
    EXPECT(gf_flow_load(good, NULL, &flow), GF_ERR_USAGE, "device is NULL");
    EXPECT(gf_flow_load(good, dev, NULL), GF_ERR_USAGE, "flow is NULL");
    gf_ae* ae;
    EXPECT(gf_ae_load(good, dev, &ae), GF_ERR_DATA, "it is a flow checkpoint");
    EXPECT(gf_flow_load(good, dev, &flow), GF_OK, NULL);
    gf_device_free(dev); /* the flow keeps its device */

    /* Queries. */
    size_t d = 0, c = 0;
    const char* name;
    EXPECT(gf_flow_dim(NULL, &d), GF_ERR_USAGE, "flow is NULL");
    EXPECT(gf_flow_dim(flow, NULL), GF_ERR_USAGE, "dim is NULL");
    EXPECT(gf_flow_dim(flow, &d), GF_OK, NULL);
    EXPECT(gf_flow_cond_dim(flow, &c), GF_OK, NULL);
    check("10 values per star, 4 conditions", d == 10 && c == 4);
    EXPECT(gf_flow_cond_name(flow, 0, &name), GF_OK, NULL);
    check("the first condition is log10_Mstars", strcmp(name, "log10_Mstars") == 0);
    EXPECT(gf_flow_column_name(flow, 9, &name), GF_OK, NULL);
    check("the last column is age", strcmp(name, "age") == 0);
    EXPECT(gf_flow_cond_name(flow, c, &name), GF_ERR_USAGE, "condition 4 of 4");
    EXPECT(gf_flow_column_name(flow, d, &name), GF_ERR_USAGE, "column 10 of 10");

    double cond[4], nan_cond[4];
    EXPECT(gf_flow_galaxy_condition(flow, "nope", cond, 4), GF_ERR_USAGE, "'nope'");
    EXPECT(gf_flow_galaxy_condition(flow, "g003", cond, 3), GF_ERR_USAGE, "cond_len");
    EXPECT(gf_flow_galaxy_condition(flow, "g003", NULL, 4), GF_ERR_USAGE, "cond is NULL");
    EXPECT(gf_flow_galaxy_condition(flow, "g003", cond, 4), GF_OK, NULL);
    memcpy(nan_cond, cond, sizeof cond);
    nan_cond[2] = NAN;

    /* Sampling. */
    enum { N = 64 };
    static float stars[N * 10], rows_stars[N * 10], aligned[N * 10 + 1];
    static double conds[N * 4], lp[N], rows_lp[N];
    EXPECT(gf_flow_sample(flow, N, cond, 5, 1, stars, N * 10), GF_ERR_USAGE, "cond_len holds 5");
    EXPECT(gf_flow_sample(flow, N, NULL, 4, 1, stars, N * 10), GF_ERR_USAGE, "cond is NULL");
    EXPECT(gf_flow_sample(flow, N, nan_cond, 4, 1, stars, N * 10), GF_ERR_USAGE, "tau10");
    EXPECT(gf_flow_sample(flow, N, cond, 4, 1, NULL, N * 10), GF_ERR_USAGE, "stars is NULL");
    EXPECT(gf_flow_sample(flow, N, cond, 4, 1, stars, N * 10 - 1), GF_ERR_USAGE, "stars_len holds 639");
    EXPECT(gf_flow_sample(flow, N, cond, 4, 1, (float*)((char*)aligned + 1), N * 10), GF_ERR_USAGE, "aligned");
    EXPECT(gf_flow_sample(flow, SIZE_MAX, cond, 4, 1, stars, N * 10), GF_ERR_USAGE, "overflow");
    EXPECT(gf_flow_sample(flow, 0, cond, 4, 1, NULL, 0), GF_OK, NULL);
    EXPECT(gf_flow_sample(flow, N, cond, 4, 1, stars, N * 10), GF_OK, NULL);
    for (int i = 0; i < N; i++) memcpy(conds + 4 * i, cond, sizeof cond);
    EXPECT(gf_flow_sample_rows(flow, N, conds, 4, 1, rows_stars, N * 10), GF_ERR_USAGE, "conds_len holds 4");
    EXPECT(gf_flow_sample_rows(flow, N, conds, N * 4, 1, rows_stars, N * 10), GF_OK, NULL);
    check("a condition per star, all equal, draws what one condition draws",
          memcmp(stars, rows_stars, sizeof stars) == 0);

    /* Log-probabilities. */
    EXPECT(gf_flow_log_prob(flow, N, stars, N * 10, cond, 4, lp, N - 1), GF_ERR_USAGE, "log_prob_len");
    EXPECT(gf_flow_log_prob(flow, N, stars, N * 10 + 1, cond, 4, lp, N), GF_ERR_USAGE, "stars_len");
    EXPECT(gf_flow_log_prob(flow, N, stars, N * 10, cond, 4, NULL, N), GF_ERR_USAGE, "log_prob is NULL");
    EXPECT(gf_flow_log_prob_rows(flow, N, stars, N * 10, conds, 4, lp, N), GF_ERR_USAGE, "conds_len");
    EXPECT(gf_flow_log_prob(flow, N, stars, N * 10, cond, 4, lp, N), GF_OK, NULL);
    EXPECT(gf_flow_log_prob_rows(flow, N, stars, N * 10, conds, N * 4, rows_lp, N), GF_OK, NULL);
    check("log q with a condition per star, all equal, is log q with one", memcmp(lp, rows_lp, sizeof lp) == 0);
    int finite = 1;
    for (int i = 0; i < N; i++) finite &= isfinite(lp[i]);
    check("log q of drawn stars is finite", finite);
    stars[3 * 10 + 7] = NAN;
    EXPECT(gf_flow_log_prob(flow, N, stars, N * 10, cond, 4, lp, N), GF_ERR_DATA, "star 3 column 7");

    /* Free accepts NULL; names of statuses. */
    gf_flow_free(NULL);
    gf_device_free(NULL);
    gf_device_list_free(NULL);
    gf_ae_free(NULL);
    check("status names", strcmp(gf_status_name(GF_ERR_OOM), "GF_ERR_OOM") == 0 &&
                              strcmp(gf_status_name(99), "GF_(unknown status)") == 0);
    gf_flow_free(flow);

    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
