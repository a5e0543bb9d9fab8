// bench/realsize: a real-size verifier (Qwen2.5-Math-PRM-1.5B shape, random
// weights) loaded from bf16 safetensors shards, and a step-level beam search
// scored three ways on the same tree, in fp32 and bf16, in one run.
//
//   build/bench/realsize [--shared DIR] [--beams B] [--width K] [--depth D] [--naive] [--size 1.5b|7b] [--keep]
//
// --keep leaves the checkpoint in the temporary folder and reuses it next time.
//
// The checkpoint (Qwen2ForProcessRewardModel: hidden 1536, 28 layers, 12
// heads / 2 KV heads, intermediate 8960, vocabulary 151936; the 7b shape:
// hidden 3584, 28 heads / 4 KV heads, intermediate 18944, vocabulary 152064)
// is written to a temporary folder in 2+ shards with the Qwen tokenizer of the
// qwen2_prm fixture, and deleted at the end. Scoring ways, each over the tree
// a scripted proposer expands (B beams x K expansions = B*K candidates of ~30
// tokens per step, depth D, after a ~150-token question):
//   batched_rescore: each step's candidates as whole sequences in one padded
//                    batch (the best the Python frameworks do without a prefix cache)
//   sessions:        sessions, each step's candidates in one tree-attention forward
//   naive:           (--naive) each candidate's whole sequence alone (plain HF)
// append_vs_prefill = the sessions' seconds per verifier token / a 512-token
// prefill's seconds per token. same_pick: the ways pick the same solution in
// fp32 (their scores agree to ~1e-6); same_pick_bf16 reports the same in bf16,
// where each batch shape rounds differently and near-tied candidates of a
// random model may swap. REALSIZE_VERBOSE=1 prints the candidates' scores. The load (bf16) runs in a child process so that
// its peak resident memory (VmHWM) is the load's alone. --size 7b loads the 7B
// shape and scores one 300-token solution instead (minutes; run it by hand).
// The last line is one JSON object.
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench_models.h"
#include "stepverify/checkpoint.h"
#include "stepverify/runtime.h"
#include "stepverify/search.h"
#include "stepverify/session.h"

using namespace stepverify;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

extern char** environ;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Shape {
  int64_t hidden, layers, heads, kv_heads, inter, vocab;
};

const Shape kShape15b{1536, 28, 12, 2, 8960, 151936};
const Shape kShape7b{3584, 28, 28, 4, 18944, 152064};

nlohmann::json config_of(const Shape& s, int64_t tokenizer_eos) {
  return {{"architectures", {"Qwen2ForProcessRewardModel"}},
          {"model_type", "qwen2"},
          {"hidden_size", s.hidden},
          {"intermediate_size", s.inter},
          {"num_hidden_layers", s.layers},
          {"num_attention_heads", s.heads},
          {"num_key_value_heads", s.kv_heads},
          {"vocab_size", s.vocab},
          {"max_position_embeddings", 4096},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"sliding_window", 4096},
          {"use_sliding_window", false},
          {"tie_word_embeddings", false},
          {"bos_token_id", tokenizer_eos},
          {"eos_token_id", tokenizer_eos},
          {"pad_token_id", tokenizer_eos},
          {"torch_dtype", "bfloat16"}};
}

// Writes the checkpoint: config, the fixture's Qwen tokenizer, bf16 weights
// in shards of at most `shard_bytes`, and the index. Returns the weight bytes.
int64_t write_checkpoint(const fs::path& shared, const fs::path& dir, const Shape& s, int64_t shard_bytes) {
  const fs::path tok = shared / "fixtures/hf/qwen2_prm";
  fs::create_directories(dir);
  for (const char* f :
       {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"})
    fs::copy_file(tok / f, dir / f, fs::copy_options::overwrite_existing);
  std::ofstream(dir / "config.json") << config_of(s, 486).dump(1);

  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"model.embed_tokens.weight", {s.vocab, s.hidden}}};
  const int64_t hd = s.hidden / s.heads;
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    shapes.push_back({p + "input_layernorm.weight", {s.hidden}});
    shapes.push_back({p + "self_attn.q_proj.weight", {s.heads * hd, s.hidden}});
    shapes.push_back({p + "self_attn.q_proj.bias", {s.heads * hd}});
    shapes.push_back({p + "self_attn.k_proj.weight", {s.kv_heads * hd, s.hidden}});
    shapes.push_back({p + "self_attn.k_proj.bias", {s.kv_heads * hd}});
    shapes.push_back({p + "self_attn.v_proj.weight", {s.kv_heads * hd, s.hidden}});
    shapes.push_back({p + "self_attn.v_proj.bias", {s.kv_heads * hd}});
    shapes.push_back({p + "self_attn.o_proj.weight", {s.hidden, s.heads * hd}});
    shapes.push_back({p + "post_attention_layernorm.weight", {s.hidden}});
    shapes.push_back({p + "mlp.gate_proj.weight", {s.inter, s.hidden}});
    shapes.push_back({p + "mlp.up_proj.weight", {s.inter, s.hidden}});
    shapes.push_back({p + "mlp.down_proj.weight", {s.hidden, s.inter}});
  }
  shapes.push_back({"model.norm.weight", {s.hidden}});
  shapes.push_back({"score.0.weight", {s.hidden, s.hidden}});
  shapes.push_back({"score.0.bias", {s.hidden}});
  shapes.push_back({"score.2.weight", {2, s.hidden}});
  shapes.push_back({"score.2.bias", {2}});

  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  nlohmann::json weight_map = nlohmann::json::object();
  std::vector<at::Tensor> keep;
  std::vector<TensorData> pending;
  int64_t pending_bytes = 0, total = 0;
  int shard = 0;
  std::vector<std::string> shard_files;
  auto flush = [&] {
    if (pending.empty()) return;
    const std::string name = fmt::format("model-{:05d}.safetensors", ++shard);
    save_safetensors(dir / name, pending);
    for (const auto& t : pending) weight_map[t.name] = name;
    shard_files.push_back(name);
    pending.clear();
    keep.clear();
    pending_bytes = 0;
  };
  for (const auto& [name, shape] : shapes) {
    const bool norm = name.find("norm") != std::string::npos;
    at::Tensor t = norm ? torch::ones(shape) : at::normal(0.0, 0.02, shape, gen);
    t = t.to(torch::kBFloat16).contiguous();
    const int64_t bytes = t.numel() * 2;
    if (pending_bytes + bytes > shard_bytes) flush();
    keep.push_back(t);
    pending.push_back({name, DType::BF16, t.sizes().vec(), t.data_ptr()});
    pending_bytes += bytes;
    total += bytes;
  }
  flush();
  // Shards named "-of-N" as HF writes them.
  for (size_t i = 0; i < shard_files.size(); ++i) {
    const std::string final_name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shard_files.size());
    fs::rename(dir / shard_files[i], dir / final_name);
    for (auto& [k, v] : weight_map.items())
      if (v == shard_files[i]) v = final_name;
  }
  std::ofstream(dir / "model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(1);
  return total;
}

int64_t status_kb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  return -1;
}

c10::ScalarType parse_dtype_name(const std::string& s) { return s == "bf16" ? torch::kBFloat16 : torch::kFloat; }

// The child process: loads `dir` and reports time and peak memory (and, with
// `score`, the time to score one ~300-token solution).
int measure_load(const fs::path& dir, const std::string& dtype, bool score) {
  configure_runtime();
  // The time to read the same bytes, before the load (both then read the page cache alike).
  int64_t bytes = 0;
  auto t0 = Clock::now();
  {
    std::vector<char> buf(64 << 20);
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".safetensors") continue;
      std::ifstream in(e.path(), std::ios::binary);
      while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) bytes += in.gcount();
    }
  }
  const double read_s = since(t0);
  const int64_t base_kb = status_kb("VmRSS");
  VerifierOptions o;
  o.load.dtype = parse_dtype_name(dtype);
  t0 = Clock::now();
  auto v = Verifier::load(dir, o);
  const double load_s = since(t0);
  // Fused q/k/v and gate/up leave their parameters as views: count storages once.
  int64_t weights = 0;
  std::set<const void*> seen;
  for (const auto& p : v->model().transformer().parameters())
    if (seen.insert(p.storage().data()).second) weights += static_cast<int64_t>(p.storage().nbytes());
  const int64_t hwm_load = status_kb("VmHWM") * 1024;
  const int64_t rss_load = status_kb("VmRSS") * 1024;
  // Weights used in place are read from the mapping on first use: after one
  // forward every weight is resident.
  v->score(bench::text_of(v->model().tokenizer(), 30, 3), {"1 + 1 = 2."});
  nlohmann::json out = {{"weights_bytes", weights},
                        {"peak_rss_bytes", hwm_load},
                        {"rss_before_load_bytes", base_kb * 1024},
                        {"rss_after_load_bytes", rss_load},
                        {"rss_after_first_score_bytes", status_kb("VmRSS") * 1024},
                        {"peak_rss_through_first_score_bytes", status_kb("VmHWM") * 1024},
                        {"seconds", load_s},
                        {"read_seconds", read_s},
                        {"file_bytes", bytes}};
  if (score) {
    const auto& tok = v->model().tokenizer();
    std::vector<std::string> steps;
    for (int i = 0; i < 6; ++i) steps.push_back(bench::text_of(tok, 40, i));
    const std::string q = bench::text_of(tok, 60, 9);
    t0 = Clock::now();
    auto r = v->score(q, steps);
    out["score"] = {{"tokens", r.tokens}, {"seconds", since(t0)}};
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

nlohmann::json spawn_load(const fs::path& dir, const std::string& dtype, bool score) {
  std::string cmd = fmt::format("'{}' --measure-load '{}' --dtype {}{}", fs::read_symlink("/proc/self/exe").string(),
                                dir.string(), dtype, score ? " --score" : "");
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot start the load measurement");
  std::string text;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  if (::pclose(p) != 0) throw std::runtime_error("the load measurement failed: " + text);
  // The last line is the child's JSON object.
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return nlohmann::json::parse(text.substr(text.rfind('\n') + 1));
}

struct Figures {
  nlohmann::json json;
  std::vector<std::string> pick_sessions, pick_batched, pick_naive;
};

Figures run_dtype(const fs::path& dir, const std::string& dtype, int beams, int width, int depth, bool naive) {
  VerifierOptions vo;
  vo.load.dtype = parse_dtype_name(dtype);
  vo.prefix_cache_bytes = 0;
  auto v = Verifier::load(dir, vo);
  const auto& tok = v->model().tokenizer();
  const std::string question = bench::text_of(tok, 150, 1);
  SearchOptions o;
  o.beam_width = beams;
  o.expansions = width;
  o.max_steps = depth;
  bench::ScriptedProposer prop;
  prop.tok = &tok;
  prop.depth = depth;
  prop.step_tokens = 30;

  Figures f;
  auto entry = [](const SearchResult& r) {
    return nlohmann::json{{"verifier_tokens", r.verifier_tokens},
                          {"seconds", r.seconds},
                          {"tokens_per_second", r.verifier_tokens / r.seconds}};
  };
  // Prefill: one 512-token forward (after a warm-up forward).
  const auto long_ids = tok.encode(bench::text_of(tok, 512, 2));
  ForwardInput in;
  in.input_ids = to_batch(std::vector<int64_t>(long_ids.begin(), long_ids.begin() + 64));
  v->model().forward(in);
  in.input_ids = to_batch(long_ids);
  auto t0 = Clock::now();
  v->model().forward(in);
  const double prefill_per_token = since(t0) / static_cast<double>(long_ids.size());

  o.scoring = SearchScoring::Sessions;
  auto s = beam_search(*v, prop, question, o);
  o.scoring = SearchScoring::BatchedRescore;
  auto b = beam_search(*v, prop, question, o);
  f.pick_sessions = s.steps;
  f.pick_batched = b.steps;
  if (std::getenv("REALSIZE_VERBOSE"))
    for (size_t i = 0; i < s.candidates.size() && i < b.candidates.size(); ++i)
      fmt::print("candidate {}: sessions {:.8f} batched {:.8f} same steps {}\n", i, s.candidates[i].score,
                 b.candidates[i].score, s.candidates[i].steps == b.candidates[i].steps);
  f.json = {{"sessions", entry(s)},
            {"batched_rescore", entry(b)},
            {"append_vs_prefill", (s.seconds / static_cast<double>(s.verifier_tokens)) / prefill_per_token},
            {"prefill_tokens_per_second", 1.0 / prefill_per_token},
            {"sessions_speedup", b.seconds / s.seconds},
            {"token_ratio", static_cast<double>(b.verifier_tokens) / static_cast<double>(s.verifier_tokens)}};
  fmt::print("{:<5} {:<16} {:>9} {:>9.1f} {:>9.1f}\n", dtype, "batched rescore", b.verifier_tokens, b.seconds,
             b.verifier_tokens / b.seconds);
  fmt::print("{:<5} {:<16} {:>9} {:>9.1f} {:>9.1f}\n", dtype, "sessions", s.verifier_tokens, s.seconds,
             s.verifier_tokens / s.seconds);
  if (naive) {
    o.scoring = SearchScoring::Rescore;
    auto n = beam_search(*v, prop, question, o);
    f.pick_naive = n.steps;
    f.json["naive"] = entry(n);
    fmt::print("{:<5} {:<16} {:>9} {:>9.1f} {:>9.1f}\n", dtype, "naive", n.verifier_tokens, n.seconds,
               n.verifier_tokens / n.seconds);
  }
  fmt::print(
      "{:<5} prefill {:.1f} tokens/s; appended steps cost {:.2f}x a prefill token; sessions {:.2f}x faster, "
      "{:.2f}x fewer tokens\n",
      dtype, 1.0 / prefill_per_token, f.json["append_vs_prefill"].get<double>(),
      f.json["sessions_speedup"].get<double>(), f.json["token_ratio"].get<double>());
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  std::string shared = "../shared", size = "1.5b", measure, dtype = "bf16";
  int beams = 2, width = 4, depth = 4;
  bool naive = false, keep = false, score = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--shared" && has)
      shared = argv[++i];
    else if (a == "--beams" && has)
      beams = std::atoi(argv[++i]);
    else if (a == "--width" && has)
      width = std::atoi(argv[++i]);
    else if (a == "--depth" && has)
      depth = std::atoi(argv[++i]);
    else if (a == "--size" && has)
      size = argv[++i];
    else if (a == "--naive")
      naive = true;
    else if (a == "--keep")
      keep = true;
    else if (a == "--score")
      score = true;
    else if (a == "--measure-load" && has)
      measure = argv[++i];
    else if (a == "--dtype" && has)
      dtype = argv[++i];
    else {
      std::cerr << "bench/realsize: unknown option " << a << "\n";
      return 2;
    }
  }
  if (!measure.empty()) return measure_load(measure, dtype, score);
  if (size != "1.5b" && size != "7b") {
    std::cerr << "bench/realsize: --size is 1.5b or 7b\n";
    return 2;
  }
  if (!fs::exists(fs::path(shared) / "fixtures/hf/qwen2_prm/vocab.json")) {
    std::cerr << "bench/realsize: needs " << shared << "/fixtures/hf/qwen2_prm (pass --shared DIR)\n";
    return 2;
  }
  configure_runtime();
  const Shape shape = size == "7b" ? kShape7b : kShape15b;
  const fs::path dir = fs::temp_directory_path() / ("stepverify_bench_realsize_" + size);
  auto t0 = Clock::now();
  int64_t bytes = 0;
  if (keep && fs::exists(dir / "model.safetensors.index.json")) {
    bytes = nlohmann::json::parse(std::ifstream(dir / "model.safetensors.index.json"))["metadata"]["total_size"];
  } else {
    fs::remove_all(dir);
    bytes = write_checkpoint(shared, dir, shape, size == "7b" ? (4ll << 30) : (2ll << 30));
  }
  int shards = 0;
  for (const auto& e : fs::directory_iterator(dir)) shards += e.path().extension() == ".safetensors";
  fmt::print("{} checkpoint: {:.2f} GB of bf16 weights in {} shards, written in {:.1f} s\n", size, bytes / 1e9, shards,
             since(t0));
  nlohmann::json out;
  try {
    // The 7b shape is also scored in the child: this process still holds the
    // memory it wrote the shards from.
    const auto load = spawn_load(dir, "bf16", size == "7b");
    const double w = load["weights_bytes"].get<double>();
    fmt::print(
        "load (bf16): {:.1f} s (reading the files: {:.1f} s), peak RSS {:.2f} GB for {:.2f} GB of weights "
        "({:.3f}x); after the first score {:.2f} GB ({:.3f}x; peak {:.3f}x)\n",
        load["seconds"].get<double>(), load["read_seconds"].get<double>(), load["peak_rss_bytes"].get<double>() / 1e9,
        w / 1e9, load["peak_rss_bytes"].get<double>() / w, load["rss_after_first_score_bytes"].get<double>() / 1e9,
        load["rss_after_first_score_bytes"].get<double>() / w,
        load["peak_rss_through_first_score_bytes"].get<double>() / w);
    out["load"] = load;
    if (size == "7b") {
      const double sec = load["score"]["seconds"], tokens = load["score"]["tokens"];
      fmt::print("7b bf16: scored a {}-token solution in {:.1f} s ({:.1f} tokens/s)\n", tokens, sec, tokens / sec);
    } else {
      fmt::print("beam search {} beams x {} expansions, depth {}: {:<16} {:>9} {:>9} {:>9}\n", beams, width, depth, "",
                 "tokens", "seconds", "tokens/s");
      auto fp32 = run_dtype(dir, "fp32", beams, width, depth, naive);
      auto bf16 = run_dtype(dir, "bf16", beams, width, depth, naive);
      // fp32: every way computes the same scores to ~1e-6, so the picks must
      // agree. bf16 rounds differently for each batch shape (scores move by up
      // to ~4e-3 between the ways), which can swap near-tied candidates of a
      // random model: reported, not required.
      auto agree = [&](const Figures& f) {
        return f.pick_sessions == f.pick_batched && (!naive || f.pick_naive == f.pick_sessions);
      };
      const bool same = agree(fp32);
      out["same_pick_bf16"] = agree(bf16);
      out["fp32"] = fp32.json;
      out["bf16"] = bf16.json;
      out["same_pick"] = same;
      out["bf16_over_fp32_throughput"] = bf16.json["sessions"]["tokens_per_second"].get<double>() /
                                         fp32.json["sessions"]["tokens_per_second"].get<double>();
      fmt::print("same pick (fp32): {}; same pick (bf16): {}; bf16 sessions throughput {:.2f}x fp32's\n",
                 same ? "yes" : "no", agree(bf16) ? "yes" : "no", out["bf16_over_fp32_throughput"].get<double>());
    }
  } catch (const std::exception& e) {
    if (!keep) fs::remove_all(dir);
    std::cerr << "bench/realsize: " << e.what() << "\n";
    return 1;
  }
  if (!keep) fs::remove_all(dir);
  std::cout << out.dump() << std::endl;
  return 0;
}
