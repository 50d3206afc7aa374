// sample_threads.cpp: one flow shared by several threads, each drawing and scoring stars for its own
// galaxies, through the C API from C++ (RAII handles, exceptions), checked against one thread doing the
// same work: the numbers must be equal bit for bit, since a call depends only on its arguments.
//
//   cargo build --release -p gforge-capi
//   c++ -std=c++17 -O2 examples/cpp/sample_threads.cpp -Iinclude -Ltarget/release -lgforge -pthread -o sample_threads
//   LD_LIBRARY_PATH=target/release ./sample_threads flow.npz cpu 4 20000
#include "gforge.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gf {

struct Error : std::runtime_error {
    gf_status status;
    Error(gf_status s, const std::string& what) : std::runtime_error(what), status(s) {}
};

inline void check(gf_status s) {
    if (s != GF_OK) throw Error(s, std::string(gf_status_name(s)) + ": " + gf_last_error());
}

using Device = std::unique_ptr<gf_device, decltype(&gf_device_free)>;
using Flow = std::unique_ptr<gf_flow, decltype(&gf_flow_free)>;

inline Device open_device(const std::string& spec) {
    gf_device* d = nullptr;
    check(gf_device_open(spec.c_str(), &d));
    return Device(d, gf_device_free);
}

inline Flow load_flow(const std::string& path, const gf_device* device) {
    gf_flow* f = nullptr;
    check(gf_flow_load(path.c_str(), device, &f));
    return Flow(f, gf_flow_free);
}

inline size_t dim(const gf_flow* f) {
    size_t d;
    check(gf_flow_dim(f, &d));
    return d;
}

inline std::vector<double> galaxy_condition(const gf_flow* f, const std::string& id) {
    size_t c;
    check(gf_flow_cond_dim(f, &c));
    std::vector<double> cond(c);
    check(gf_flow_galaxy_condition(f, id.c_str(), cond.data(), cond.size()));
    return cond;
}

inline std::vector<std::string> galaxies(const gf_flow* f) {
    size_t n;
    check(gf_flow_galaxy_count(f, &n));
    std::vector<std::string> ids;
    for (size_t i = 0; i < n; i++) {
        const char* id;
        check(gf_flow_galaxy_id(f, i, &id));
        ids.emplace_back(id);
    }
    return ids;
}

inline std::vector<float> sample(const gf_flow* f, size_t n, const std::vector<double>& cond, uint64_t seed) {
    std::vector<float> stars(n * dim(f));
    check(gf_flow_sample(f, n, cond.data(), cond.size(), seed, stars.data(), stars.size()));
    return stars;
}

inline std::vector<double> log_prob(const gf_flow* f, const std::vector<float>& stars,
                                    const std::vector<double>& cond) {
    size_t n = stars.size() / dim(f);
    std::vector<double> lp(n);
    check(gf_flow_log_prob(f, n, stars.data(), stars.size(), cond.data(), cond.size(), lp.data(), lp.size()));
    return lp;
}

}  // namespace gf

struct Result {
    std::vector<float> stars;
    std::vector<double> log_prob;
};

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s FLOW.npz DEVICE THREADS N\n", argv[0]);
        return 2;
    }
    try {
        const size_t threads = std::strtoul(argv[3], nullptr, 10), n = std::strtoul(argv[4], nullptr, 10);
        gf::Device device = gf::open_device(argv[2]);
        gf::Flow flow = gf::load_flow(argv[1], device.get());
        const std::vector<std::string> ids = gf::galaxies(flow.get());
        if (ids.empty() || threads == 0) throw std::runtime_error("no galaxy in the checkpoint, or no thread");

        // Job k: galaxy k mod G, seed 1000 + k; three jobs per thread.
        const size_t jobs = 3 * threads;
        auto run = [&](size_t k) {
            std::vector<double> cond = gf::galaxy_condition(flow.get(), ids[k % ids.size()]);
            Result r;
            r.stars = gf::sample(flow.get(), n, cond, 1000 + k);
            r.log_prob = gf::log_prob(flow.get(), r.stars, cond);
            return r;
        };
        std::vector<Result> serial, parallel(jobs);
        for (size_t k = 0; k < jobs; k++) serial.push_back(run(k));

        // All threads start together, so their calls overlap inside the library.
        std::atomic<bool> go(false);
        std::vector<std::exception_ptr> failed(threads);
        std::vector<std::thread> pool;
        for (size_t t = 0; t < threads; t++) {
            pool.emplace_back([&, t] {
                while (!go.load()) std::this_thread::yield();
                try {
                    for (size_t k = t; k < jobs; k += threads) parallel[k] = run(k);
                } catch (...) {
                    failed[t] = std::current_exception();
                }
            });
        }
        go.store(true);
        for (auto& th : pool) th.join();
        for (auto& e : failed)
            if (e) std::rethrow_exception(e);

        for (size_t k = 0; k < jobs; k++) {
            if (parallel[k].stars != serial[k].stars || parallel[k].log_prob != serial[k].log_prob) {
                std::fprintf(stderr, "job %zu (galaxy %s): %zu threads differ from one\n", k,
                             ids[k % ids.size()].c_str(), threads);
                return 1;
            }
        }
        std::printf("%zu threads, %zu jobs of %zu stars over %zu galaxies: the same stars and log q as one thread\n",
                    threads, jobs, n, ids.size());
        return 0;
    } catch (const gf::Error& e) {
        std::fprintf(stderr, "gforge: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
