// ProcessGroup: c10d's ProcessGroupGloo over a TCPStore or FileStore.
#include "stepverify/distributed.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "stepverify/errors.h"

namespace stepverify {
namespace {

// An integer environment variable, or `fallback` when unset.
long env_int(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0') throw ConfigError(std::string("environment variable ") + name + " is not an integer: '" + v + "'");
  return x;
}

}  // namespace

DistributedOptions DistributedOptions::from_env() {
  DistributedOptions o;
  o.rank = static_cast<int>(env_int("RANK", 0));
  o.world_size = static_cast<int>(env_int("WORLD_SIZE", 1));
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  o.master_port = static_cast<int>(env_int("MASTER_PORT", o.master_port));
  if (const char* f = std::getenv("STEPVERIFY_STORE_FILE"); f && *f) o.store_file = f;
  if (const char* i = std::getenv("GLOO_SOCKET_IFNAME"); i && *i) o.interface = i;
  for (const char* key : {"STEPVERIFY_JOB_ID", "TORCHELASTIC_RUN_ID"})
    if (const char* j = std::getenv(key); o.job_id.empty() && j && *j) o.job_id = j;
  o.timeout_seconds = static_cast<double>(env_int("STEPVERIFY_TIMEOUT", static_cast<long>(o.timeout_seconds)));
  o.check();
  return o;
}

void DistributedOptions::check() const {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw ConfigError("distributed: rank " + std::to_string(rank) + " is outside a world of " +
                      std::to_string(world_size));
  if (master_port < 1 || master_port > 65535)
    throw ConfigError("distributed: master port " + std::to_string(master_port) + " is not 1..65535");
  if (!(timeout_seconds > 0)) throw ConfigError("distributed: the timeout must be positive");
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

ProcessGroup::ProcessGroup(DistributedOptions options) : options_(std::move(options)) {}

namespace {

// The store key a rank leaves when it fails.
std::string failed_key(int rank) { return "stepverify/failed/" + std::to_string(rank); }

}  // namespace

ProcessGroup::~ProcessGroup() {
  // Leaving by an exception: say so in the store, so the peers' errors name
  // this rank (best effort; a killed process leaves nothing, and the peers
  // see the lost connection instead).
  if (impl_ && impl_->store && std::uncaught_exceptions() > 0) {
    try {
      const std::string v = "failed";
      impl_->store->set(failed_key(rank()), std::vector<uint8_t>(v.begin(), v.end()));
    } catch (...) {}
  }
}

// Runs a c10d call; its failure (a lost peer, a timeout) becomes an Error
// naming this rank, the collective and the ranks that said they failed.
template <typename F>
void guarded(const DistributedOptions& o, c10d::Store* store, const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (const size_t cut = msg.find("\nException raised from"); cut != std::string::npos) msg.resize(cut);
    std::string who;
    if (store) {
      for (int r = 0; r < o.world_size; ++r) {
        try {
          if (r != o.rank && store->check({failed_key(r)})) who += (who.empty() ? "" : ", ") + std::to_string(r);
        } catch (...) {
          break;  // the store itself is gone (rank 0 served it)
        }
      }
    }
    const std::string peer = who.empty() ? "a peer failed, left or timed out after " +
                                               std::to_string(static_cast<int>(o.timeout_seconds)) + " s"
                                         : "rank " + who + " failed";
    throw Error("distributed: rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) + ": " + what +
                " failed (" + peer + "): " + msg);
  }
}

std::unique_ptr<ProcessGroup> ProcessGroup::create(const DistributedOptions& options) {
  options.check();
  auto g = std::unique_ptr<ProcessGroup>(new ProcessGroup(options));
  if (options.world_size == 1) return g;
  g->impl_ = std::make_unique<Impl>();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000));
  guarded(options, nullptr, "joining the group", [&] {
    if (!options.store_file.empty()) {
      g->impl_->store = c10::make_intrusive<c10d::FileStore>(options.store_file, options.world_size);
      g->impl_->store->setTimeout(timeout);
    } else {
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(options.master_port);
      so.isServer = options.rank == 0;
      so.numWorkers = options.world_size;
      // The rendezvous is Gloo's (its keys in the store, one timeout), not
      // the store's own wait for workers (which takes a multiple of it).
      so.waitWorkers = false;
      so.timeout = timeout;
      g->impl_->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, so);
    }
    if (!options.job_id.empty())
      g->impl_->store = c10::make_intrusive<c10d::PrefixStore>("stepverify/" + options.job_id, g->impl_->store);
    auto go = c10d::ProcessGroupGloo::Options::create();
    // The interface peers reach this rank on: the one named; loopback for a
    // local world; else this host's own address (c10d's default device).
    const auto& m = options.master_addr;
    const bool local = m == "localhost" || m.rfind("127.", 0) == 0 || m == "::1";
    if (!options.interface.empty())
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(options.interface));
    else if (local)
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    go->timeout = timeout;
    go->threads = 1;
    g->impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->impl_->store, options.rank, options.world_size, go);
  });
  return g;
}

std::vector<std::string> ProcessGroup::allgather(const std::string& mine) {
  if (world_size() == 1) return {mine};
  std::vector<std::string> out(static_cast<size_t>(world_size()));
  guarded(options_, impl_->store.get(), "allgather", [&] {
    // Lengths first, then the bytes padded to the longest.
    std::vector<at::Tensor> len_in = {torch::tensor({static_cast<int64_t>(mine.size())}, torch::kLong)};
    std::vector<std::vector<at::Tensor>> len_out(1);
    for (int r = 0; r < world_size(); ++r) len_out[0].push_back(torch::zeros({1}, torch::kLong));
    impl_->pg->allgather(len_out, len_in)->wait();
    int64_t longest = 1;
    for (const auto& t : len_out[0]) longest = std::max(longest, t.item<int64_t>());
    auto buf = torch::zeros({longest}, torch::kUInt8);
    std::memcpy(buf.data_ptr<uint8_t>(), mine.data(), mine.size());
    std::vector<at::Tensor> in = {buf};
    std::vector<std::vector<at::Tensor>> got(1);
    for (int r = 0; r < world_size(); ++r) got[0].push_back(torch::zeros({longest}, torch::kUInt8));
    impl_->pg->allgather(got, in)->wait();
    for (int r = 0; r < world_size(); ++r) {
      const auto n = static_cast<size_t>(len_out[0][static_cast<size_t>(r)].item<int64_t>());
      out[static_cast<size_t>(r)].assign(
          reinterpret_cast<const char*>(got[0][static_cast<size_t>(r)].data_ptr<uint8_t>()), n);
    }
  });
  return out;
}

void ProcessGroup::allreduce_sum(float* data, size_t count) {
  if (world_size() == 1 || count == 0) return;
  guarded(options_, impl_->store.get(), "allreduce", [&] {
    std::vector<at::Tensor> t = {torch::from_blob(data, {static_cast<int64_t>(count)}, torch::kFloat)};
    impl_->pg->allreduce(t)->wait();
  });
}

void ProcessGroup::allreduce_sum(double* data, size_t count) {
  if (world_size() == 1 || count == 0) return;
  guarded(options_, impl_->store.get(), "allreduce", [&] {
    std::vector<at::Tensor> t = {torch::from_blob(data, {static_cast<int64_t>(count)}, torch::kDouble)};
    impl_->pg->allreduce(t)->wait();
  });
}

void ProcessGroup::barrier() {
  if (world_size() == 1) return;
  guarded(options_, impl_->store.get(), "barrier", [&] { impl_->pg->barrier()->wait(); });
}

std::vector<size_t> shard_items(size_t count, size_t block, int rank, int world_size) {
  if (block == 0) block = 1;
  std::vector<size_t> out;
  for (size_t i = 0; i < count; ++i)
    if (static_cast<int>((i / block) % static_cast<size_t>(world_size)) == rank) out.push_back(i);
  return out;
}

}  // namespace stepverify
