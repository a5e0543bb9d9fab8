// bench/forward: backbone forward throughput against the fp32 GEMM rate of the
// same machine and threads, measured in the same run.
//
//   build/bench/forward [--quick]
//
// Models are Llama shapes with random weights made here (~25M and ~125M
// parameters). FLOPs per token = 2 x non-embedding parameters + attention
// (4 x layers x T x heads x head_dim: QK^T and PV over the full T x T block as
// computed). gemm_fraction = achieved FLOP/s / measured GEMM FLOP/s. The last
// line is one JSON object.
#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "stepverify/model.h"
#include "stepverify/runtime.h"

using namespace stepverify;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best-of-reps fp32 GEMM rate (FLOP/s) for [m,k] x [k,n].
double gemm_rate(int64_t m, int64_t k, int64_t n, int reps) {
  c10::InferenceMode guard;
  auto a = torch::randn({m, k}), b = torch::randn({k, n});
  auto c = at::mm(a, b);  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    at::mm_out(c, a, b);
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * m * k * n / best;
}

struct Shape {
  std::string name;
  int64_t hidden, layers, heads, inter, vocab;
};

ModelConfig make_config(const Shape& s) {
  return ModelConfig::from_json(fmt::format(
      R"({{"architectures":["LlamaForCausalLM"],"vocab_size":{},"hidden_size":{},"intermediate_size":{},)"
      R"("num_hidden_layers":{},"num_attention_heads":{},"num_key_value_heads":{},"max_position_embeddings":2048}})",
      s.vocab, s.hidden, s.inter, s.layers, s.heads, s.heads));
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
  auto rt = configure_runtime();
  const int reps = quick ? 2 : 4;

  const std::vector<Shape> shapes = {{"llama-25M", 512, 8, 8, 1376, 32000}, {"llama-125M", 768, 12, 12, 2048, 32000}};
  const std::vector<int64_t> seqs = {128, 512};
  const std::vector<int64_t> batches = {1, 8};

  // The GEMM bound: an MLP-shaped product of the larger model at 4096 rows.
  const double peak = std::max(gemm_rate(4096, 768, 2048, reps + 2), gemm_rate(2048, 2048, 2048, reps));
  fmt::print("threads: torch {}, BLAS {} ({}); fp32 GEMM rate {:.1f} GFLOP/s\n", rt.torch_threads, rt.blas_threads,
             blas_is_openblas() ? "OpenBLAS" : "not OpenBLAS: expect ~50x slower GEMMs", peak / 1e9);
  fmt::print("{:<11} {:>5} {:>4} {:>10} {:>12} {:>9} {:>8}\n", "model", "seq", "B", "params", "tokens/s", "GFLOP/s",
             "of GEMM");

  nlohmann::json result = {{"gemm_gflops", peak / 1e9},
                           {"torch_threads", rt.torch_threads},
                           {"blas_threads", rt.blas_threads},
                           {"configs", nlohmann::json::array()}};
  for (const auto& s : shapes) {
    auto model = Model::random(make_config(s), 1234);
    const int64_t nonembed = model->num_parameters(false);
    const int64_t total = model->num_parameters(true);
    for (int64_t T : seqs) {
      for (int64_t B : batches) {
        if (quick && B * T > 1024) continue;
        ForwardInput in;
        in.input_ids = torch::randint(0, s.vocab, {B, T}, torch::kLong);
        model->forward(in);  // warm-up
        double best = 1e30;
        for (int r = 0; r < reps; ++r) {
          auto t0 = Clock::now();
          model->forward(in);
          best = std::min(best, seconds_since(t0));
        }
        const double tokens_per_s = B * T / best;
        const double flops_per_token = 2.0 * nonembed + 4.0 * s.layers * T * s.hidden;
        const double achieved = tokens_per_s * flops_per_token;
        const double fraction = achieved / peak;
        fmt::print("{:<11} {:>5} {:>4} {:>9.1f}M {:>12.0f} {:>9.1f} {:>8.2f}\n", s.name, T, B, total / 1e6,
                   tokens_per_s, achieved / 1e9, fraction);
        result["configs"].push_back({{"model", s.name},
                                     {"parameters", total},
                                     {"non_embedding_parameters", nonembed},
                                     {"seq", T},
                                     {"batch", B},
                                     {"tokens_per_s", tokens_per_s},
                                     {"gflops", achieved / 1e9},
                                     {"gemm_fraction", fraction}});
      }
    }
  }
  std::cout << result.dump() << std::endl;
  return 0;
}
