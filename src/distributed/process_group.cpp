// ProcessGroup: c10d's ProcessGroupGloo over a TCPStore or FileStore.
#include "stepverify/distributed.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

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

namespace {

// Store keys, under the job's prefix: a rank that leaves by an error, a
// rank's heartbeat counter, a rank that has joined, a rank done diagnosing a
// failure (it leaves next: its heartbeat stopping then is no fault).
std::string failed_key(int rank) { return "stepverify/failed/" + std::to_string(rank); }
std::string beat_key(int rank) { return "stepverify/beat/" + std::to_string(rank); }
std::string joined_key(int rank) { return "stepverify/joined/" + std::to_string(rank); }
std::string diagnosed_key(int rank) { return "stepverify/diagnosed/" + std::to_string(rank); }

// Every rank bumps its heartbeat this often; a counter that has not moved in
// kStillBeats intervals belongs to a process that is gone (the thread beats
// while the rank computes outside a collective). A store operation of the
// heartbeat or of a diagnosis waits at most kProbeTimeout (a store whose
// machine went silent must not hold them for the job's timeout).
constexpr auto kBeat = std::chrono::milliseconds(1000);
constexpr int kStillBeats = 3;
constexpr auto kProbeTimeout = std::chrono::milliseconds(10000);
// How long rank 0, which serves the TCPStore, stays after a failure so the
// ranks woken by it can read the store (later ones find it gone).
constexpr int kLingerBeats = 10;

const char* const kStoreGone =
    "the store rank 0 served is gone: rank 0 left after an error, was killed, or its machine or network is down";

std::string join_names(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

// `store` with this job's keys under their own prefix (none without a job id).
c10::intrusive_ptr<c10d::Store> for_job(c10::intrusive_ptr<c10d::Store> store, const std::string& job_id) {
  if (job_id.empty()) return store;
  return c10::make_intrusive<c10d::PrefixStore>("stepverify/" + job_id, std::move(store));
}

std::string strip_trace(std::string msg) {
  if (const size_t cut = msg.find("\nException raised from"); cut != std::string::npos) msg.resize(cut);
  return msg;
}

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  // The diagnosis's own client (a TCPStore with a short timeout; the
  // FileStore itself).
  c10::intrusive_ptr<c10d::Store> probe;
  // A new client like `probe`, for the heartbeat (a TCPStore client whose
  // operation timed out may read a late reply as the next one's, so the
  // heartbeat and the diagnosis never share one); null for a FileStore.
  std::function<c10::intrusive_ptr<c10d::Store>()> new_client;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  bool tcp = false;    // a TCPStore, which rank 0 serves (else a FileStore)
  std::string broken;  // after a failed collective: its error, thrown again by later calls

  // The heartbeat thread.
  std::thread beat;
  std::mutex beat_mutex;
  std::condition_variable beat_cv;
  bool beat_stop = false;

  void start_beat(int rank) {
    // Its own client, so a timed-out operation never leaves a late reply
    // for the diagnosis to read. Its first failure ends it (the store is
    // gone with rank 0; or a live store answered nothing in 10 s, and a
    // new_client could block an exit for as long).
    c10::intrusive_ptr<c10d::Store> client = probe;
    try {
      if (new_client) client = new_client();
    } catch (...) {}  // (then the diagnosis's; rank 0's store just answered)
    beat = std::thread([this, client, key = beat_key(rank)] {
      std::unique_lock<std::mutex> lock(beat_mutex);
      while (!beat_stop) {
        lock.unlock();
        try {
          client->add(key, 1);
        } catch (...) {
          return;
        }
        lock.lock();
        beat_cv.wait_for(lock, kBeat, [&] { return beat_stop; });
      }
    });
  }
  void stop_beat() {
    {
      std::lock_guard<std::mutex> lock(beat_mutex);
      beat_stop = true;
    }
    beat_cv.notify_all();
    if (beat.joinable()) beat.join();
  }

  // The ranks other than `me` holding `key(r)` in the store.
  std::vector<int> ranks_with(const DistributedOptions& o, std::string (*key)(int)) const {
    std::vector<int> who;
    for (int r = 0; r < o.world_size; ++r)
      if (r != o.rank && probe->check({key(r)})) who.push_back(r);
    return who;
  }

  // Rank 0 serving the TCPStore, after a failure: waits (a little) until
  // `live` other ranks have read the store.
  void linger(const DistributedOptions& o, size_t live) const {
    for (int i = 0; i < kLingerBeats && ranks_with(o, diagnosed_key).size() < live; ++i)
      std::this_thread::sleep_for(kBeat);
  }

  // After a failed collective: who is at fault. Closes this rank's
  // connections first (a peer blocked on this rank wakes), then reads the
  // store: ranks that said they failed, ranks whose heartbeat stopped (killed,
  // or their machine or network went down), ranks that gave up on the
  // collective first, or the store itself gone with rank 0.
  std::string diagnose(const DistributedOptions& o) {
    pg.reset();
    const auto read_beats = [&] {
      std::vector<int64_t> b(static_cast<size_t>(o.world_size));
      for (int r = 0; r < o.world_size; ++r) b[static_cast<size_t>(r)] = probe->add(beat_key(r), 0);
      return b;
    };
    const auto has = [](const std::vector<int>& v, int r) { return std::find(v.begin(), v.end(), r) != v.end(); };
    std::vector<int> failed, stopped, first;
    try {
      failed = ranks_with(o, failed_key);
      if (failed.empty()) {
        const auto before = read_beats();
        std::this_thread::sleep_for(kBeat * kStillBeats);
        failed = ranks_with(o, failed_key);
        const auto after = read_beats();
        first = ranks_with(o, diagnosed_key);
        for (int r = 0; r < o.world_size; ++r)
          if (r != o.rank && before[static_cast<size_t>(r)] == after[static_cast<size_t>(r)] && !has(failed, r) &&
              !has(first, r))
            stopped.push_back(r);
      }
      probe->set(diagnosed_key(o.rank), std::vector<uint8_t>{1});
      if (tcp && o.rank == 0) linger(o, static_cast<size_t>(o.world_size - 1) - failed.size() - stopped.size());
    } catch (...) {
      return tcp && o.rank != 0 ? kStoreGone : "the store cannot be read";
    }
    std::string out;
    if (!failed.empty()) out = join_names(failed) + " failed";
    if (!stopped.empty())
      out += (out.empty() ? "" : "; ") + join_names(stopped) +
             " stopped answering: killed, or its machine or network is down";
    if (out.empty() && !first.empty()) out = join_names(first) + " gave up on it first (see that error)";
    if (out.empty())
      out = "no rank failed or stopped: a peer did not reach the collective within " +
            std::to_string(static_cast<int>(o.timeout_seconds)) + " s, or left the group";
    return out;
  }
};

ProcessGroup::ProcessGroup(DistributedOptions options) : options_(std::move(options)) {}

ProcessGroup::~ProcessGroup() {
  if (!impl_) return;
  // Leaving by an exception of its own (not one a collective's diagnosis
  // raised): say so in the store, so the peers' errors name this rank. Rank 0
  // serving the store closes its connections (peers blocked on it wake) and
  // stays a little, so they can read it.
  if (impl_->probe && impl_->broken.empty() && std::uncaught_exceptions() > 0) {
    try {
      const std::string v = "failed";
      impl_->probe->set(failed_key(rank()), std::vector<uint8_t>(v.begin(), v.end()));
      if (impl_->tcp && rank() == 0) {
        impl_->pg.reset();
        impl_->linger(options_, static_cast<size_t>(world_size() - 1));
      }
    } catch (...) {}
  }
  impl_->stop_beat();
}

namespace {

std::string failure(const DistributedOptions& o, const char* what, const std::string& peer, const std::string& msg) {
  return "distributed: rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) + ": " + what +
         " failed (" + peer + "): " + msg;
}

}  // namespace

// Runs a collective; its failure (a lost peer, a timeout) becomes an Error
// naming this rank, the collective and the rank at fault. The group is then
// broken: later calls throw the same error.
template <typename F>
void ProcessGroup::guarded(const char* what, F&& f) {
  if (!impl_->broken.empty()) throw Error(impl_->broken);
  try {
    f();
  } catch (const std::exception& e) {
    const std::string msg = strip_trace(e.what());
    impl_->broken = failure(options_, what, impl_->diagnose(options_), msg);
    throw Error(impl_->broken);
  }
}

std::unique_ptr<ProcessGroup> ProcessGroup::create(const DistributedOptions& options) {
  options.check();
  auto g = std::unique_ptr<ProcessGroup>(new ProcessGroup(options));
  if (options.world_size == 1) return g;
  g->impl_ = std::make_unique<Impl>();
  Impl& impl = *g->impl_;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000));
  const auto started = std::chrono::steady_clock::now();
  // The interface peers reach this rank on: the one named; loopback for a
  // local world; else this host's own address (c10d's default device).
  auto go = c10d::ProcessGroupGloo::Options::create();
  try {
    const auto& m = options.master_addr;
    const bool local = m == "localhost" || m.rfind("127.", 0) == 0 || m == "::1";
    if (!options.interface.empty())
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(options.interface));
    else if (local)
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  } catch (const std::exception& e) {
    const std::string which =
        options.interface.empty() ? "this host's address" : "interface '" + options.interface + "'";
    throw Error(failure(options, "joining the group", "no network device for " + which, strip_trace(e.what())));
  }
  go->timeout = timeout;
  go->threads = 1;
  try {
    if (!options.store_file.empty()) {
      impl.store = c10::make_intrusive<c10d::FileStore>(options.store_file, options.world_size);
      impl.store->setTimeout(timeout);
      impl.store = for_job(impl.store, options.job_id);
      impl.probe = impl.store;
    } else {
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(options.master_port);
      so.isServer = options.rank == 0;
      so.numWorkers = options.world_size;
      // The rendezvous is Gloo's (its keys in the store, one timeout), not
      // the store's own wait for workers (which takes a multiple of it).
      so.waitWorkers = false;
      so.timeout = timeout;
      impl.store = for_job(c10::make_intrusive<c10d::TCPStore>(options.master_addr, so), options.job_id);
      impl.new_client = [addr = options.master_addr, port = options.master_port,
                         job = options.job_id]() -> c10::intrusive_ptr<c10d::Store> {
        c10d::TCPStoreOptions po;
        po.port = static_cast<uint16_t>(port);
        po.isServer = false;
        po.waitWorkers = false;
        po.timeout = kProbeTimeout;
        return for_job(c10::make_intrusive<c10d::TCPStore>(addr, po), job);
      };
      impl.probe = impl.new_client();
      impl.tcp = true;
    }
  } catch (const std::exception& e) {
    const std::string where = options.store_file.empty()
                                  ? "the store at " + options.master_addr + ":" + std::to_string(options.master_port)
                                  : "the store file " + options.store_file;
    throw Error(failure(options, "joining the group", where + " cannot be reached", strip_trace(e.what())));
  }
  try {
    impl.store->set(joined_key(options.rank), std::vector<uint8_t>{1});
    impl.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl.store, options.rank, options.world_size, go);
  } catch (const std::exception& e) {
    impl.broken = "joining";  // nothing to mark: the group never formed
    // Which ranks never joined (the store may be gone with rank 0).
    const bool waited = std::chrono::steady_clock::now() - started >= timeout;
    std::string peer;
    try {
      std::vector<int> missing;
      for (int r = 0; r < options.world_size; ++r)
        if (!impl.probe->check({joined_key(r)})) missing.push_back(r);
      peer =
          missing.empty()
              ? "every rank joined; a peer left or failed while the group formed"
              : join_names(missing) + (missing.size() == 1 ? " has" : " have") + " not joined" +
                    (waited ? " within " + std::to_string(static_cast<int>(options.timeout_seconds)) + " s" : " yet");
    } catch (...) {
      peer = impl.tcp && options.rank != 0 ? kStoreGone : "the store cannot be read";
    }
    throw Error(failure(options, "joining the group", peer, strip_trace(e.what())));
  }
  impl.start_beat(options.rank);
  return g;
}

std::vector<std::string> ProcessGroup::allgather(const std::string& mine) {
  if (world_size() == 1) return {mine};
  std::vector<std::string> out(static_cast<size_t>(world_size()));
  guarded("allgather", [&] {
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
  guarded("allreduce", [&] {
    std::vector<at::Tensor> t = {torch::from_blob(data, {static_cast<int64_t>(count)}, torch::kFloat)};
    impl_->pg->allreduce(t)->wait();
  });
}

void ProcessGroup::allreduce_sum(double* data, size_t count) {
  if (world_size() == 1 || count == 0) return;
  guarded("allreduce", [&] {
    std::vector<at::Tensor> t = {torch::from_blob(data, {static_cast<int64_t>(count)}, torch::kDouble)};
    impl_->pg->allreduce(t)->wait();
  });
}

void ProcessGroup::barrier() {
  if (world_size() == 1) return;
  guarded("barrier", [&] { impl_->pg->barrier()->wait(); });
}

std::vector<size_t> shard_items(size_t count, size_t block, int rank, int world_size) {
  if (block == 0) block = 1;
  std::vector<size_t> out;
  for (size_t i = 0; i < count; ++i)
    if (static_cast<int>((i / block) % static_cast<size_t>(world_size)) == rank) out.push_back(i);
  return out;
}

}  // namespace stepverify
