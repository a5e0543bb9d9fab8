// The fused fp32 loops of the inference forward (src/backbone/cpu_kernels.h)
// against the formulas evaluated in double here, and the inference forward
// (fused loops, attention that skips masked key blocks) against the training
// forward, which runs torch's composite ops over the unfused projections.
#include "test_support.h"

#include <cmath>
#include <cstring>
#include <thread>
#include <limits>
#include <random>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "backbone/cpu_kernels.h"
#include "backbone/parallel_parts.h"
#include "stepverify/model.h"
#include "stepverify/runtime.h"
#include "stepverify/transformer.h"

using namespace stepverify;

// Each instruction set's build of the loops is called directly too (the
// library calls the one its CPU check picks).
namespace {

struct KernelSet {
  const char* name;
  void (*rms_norm)(const float*, const float*, float*, int64_t, int64_t, float);
  void (*silu_mul)(const float*, float*, int64_t, int64_t);
  void (*rope)(const float*, const float*, const float*, float*, int64_t);
  void (*gemv_rows)(const float*, int64_t, int64_t, const float*, const float*, float*, int64_t, int64_t, int64_t);
  void (*gemv_rows_bf16)(const float*, int64_t, int64_t, const uint16_t*, const float*, float*, int64_t, int64_t,
                         int64_t);
  float (*exp)(float);
};

#define KERNEL_SET(isa)                                                                                            \
  KernelSet {                                                                                                      \
#isa, detail::isa::rms_norm_f32, detail::isa::silu_mul_f32, detail::isa::rope_f32, detail::isa::gemv_rows_f32, \
        detail::isa::gemv_rows_bf16, detail::isa::exp_f32                                                          \
  }

// The dispatched loops, then every build this CPU can run.
std::vector<KernelSet> kernel_sets() {
  namespace detail = stepverify::detail;
  std::vector<KernelSet> sets = {{"dispatched", detail::rms_norm_f32, detail::silu_mul_f32, detail::rope_f32,
                                  detail::gemv_rows_f32, detail::gemv_rows_bf16, detail::exp_f32},
                                 KERNEL_SET(base)};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) sets.push_back(KERNEL_SET(avx2));
  if (__builtin_cpu_supports("avx512f")) sets.push_back(KERNEL_SET(avx512));
#endif
  return sets;
}

std::vector<float> uniform(size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

double rel_err(double got, double want) { return std::abs(got - want) / std::max(1.0, std::abs(want)); }

}  // namespace

TEST_CASE("exp_f32 is within 2 float ulps of exp on [-87, 88]; clamps outside; NaN stays NaN", "[parity]") {
  for (const auto& k : kernel_sets()) {
    INFO(k.name);
    double worst = 0;
    for (double x = -87.0; x <= 88.0; x += 0.00731) {
      const double want = std::exp(static_cast<double>(static_cast<float>(x)));
      worst = std::max(worst, std::abs(k.exp(static_cast<float>(x)) - want) / want);
    }
    CHECK(worst < 2.5e-7);
    CHECK(k.exp(0.0f) == 1.0f);
    CHECK(k.exp(1000.0f) == k.exp(88.0f));  // clamped, finite
    CHECK(std::isfinite(k.exp(1000.0f)));
    CHECK(k.exp(-1000.0f) > 0.0f);
    CHECK(k.exp(-1000.0f) < 1e-37f);
    CHECK(std::isnan(k.exp(std::numeric_limits<float>::quiet_NaN())));
  }
}

TEST_CASE("gemv_rows_f32 and _bf16 equal x W^T + b summed in double, for every row count and ragged widths",
          "[parity]") {
  // bf16 weights as raw bits: a float's upper half (the float rounded to
  // nearest even); the reference uses the values those bits hold.
  auto to_bf16 = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
  };
  auto from_bf16 = [](uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  };
  for (const auto& kset : kernel_sets()) {
    INFO(kset.name);
    // m past 8 takes a second pass over the weights; n not a multiple of the
    // weight rows per pass (4 or 2) leaves single rows; k % 16 a scalar tail.
    for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 11}) {
      for (int64_t k : {1, 15, 16, 17, 100, 1539}) {
        for (int64_t n : {1, 3, 4, 9}) {
          INFO("m " << m << " k " << k << " n " << n);
          const auto x = uniform(m * k, -2, 2, 7 + m), b = uniform(n, -3, 3, 5);
          const auto w32 = uniform(n * k, -1, 1, 11 + k);
          std::vector<uint16_t> w16(w32.size());
          std::vector<float> w16f(w32.size());
          for (size_t i = 0; i < w32.size(); ++i) w16f[i] = from_bf16(w16[i] = to_bf16(w32[i]));
          for (int bits : {32, 16}) {
            INFO((bits == 32 ? "fp32" : "bf16") << " weights");
            const auto& w = bits == 32 ? w32 : w16f;
            // Columns [j0, j1) of x W^T (+ bias) into a fresh all-NaN y.
            auto product = [&](const float* bias, int64_t j0, int64_t j1) {
              std::vector<float> out(m * n, std::nanf(""));
              if (bits == 32)
                kset.gemv_rows(x.data(), m, k, w32.data(), bias, out.data(), n, j0, j1);
              else
                kset.gemv_rows_bf16(x.data(), m, k, w16.data(), bias, out.data(), n, j0, j1);
              return out;
            };
            const auto y = product(b.data(), 0, n), y0 = product(nullptr, 0, n);
            double worst = 0, worst0 = 0;
            std::vector<double> want(m * n), tols(m * n);  // x W^T + b in double, and its tolerance
            for (int64_t r = 0; r < m; ++r)
              for (int64_t j = 0; j < n; ++j) {
                double dot = 0, mag = 0;
                for (int64_t c = 0; c < k; ++c) {
                  dot += static_cast<double>(x[r * k + c]) * w[j * k + c];
                  mag += std::abs(static_cast<double>(x[r * k + c]) * w[j * k + c]);
                }
                // Float rounding of a k-term sum: bounded by k eps sum|x w|; 1e-6 relative to the magnitude is far
                // tighter than that bound and still far looser than any indexing error.
                const double tol = 1e-6 * (mag + 1);
                want[r * n + j] = dot + b[j];
                tols[r * n + j] = tol;
                worst = std::max(worst, std::abs(y[r * n + j] - want[r * n + j]) / tol);
                worst0 = std::max(worst0, std::abs(y0[r * n + j] - dot) / tol);
              }
            CHECK(worst <= 1.0);
            CHECK(worst0 <= 1.0);
            // Columns [j0, j1) alone (threads split a product so): within the
            // same tolerance (a column may fall in a block of another width,
            // which compilers may contract differently), the others untouched.
            for (auto [j0, j1] : {std::pair<int64_t, int64_t>{0, n / 2}, {n / 2, n}, {1, n - 1}}) {
              if (j0 >= j1) continue;
              INFO("columns " << j0 << ".." << j1);
              const auto ys = product(b.data(), j0, j1);
              int wrong = 0;
              for (int64_t r = 0; r < m; ++r)
                for (int64_t j = 0; j < n; ++j) {
                  const size_t i = r * n + j;
                  wrong += (j >= j0 && j < j1) ? !(std::abs(ys[i] - want[i]) <= tols[i]) : !std::isnan(ys[i]);
                }
              CHECK(wrong == 0);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("rms_norm_f32 equals HF's RMSNorm formula for widths around the vector length", "[parity]") {
  for (const auto& k : kernel_sets()) {
    INFO(k.name);
    for (int64_t n : {1, 7, 15, 16, 17, 33, 1539}) {
      const int64_t rows = 3;
      auto x = uniform(rows * n, -3, 3, 1 + n), w = uniform(n, 0.5f, 1.5f, 2 + n);
      std::vector<float> out(rows * n);
      k.rms_norm(x.data(), w.data(), out.data(), rows, n, 1e-6f);
      double worst = 0;
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t j = 0; j < n; ++j) ss += double(x[r * n + j]) * x[r * n + j];
        const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
        for (int64_t j = 0; j < n; ++j) worst = std::max(worst, rel_err(out[r * n + j], w[j] * x[r * n + j] * inv));
      }
      INFO("n = " << n);
      CHECK(worst < 2e-6);
    }
    // In place, as the header allows.
    auto x = uniform(40, -1, 1, 9), w = uniform(40, 1, 1, 9), copy = x;
    std::vector<float> out(40);
    k.rms_norm(copy.data(), w.data(), out.data(), 1, 40, 1e-5f);
    k.rms_norm(x.data(), w.data(), x.data(), 1, 40, 1e-5f);
    CHECK(x == out);
  }
}

TEST_CASE("silu_mul_f32 equals silu(gate) * up, tails and extreme gates included", "[parity]") {
  for (const auto& k : kernel_sets()) {
    INFO(k.name);
    for (int64_t n : {1, 5, 16, 31, 48, 1377}) {
      const int64_t rows = 2;
      auto gu = uniform(rows * 2 * n, -12, 12, 3 + n);
      gu[0] = -200.0f;  // exp(200) overflows: silu is -0
      if (n > 1) gu[1] = 95.0f;
      std::vector<float> out(rows * n);
      k.silu_mul(gu.data(), out.data(), rows, n);
      double worst = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < n; ++j) {
          const double g = gu[r * 2 * n + j], u = gu[r * 2 * n + n + j];
          worst = std::max(worst, rel_err(out[r * n + j], g / (1.0 + std::exp(-g)) * u));
        }
      INFO("n = " << n);
      CHECK(worst < 1e-6);
    }
  }
}

TEST_CASE("rope_f32 rotates each half as HF's rotate_half does", "[parity]") {
  for (const auto& k : kernel_sets()) {
    INFO(k.name);
    for (int64_t d : {2, 8, 64, 80, 128}) {
      auto x = uniform(d, -2, 2, 4 + d), ang = uniform(d / 2, -7, 7, 5 + d);
      std::vector<float> c(d), s(d), out(d);
      for (int64_t j = 0; j < d; ++j) {
        c[j] = std::cos(ang[j % (d / 2)]);
        s[j] = std::sin(ang[j % (d / 2)]);
      }
      k.rope(x.data(), c.data(), s.data(), out.data(), d);
      const int64_t h = d / 2;
      double worst = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double rot = j < h ? -double(x[j + h]) : double(x[j - h]);
        worst = std::max(worst, std::abs(out[j] - (double(x[j]) * c[j] + rot * s[j])));
      }
      INFO("d = " << d);
      CHECK(worst < 1e-6);
    }
  }
}

namespace {

// Hidden states of one forward, by inference (Model::forward) or by the
// training path (grad mode: unfused projections and torch's composite ops).
at::Tensor hidden(const Model& m, const ForwardInput& in, bool training) {
  if (!training) return m.forward(in).hidden;
  torch::AutoGradMode on(true);
  return m.transformer().forward(in).hidden.detach();
}

}  // namespace

TEST_CASE("inference forward (fused loops, blocked attention skipping masked keys) equals the training forward",
          "[parity]") {
  // Long enough for several query blocks; GQA, biases, sliding windows and
  // left padding (rows that see no key) exercise the key extents.
  struct Case {
    const char* name;
    std::string config;
  };
  const std::vector<Case> cases = {
      {"llama gqa",
       R"({"architectures":["LlamaForCausalLM"],"vocab_size":64,"hidden_size":48,"intermediate_size":40,)"
       R"("num_hidden_layers":2,"num_attention_heads":6,"num_key_value_heads":2,"max_position_embeddings":1024})"},
      {"qwen2 bias",
       R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":64,"hidden_size":32,"intermediate_size":72,)"
       R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":4,"max_position_embeddings":1024})"},
      {"mistral sliding window",
       R"({"architectures":["MistralForCausalLM"],"vocab_size":64,"hidden_size":32,"intermediate_size":48,)"
       R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,"max_position_embeddings":1024,)"
       R"("sliding_window":50})"},
      // Wide enough that the decode projections split their columns into
      // several parts over three threads (below); 1400 gate/up columns are
      // not a multiple of the 16-column blocks.
      {"qwen2 wide, threaded",
       R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":64,"hidden_size":256,"intermediate_size":700,)"
       R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":1024})"},
  };
  const BlasThreadsScope three_threads(3);  // the decode projections' thread count too
  for (const auto& c : cases) {
    INFO(c.name);
    auto m = Model::random(ModelConfig::from_json(c.config), 17);
    const int64_t T = 300;
    ForwardInput in;
    in.input_ids = torch::randint(0, 64, {2, T}, torch::kLong);
    in.attention_mask = torch::ones({2, T}, torch::kLong);
    in.attention_mask[1].narrow(0, 0, 37).zero_();  // row 1 left-padded
    auto pos = torch::arange(T, torch::kLong).unsqueeze(0).repeat({2, 1});
    pos[1] = (pos[1] - 37).clamp_min(0);
    in.position_ids = pos;
    auto want = hidden(*m, in, true);
    auto got = hidden(*m, in, false);
    CHECK(test::max_abs_diff(got.narrow(1, 37, T - 37), want.narrow(1, 37, T - 37)) < 1e-4);
    CHECK(test::max_abs_diff(got[0], want[0]) < 1e-4);

    // The same text through a cache: 200 positions, then appends of 1 to 8
    // positions (a decode step's few rows: a matrix-vector product, then
    // gemv_rows_f32 split over the threads), then the rest (GEMM).
    auto cache = m->new_cache(1);
    std::vector<at::Tensor> parts;
    int64_t at = 0;
    for (int64_t n : {200, 1, 2, 3, 4, 5, 6, 7, 8, 64}) {
      ForwardInput step;
      step.input_ids = in.input_ids[0].narrow(0, at, n).unsqueeze(0);
      step.cache = &cache;
      parts.push_back(m->forward(step).hidden);
      at += n;
    }
    REQUIRE(at == T);
    CHECK(test::max_abs_diff(torch::cat(parts, 1)[0], want[0]) < 1e-4);
  }
}

TEST_CASE("bf16 decode steps (gemv_rows_bf16) agree with a bf16 forward of the whole text", "[parity]") {
  // The whole text runs through oneDNN's bf16 GEMM; appends of 1-8 positions
  // through gemv_rows_bf16, split over three threads (the model is wide
  // enough for several parts). Both sum in float and round each product's result
  // to bf16, so they differ by the order of sums and then by bf16 rounding
  // (8 bits: about 0.004 relative), carried through two layers.
  LoadOptions lo;
  lo.dtype = torch::kBFloat16;
  auto m = Model::random(
      ModelConfig::from_json(
          R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":64,"hidden_size":256,"intermediate_size":700,)"
          R"("num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":512})"),
      23, lo);
  const BlasThreadsScope three_threads(3);
  const int64_t T = 64;
  ForwardInput full;
  full.input_ids = torch::randint(0, 64, {1, T}, torch::kLong);
  const auto want = m->forward(full).hidden;
  REQUIRE(want.scalar_type() == torch::kBFloat16);
  auto cache = m->new_cache(1);
  std::vector<at::Tensor> parts;
  int64_t at = 0;
  for (int64_t n : {20, 1, 2, 3, 4, 5, 6, 7, 8, 8}) {
    ForwardInput step;
    step.input_ids = full.input_ids.narrow(1, at, n);
    step.cache = &cache;
    parts.push_back(m->forward(step).hidden);
    at += n;
  }
  REQUIRE(at == T);
  const auto got = torch::cat(parts, 1).to(torch::kFloat), ref = want.to(torch::kFloat);
  const double diff = test::max_abs_diff(got, ref), scale = ref.abs().max().item<double>();
  INFO("max |appends - whole| " << diff << " of max |h| " << scale);
  CHECK(diff < 0.03 * scale);
  // The logits of the appended positions pick the same tokens.
  const auto agree = (m->logits(torch::cat(parts, 1)).argmax(-1) == m->logits(want).argmax(-1))
                         .to(torch::kDouble)
                         .mean()
                         .item<double>();
  CHECK(agree >= 0.95);
}

TEST_CASE("run_parts in a forked child runs on the child's own thread (the helpers stay the parent's)",
          "[concurrency]") {
  std::vector<int> calls(8, 0);
  auto part = [&](int64_t p) { calls[static_cast<size_t>(p)] += 1; };
  stepverify::detail::run_parts(8, 2, part);  // the parent's helpers exist now
  REQUIRE(std::count(calls.begin(), calls.end(), 1) == 8);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::alarm(20);  // a child waiting on helpers it does not have would hang: fail by signal instead
    std::vector<int> mine(8, 0);
    auto count = [&](int64_t p) { mine[static_cast<size_t>(p)] += 1; };
    stepverify::detail::run_parts(8, 2, count);
    ::_exit(std::count(mine.begin(), mine.end(), 1) == 8 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
