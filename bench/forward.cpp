// bench/forward: backbone forward throughput against the fp32 GEMM rate of the
// same machine and threads, measured in the same run.
//
//   build/bench/forward [--quick] [--seq N | --decode-only] [--reps N]
//                       [--model llama-25M|llama-125M|qwen2-1.5B]
//
// Models are Llama shapes with random weights made here (~25M and ~125M
// parameters) and the Qwen2.5-Math-PRM-1.5B backbone shape (fp32 and bf16,
// batch 1, 512 tokens). FLOPs per token = 2 x non-embedding parameters + causal
// attention (QK^T and PV over the keys each query sees: on average (T + 1) / 2,
// so 2 x layers x (T + 1) x heads x head_dim). gemm_fraction = achieved FLOP/s / the fp32 GEMM rate measured
// right before and after that configuration (best of both), with the same
// threads. Then decode steps at B = 1, 2, 4, 8 rows (not with --seq; alone
// with --decode-only): each
// step's weight streaming rate and its tokens/s against one row. The last
// line is one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdlib>
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

constexpr int64_t kContext = 256;  // cached positions before each decode step

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
  int64_t hidden, layers, heads, inter, vocab, kv_heads = 0;  // kv_heads 0: heads
  std::string architecture = "LlamaForCausalLM";
};

ModelConfig make_config(const Shape& s) {
  return ModelConfig::from_json(fmt::format(
      R"({{"architectures":["{}"],"vocab_size":{},"hidden_size":{},"intermediate_size":{},)"
      R"("num_hidden_layers":{},"num_attention_heads":{},"num_key_value_heads":{},"max_position_embeddings":2048}})",
      s.architecture, s.vocab, s.hidden, s.inter, s.layers, s.heads, s.kv_heads ? s.kv_heads : s.heads));
}

}  // namespace

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  bool quick = false, decode_only = false;
  int64_t only_seq = 0;
  std::string only_model;
  int reps_arg = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--decode-only") == 0) decode_only = true;
    if (std::strcmp(argv[i], "--seq") == 0 && i + 1 < argc) only_seq = std::atoll(argv[++i]);
    if (std::strcmp(argv[i], "--model") == 0 && i + 1 < argc) only_model = argv[++i];
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps_arg = std::atoi(argv[++i]);
  }
  auto rt = configure_runtime();
  const int reps = reps_arg > 0 ? reps_arg : quick ? 2 : 3;

  // The Qwen2.5-Math-PRM-1.5B shape runs at batch 1 and 512 tokens only, in
  // fp32 and bf16 (bf16 matrix products run through oneDNN at about the fp32
  // GEMM rate; its fraction is against the same fp32 rate).
  const std::vector<Shape> shapes = {{"llama-25M", 512, 8, 8, 1376, 32000},
                                     {"llama-125M", 768, 12, 12, 2048, 32000},
                                     {"qwen2-1.5B", 1536, 28, 12, 8960, 151936, 2, "Qwen2ForCausalLM"}};
  const std::vector<int64_t> seqs = {128, 512};
  const std::vector<int64_t> batches = {1, 8};

  // The GEMM bound: the best rate of MLP-shaped products, measured right
  // before and right after each configuration (shared machines drift; each
  // fraction is taken against the GEMM rate of its own moment).
  auto measure_gemm = [&] {
    return std::max({gemm_rate(4096, 768, 2048, 4), gemm_rate(2048, 2048, 2048, 3), gemm_rate(512, 512, 1376, 10)});
  };
  double peak = 0;
  fmt::print("threads: torch {}, BLAS {} ({})\n", rt.torch_threads, rt.blas_threads,
             blas_is_openblas() ? fmt::format("OpenBLAS, {} kernels", blas_kernels())
                                : std::string("not OpenBLAS: expect ~50x slower GEMMs"));
  fmt::print("{:<11} {:<5} {:>5} {:>4} {:>10} {:>12} {:>9} {:>9} {:>8}\n", "model", "dtype", "seq", "B", "params",
             "tokens/s", "GFLOP/s", "GEMM", "fraction");

  nlohmann::json result = {{"gemm_gflops", peak / 1e9},          {"torch_threads", rt.torch_threads},
                           {"blas_kernels", blas_kernels()},     {"blas_threads", rt.blas_threads},
                           {"configs", nlohmann::json::array()}, {"decode", nlohmann::json::array()}};
  for (const auto& s : shapes) {
    if (!only_model.empty() && s.name != only_model) continue;
    const bool big = s.hidden >= 1536;
    for (const auto dtype : big ? std::vector<c10::ScalarType>{torch::kFloat, torch::kBFloat16}
                                : std::vector<c10::ScalarType>{torch::kFloat}) {
      LoadOptions lo;
      lo.dtype = dtype;
      auto model = Model::random(make_config(s), 1234, lo);
      const int64_t nonembed = model->num_parameters(false);
      const int64_t total = model->num_parameters(true);
      for (int64_t T : seqs) {
        if (decode_only || (only_seq && T != only_seq)) continue;
        if (big && T != 512) continue;
        for (int64_t B : batches) {
          if (quick && B * T > 1024) continue;
          if (big && B != 1) continue;
          ForwardInput in;
          in.input_ids = torch::randint(0, s.vocab, {B, T}, torch::kLong);
          model->forward(in);  // warm-up
          double local_peak = measure_gemm();
          double best = 1e30;
          for (int r = 0; r < reps; ++r) {
            auto t0 = Clock::now();
            model->forward(in);
            best = std::min(best, seconds_since(t0));
          }
          local_peak = std::max(local_peak, measure_gemm());
          peak = std::max(peak, local_peak);
          const double tokens_per_s = B * T / best;
          const double flops_per_token = 2.0 * nonembed + 2.0 * s.layers * (T + 1) * s.hidden;
          const double achieved = tokens_per_s * flops_per_token;
          result["configs"].push_back({{"model", s.name},
                                       {"dtype", dtype == torch::kFloat ? "fp32" : "bf16"},
                                       {"parameters", total},
                                       {"non_embedding_parameters", nonembed},
                                       {"seq", T},
                                       {"batch", B},
                                       {"tokens_per_s", tokens_per_s},
                                       {"gflops", achieved / 1e9},
                                       {"gemm_gflops", local_peak / 1e9},
                                       {"gemm_fraction", achieved / local_peak}});
        }
      }
      // Decode: one new token per row over a cache of kContext positions,
      // logits included (a sampler's step). Every weight is read once per
      // step whatever B, so a step's time over the weights' bytes is the
      // rate they stream at; B rows per step against one row is the gain of
      // decoding a batch (chains, beams) together.
      if (only_seq || (quick && big)) continue;
      constexpr int64_t kSteps = 8;
      const double weight_bytes = static_cast<double>(nonembed + s.vocab * s.hidden) * c10::elementSize(dtype);
      double one_row = 0;
      for (int64_t B : {1, 2, 4, 8}) {
        auto cache = model->new_cache(B);
        ForwardInput prefill;
        prefill.input_ids = torch::randint(0, s.vocab, {B, kContext}, torch::kLong);
        prefill.cache = &cache;
        model->forward(prefill);
        auto step = [&] {
          ForwardInput d;
          d.input_ids = torch::randint(0, s.vocab, {B, 1}, torch::kLong);
          d.cache = &cache;
          model->logits(model->forward(d).hidden);
        };
        step();  // warm-up
        double best = 1e30;
        for (int r = 0; r < reps; ++r) {
          auto t0 = Clock::now();
          for (int64_t i = 0; i < kSteps; ++i) step();
          best = std::min(best, seconds_since(t0) / kSteps);
        }
        if (B == 1) one_row = B / best;
        result["decode"].push_back({{"model", s.name},
                                    {"dtype", dtype == torch::kFloat ? "fp32" : "bf16"},
                                    {"batch", B},
                                    {"context", kContext},
                                    {"step_ms", best * 1e3},
                                    {"tokens_per_s", B / best},
                                    {"weight_gb_per_s", weight_bytes / best / 1e9},
                                    {"speedup_vs_batch1", B / best / one_row}});
      }
    }
  }
  result["gemm_gflops"] = peak / 1e9;
  for (auto& c : result["configs"]) {
    fmt::print("{:<11} {:<5} {:>5} {:>4} {:>9.1f}M {:>12.0f} {:>9.1f} {:>9.1f} {:>8.2f}\n",
               c["model"].get<std::string>(), c["dtype"].get<std::string>(), c["seq"].get<int64_t>(),
               c["batch"].get<int64_t>(), c["parameters"].get<int64_t>() / 1e6, c["tokens_per_s"].get<double>(),
               c["gflops"].get<double>(), c["gemm_gflops"].get<double>(), c["gemm_fraction"].get<double>());
  }
  fmt::print("best fp32 GEMM rate in this run: {:.1f} GFLOP/s\n", peak / 1e9);
  if (!result["decode"].empty())
    fmt::print("\ndecode (context {}, logits included)\n{:<11} {:<5} {:>4} {:>9} {:>9} {:>12} {:>10}\n", kContext,
               "model", "dtype", "B", "step ms", "tokens/s", "weights GB/s", "vs B=1");
  for (auto& c : result["decode"])
    fmt::print("{:<11} {:<5} {:>4} {:>9.1f} {:>9.1f} {:>12.1f} {:>9.2f}x\n", c["model"].get<std::string>(),
               c["dtype"].get<std::string>(), c["batch"].get<int64_t>(), c["step_ms"].get<double>(),
               c["tokens_per_s"].get<double>(), c["weight_gb_per_s"].get<double>(),
               c["speedup_vs_batch1"].get<double>());
  std::cout << result.dump() << std::endl;
  return 0;
}
