/* gforge.h: the C API of GalacticForge (C99; usable from C++).
 *
 * Load the star-particle flows and the image autoencoder that `gforge` trains, sample stars and score
 * them on the CPU, a CUDA GPU or any WGPU GPU. Build the library with `cargo build --release -p
 * gforge-capi` (target/release/libgforge.so and libgforge.a) and link with -lgforge.
 *
 * Conventions
 * - Handles are opaque; each gf_*_load / gf_*_open / gf_list_devices has its gf_*_free, which accepts NULL.
 * - Every call that can fail returns a gf_status; GF_OK is 0. On failure gf_last_error() gives the
 *   message, output buffers hold unspecified values and a handle output is set to NULL. No call ever
 *   aborts the process on a bad argument: NULL pointers, misaligned buffers, lengths that do not match
 *   the shape, missing or corrupt checkpoints and conditions of the wrong length are GF_ERR_* statuses
 *   (a panic inside the library is caught and reported as GF_ERR_INTERNAL).
 * - Memory is the caller's: arrays are row-major, float32 for stars, latents and images, double for
 *   conditions and log-probabilities. Every array comes with its length in elements (not bytes), which
 *   must equal what the shape needs; a pointer may be NULL only where its length is 0.
 * - Strings returned through `const char**` belong to the handle they came from and stay valid until it
 *   is freed; gf_version(), gf_status_name() and gf_last_error() return strings the library owns.
 *
 * Threads
 * - gf_last_error() is per thread: the message of this thread's last failed call.
 * - A gf_device, gf_flow or gf_ae may be used by any number of threads at once (every call but its
 *   free): loaded models are read-only, and each call's result depends only on its own arguments (the
 *   seed), never on other calls, so N threads give the same numbers as one (tests/capi.rs checks it).
 *   On a GPU the calls share the device's queue, so threads add no GPU throughput.
 * - Freeing a handle while another thread uses it is undefined, as for any C object.
 * - Devices are opened once per process and shared: two gf_device handles of "wgpu:0" are one adapter.
 *   A model keeps its device alive, so its gf_device may be freed right after loading.
 */
#ifndef GFORGE_H
#define GFORGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration below changes; compare with gf_abi_version() at run time. */
#define GF_ABI_VERSION 1

typedef enum gf_status {
    GF_OK = 0,
    GF_ERR_USAGE = 1,    /* a bad argument: NULL, wrong length, unknown device spec or galaxy id */
    GF_ERR_SHAPE = 2,    /* operands whose shapes do not fit (inside the model) */
    GF_ERR_IO = 3,       /* a file that cannot be read or written (missing checkpoint) */
    GF_ERR_DATA = 4,     /* bytes that were read but are unusable: corrupt or mismatched checkpoint,
                            non-finite input values */
    GF_ERR_DEVICE = 5,   /* a device that is absent, cannot start or failed; a kernel that failed */
    GF_ERR_OOM = 6,      /* a GPU allocation that did not fit */
    GF_ERR_NUMERIC = 7,  /* a computation that produced a non-finite value where one is needed */
    GF_ERR_INTERNAL = 8  /* a bug in the library, caught at the boundary: please report it */
} gf_status;

typedef struct gf_device gf_device;
typedef struct gf_device_list gf_device_list;
typedef struct gf_flow gf_flow;
typedef struct gf_ae gf_ae;
typedef struct gf_glow gf_glow;

/* ---- library ---------------------------------------------------------------------------------- */

const char* gf_version(void);              /* "0.1.0" */
int gf_abi_version(void);                  /* GF_ABI_VERSION of the header the library was built with */
const char* gf_status_name(int status);    /* "GF_ERR_DEVICE" */
const char* gf_last_error(void);           /* "" before this thread's first failure */

/* ---- devices ---------------------------------------------------------------------------------- */

/* One line of `gforge devices`; its strings belong to the list. */
typedef struct gf_device_info {
    const char* spec;     /* what gf_device_open takes: "cpu", "wgpu:1", "cuda:0" */
    const char* name;     /* the CPU's model or the GPU's name */
    const char* backend;  /* "cpu", "cuda", "wgpu/vulkan", "wgpu/gl", ... */
    const char* kind;     /* "16 threads", "sm_90", "DiscreteGpu", "Cpu" (a software adapter), ... */
    uint64_t memory;      /* bytes, 0 when unknown */
    int f16;              /* 1 when the device supports half precision */
} gf_device_info;

/* The devices this machine offers, without opening them. A machine without a GPU lists the CPU alone;
 * gf_device_list_notes says why a backend offers none ("cuda: no NVIDIA driver ..."), one per line. */
gf_status gf_list_devices(gf_device_list** list);
gf_status gf_device_list_len(const gf_device_list* list, size_t* len);
gf_status gf_device_list_get(const gf_device_list* list, size_t i, gf_device_info* info);
gf_status gf_device_list_notes(const gf_device_list* list, const char** notes);
void gf_device_list_free(gf_device_list* list);

/* spec: "auto" (CUDA, else a hardware WGPU adapter, else the CPU), "cpu", "wgpu", "wgpu:N", "cuda",
 * "cuda:N". A device that is absent is GF_ERR_DEVICE with the reason ("no NVIDIA driver ..."). */
gf_status gf_device_open(const char* spec, gf_device** device);
gf_status gf_device_name(const gf_device* device, const char** name);  /* "cuda:0 (NVIDIA H200)" */
void gf_device_free(gf_device* device);

/* ---- star-particle flows ---------------------------------------------------------------------- */

/* A checkpoint written by `gforge flow train` (any flow: nsf, maf, nice, sospf), with the standardisation
 * it was trained with, so stars and conditions are in physical units throughout. */
gf_status gf_flow_load(const char* path, const gf_device* device, gf_flow** flow);
void gf_flow_free(gf_flow* flow);

/* D, the values per star, and their names in order: x, y, z [kpc], vx, vy, vz [km/s], Z (metal mass
 * fraction), Fe/H, O/Fe [dex], age [Gyr]. */
gf_status gf_flow_dim(const gf_flow* flow, size_t* dim);
gf_status gf_flow_column_name(const gf_flow* flow, size_t i, const char** name);

/* C, the values per condition, and their names in the order every call takes them: log10_Mstars,
 * tau50, tau10, Z_av, then any extra conditions the flow was trained with (autoencoder latents z0, ...). */
gf_status gf_flow_cond_dim(const gf_flow* flow, size_t* cond_dim);
gf_status gf_flow_cond_name(const gf_flow* flow, size_t i, const char** name);

/* The galaxies whose conditions the checkpoint stores (those it was trained and validated on), by id,
 * and one's condition (cond_len = C), as `gforge flow sample --galaxy ID` uses it. */
gf_status gf_flow_galaxy_count(const gf_flow* flow, size_t* count);
gf_status gf_flow_galaxy_id(const gf_flow* flow, size_t i, const char** id);
gf_status gf_flow_galaxy_condition(const gf_flow* flow, const char* id, double* cond, size_t cond_len);

/* n stars [n, D] drawn from q(. | c) in physical units into stars (stars_len = n D), for one condition
 * (cond_len = C) or, with _rows, one condition per star (conds_len = n C). The same seed gives the same
 * stars whatever n is split into internally, and bit for bit what `gforge flow sample --seed S` writes
 * on the same device (it draws through the same code). */
gf_status gf_flow_sample(const gf_flow* flow, size_t n, const double* cond, size_t cond_len, uint64_t seed,
                         float* stars, size_t stars_len);
gf_status gf_flow_sample_rows(const gf_flow* flow, size_t n, const double* conds, size_t conds_len,
                              uint64_t seed, float* stars, size_t stars_len);

/* log q(s | c) in nats of each of n stars [n, D] (stars_len = n D) into log_prob (log_prob_len = n): the
 * density over the physical units above, i.e. the flow's density of the standardised star plus the
 * standardisation's log-Jacobian -sum_j log sigma_j, as the held-out NLL of `gforge flow eval`. One
 * condition (cond_len = C) or, with _rows, one per star (conds_len = n C). A non-finite star value is
 * GF_ERR_DATA. */
gf_status gf_flow_log_prob(const gf_flow* flow, size_t n, const float* stars, size_t stars_len,
                           const double* cond, size_t cond_len, double* log_prob, size_t log_prob_len);
gf_status gf_flow_log_prob_rows(const gf_flow* flow, size_t n, const float* stars, size_t stars_len,
                                const double* conds, size_t conds_len, double* log_prob, size_t log_prob_len);

/* ---- image autoencoder ------------------------------------------------------------------------ */

/* A checkpoint written by `gforge ae train`. Images are [n, 3, S, S], channel-major, values in [0, 1],
 * S = gf_ae_image_size (resize your images to it); latents are [n, L], L = gf_ae_latent_dim, the values
 * `gforge ae encode` writes to latents.csv and a flow trained with them takes as conditions z0, z1, ... */
gf_status gf_ae_load(const char* path, const gf_device* device, gf_ae** ae);
void gf_ae_free(gf_ae* ae);
gf_status gf_ae_image_size(const gf_ae* ae, size_t* side);
gf_status gf_ae_latent_dim(const gf_ae* ae, size_t* latent_dim);
gf_status gf_ae_encode(const gf_ae* ae, size_t n, const float* images, size_t images_len, float* latents,
                       size_t latents_len);
gf_status gf_ae_decode(const gf_ae* ae, size_t n, const float* latents, size_t latents_len, float* images,
                       size_t images_len);

/* ---- HIGlow's conditional Glow ----------------------------------------------------------------- */

/* A checkpoint written by `gforge glow train`. Maps are [n, C, S, S] (C = 1 for HI maps: [n, S, S]),
 * row-major, in the data's own units (positive column densities, as CAMELS' maps .npy hold them: the model
 * log10's and scales them itself); a condition is the physical (Omega_m, sigma_8) (cond_len = 2). */
gf_status gf_glow_load(const char* path, const gf_device* device, gf_glow** glow);
void gf_glow_free(gf_glow* glow);
gf_status gf_glow_map_shape(const gf_glow* glow, size_t* channels, size_t* side);
/* The training range: range = {Omega_m lo, Omega_m hi, sigma_8 lo, sigma_8 hi} (range_len = 4). */
gf_status gf_glow_cond_range(const gf_glow* glow, double* range, size_t range_len);

/* n maps drawn from q(. | theta) at temperature `temperature` (1: the model itself) into maps (maps_len =
 * n C S S), bit for bit what `gforge glow sample --temp T --seed S` writes on the same device. */
gf_status gf_glow_sample(const gf_glow* glow, size_t n, const double* cond, size_t cond_len, float temperature,
                         uint64_t seed, float* maps, size_t maps_len);

/* log q(map | theta) in nats over the data's units (the flow's density of the scaled map plus the scaling's
 * log-Jacobian, as `gforge glow eval` reports it) of each of n maps (maps_len = n C S S), one condition
 * per map (conds_len = 2 n), into log_prob (log_prob_len = n). A value that is not finite and positive is
 * GF_ERR_DATA. */
gf_status gf_glow_log_prob(const gf_glow* glow, size_t n, const float* maps, size_t maps_len, const double* conds,
                           size_t conds_len, double* log_prob, size_t log_prob_len);

/* The likelihood of one map (map_len = C S S) on a grid x grid grid over the training range, as `gforge glow
 * infer --grid G --symmetries S` computes it (symmetries 1 to 8: the flow averaged over that many symmetries
 * of the square): the grid's Omega_m and sigma_8 values (axis_len = grid each, ends included) and
 * log_like[i * grid + j] = log q(map | omega_m[i], sigma_8[j]) (log_like_len = grid^2). Under a uniform prior
 * the posterior is its softmax. */
gf_status gf_glow_posterior(const gf_glow* glow, const float* map, size_t map_len, size_t grid, size_t symmetries,
                            double* omega_m, double* sigma_8, size_t axis_len, double* log_like,
                            size_t log_like_len);

#ifdef __cplusplus
}
#endif

#endif /* GFORGE_H */
