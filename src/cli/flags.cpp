#include "cli/flags.h"

#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <string>

#include <fmt/format.h>

#include "stepverify/errors.h"

namespace stepverify::cli {

const std::map<std::string, c10::ScalarType>& dtype_flags() {
  static const std::map<std::string, c10::ScalarType> kDtypes = {
      {"fp32", c10::kFloat}, {"bf16", c10::kBFloat16}, {"fp16", c10::kHalf}};
  return kDtypes;
}

c10::ScalarType dtype_from_flag(const std::string& name) {
  auto it = dtype_flags().find(name);
  if (it == dtype_flags().end()) throw ConfigError("--dtype " + name + ": expected fp32, bf16 or fp16");
  return it->second;
}

void add_load_flags(CLI::App& app, LoadOptions& options) {
  app.add_option("--dtype", options.dtype,
                 "compute dtype of the model: fp32 (default), bf16 (half the memory, about fp32's speed on CPU), "
                 "fp16 (CUDA only)")
      ->transform(CLI::CheckedTransformer(dtype_flags()));
  struct State {
    std::chrono::steady_clock::time_point start;
    int64_t last = -1;
    bool shown = false;
  };
  const auto state = std::make_shared<State>();
  options.progress = [state](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done <= state->last || state->last < 0) *state = {now, -1, false};  // a new load
    state->last = done;
    if (!state->shown && std::chrono::duration<double>(now - state->start).count() < 2.0) return;
    state->shown = true;
    std::cerr << fmt::format("\rloading weights {:3.0f}% ({:.2f} of {:.2f} GB)",
                             100.0 * done / std::max<int64_t>(total, 1), done / 1e9, total / 1e9)
              << (done >= total ? "\n" : "") << std::flush;
  };
}

CLI::Option* add_aggregate_flag(CLI::App& app, const std::string& name, Aggregate& target, const std::string& help) {
  auto* opt = app.add_option_function<std::string>(
      name, [&target](const std::string& v) { target = parse_aggregate(v); },
      fmt::format("{} (min, max, prod, mean, last, geomean, sum; default {})", help, aggregate_name(target)));
  opt->check(CLI::Validator(
      [](std::string& v) {
        try {
          parse_aggregate(v);
          return std::string();
        } catch (const Error& e) {
          return std::string(e.what());
        }
      },
      "AGGREGATE"));
  return opt;
}

void add_jsonl_flags(CLI::App& app, JsonlFiles& files, const std::string& input_help, const std::string& output_help) {
  app.add_option("--input", files.input, input_help)->required();
  app.add_option("--output", files.output, output_help + " (written when complete)")->required();
  app.add_flag("--strict", files.strict, "a bad input line is fatal (exit 1, no output) instead of skipped");
}

std::ifstream open_input(const JsonlFiles& files) {
  std::ifstream in(files.input);
  if (!in) throw IoError(files.input + ": cannot open");
  return in;
}

detail::AtomicFile open_output(const JsonlFiles& files) {
  detail::check_output_not_input(files.output, {files.input});
  return detail::AtomicFile(files.output);
}

detail::BadLine bad_lines(const JsonlFiles& files) {
  return files.strict ? detail::BadLine::Throw : detail::BadLine::Skip;
}

int jsonl_status(const detail::JsonlCounts& counts, const std::string& what) {
  if (counts.bad)
    std::cerr << counts.bad << " of " << counts.bad + counts.good << " lines could not be " << what << " (see above)\n";
  return counts.good == 0 && counts.bad > 0 ? 1 : 0;  // every line failed: not a success
}

}  // namespace stepverify::cli

namespace stepverify::cli {

void add_distributed_flags(CLI::App& app, DistributedFlags& f) {
  app.add_option("--world-size", f.world_size, "processes sharing the job (default: $WORLD_SIZE, else 1)");
  app.add_option("--rank", f.rank, "this process, 0 .. world size - 1 (default: $RANK, else 0)");
  app.add_option("--master", f.master,
                 "ADDR:PORT of rank 0's store (default: $MASTER_ADDR:$MASTER_PORT, else 127.0.0.1:29500)");
  app.add_option("--store-file", f.store_file, "a file every rank can reach, as the store instead of TCP");
  app.add_option("--dist-timeout", f.timeout,
                 "seconds any rendezvous or collective may wait, a slower peer's extra work included (default 1800)");
  app.add_option("--interface", f.interface,
                 "network interface Gloo uses across machines (default: $GLOO_SOCKET_IFNAME, loopback for a local "
                 "world, else this host's address)");
}

DistributedOptions DistributedFlags::resolve() const {
  auto o = DistributedOptions::from_env();
  if (world_size >= 0) o.world_size = world_size;
  if (rank >= 0) o.rank = rank;
  if (!master.empty()) {
    const size_t colon = master.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == master.size())
      throw ConfigError("--master must be ADDR:PORT (got '" + master + "')");
    o.master_addr = master.substr(0, colon);
    try {
      o.master_port = std::stoi(master.substr(colon + 1));
    } catch (const std::exception&) {
      throw ConfigError("--master: '" + master.substr(colon + 1) + "' is not a port");
    }
  }
  if (!store_file.empty()) o.store_file = store_file;
  if (!interface.empty()) o.interface = interface;
  if (timeout > 0) o.timeout_seconds = timeout;
  o.check();
  return o;
}

std::vector<std::string> run_sharded(ProcessGroup& group, size_t chunks,
                                     const std::function<std::string(size_t)>& work) {
  const int W = group.world_size(), me = group.rank();
  // This rank's outputs, each length-prefixed, in chunk order.
  std::string mine;
  for (size_t c : shard_items(chunks, 1, me, W)) {
    const std::string out = work(c);
    const uint64_t n = out.size();
    mine.append(reinterpret_cast<const char*>(&n), sizeof n);
    mine += out;
  }
  const auto all = group.allgather(mine);
  std::vector<std::string> outputs(chunks);
  if (!group.is_root()) return outputs;
  for (int r = 0; r < W; ++r) {
    const std::string& b = all[static_cast<size_t>(r)];
    size_t at = 0;
    for (size_t c : shard_items(chunks, 1, r, W)) {
      uint64_t n = 0;
      if (at + sizeof n > b.size()) throw Error("run_sharded: rank " + std::to_string(r) + " sent too few outputs");
      std::memcpy(&n, b.data() + at, sizeof n);
      at += sizeof n;
      if (at + n > b.size()) throw Error("run_sharded: rank " + std::to_string(r) + " sent a truncated output");
      outputs[c] = b.substr(at, n);
      at += n;
    }
  }
  return outputs;
}

Solution parse_solution(const nlohmann::ordered_json& j) {
  if (!j.is_object()) throw InputError("the line is not a JSON object");
  const auto* q = j.contains("question") ? &j["question"] : j.contains("problem") ? &j["problem"] : nullptr;
  if (!q || !q->is_string()) throw InputError("field 'question' (or 'problem') must be a string");
  if (!j.contains("steps") || !j["steps"].is_array()) throw InputError("field 'steps' must be a list of strings");
  Solution s;
  s.question = q->get<std::string>();
  for (size_t i = 0; i < j["steps"].size(); ++i) {
    if (!j["steps"][i].is_string()) throw InputError("steps[" + std::to_string(i) + "] is not a string");
    s.steps.push_back(j["steps"][i].get<std::string>());
  }
  return s;
}

std::vector<CLI::Option*> add_generative_flags(CLI::App& app, GenerativeOptions& o, const std::string& when) {
  return {
      app.add_option("--chains", o.chains, when + "verification chains per solution (their scores are averaged)")
          ->capture_default_str(),
      app.add_option("--max-tokens", o.max_tokens, when + "tokens per chain before it is cut")->capture_default_str(),
      app.add_option("--temperature", o.sampling.temperature, when + "sampling temperature (0: greedy, one chain)")
          ->capture_default_str(),
      app.add_option("--top-k", o.sampling.top_k, when + "top-k sampling (0: off)"),
      app.add_option("--top-p", o.sampling.top_p, when + "nucleus sampling mass"),
      app.add_option("--seed", o.sampling.seed, when + "sampling seed (item i uses seed + (i << 20))")
          ->capture_default_str()};
}

GenerativeOptions item_options(const GenerativeOptions& options, size_t i) {
  GenerativeOptions o = options;
  o.sampling.seed = options.sampling.seed + (static_cast<uint64_t>(i) << 20);
  return o;
}

}  // namespace stepverify::cli
