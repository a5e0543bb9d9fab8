// stepverify/distributed.h: a process group over torch.distributed's c10d
// (Gloo on the CPU), for jobs sharded across processes and machines.
//
//   auto o = stepverify::DistributedOptions::from_env();   // RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//   auto pg = stepverify::ProcessGroup::create(o);         // a world of 1 needs no store, changes nothing
//   auto all = pg->allgather(my_output);                   // every rank's bytes, by rank
//   pg->allreduce_sum(grads.data(), grads.size());         // in place, the same sum on every rank
//
// The store is c10d's TCPStore (rank 0 serves it at master_addr:master_port)
// or, with store_file, its FileStore (a path every rank can reach). The
// rendezvous and every collective wait at most `timeout_seconds` (a peer's
// longer share of the work counts: the default, c10d's 30 minutes, leaves
// room for it); a peer that fails or disappears makes the others throw
// stepverify::Error naming this rank, the world, the collective and the rank
// at fault, never hang past the timeout. The rank at fault is found in the
// store: a rank leaving by an exception marks itself failed; every rank
// bumps a heartbeat counter each second from a thread, so a killed rank (or
// one whose machine or network went down) is the one whose counter stopped;
// a TCPStore that cannot be read means rank 0, which served it, is gone. A
// rank that never joins is named by the others when they give up. After a
// failed collective the group is broken: every later call throws the same
// error.
//
// Built against a CUDA libtorch the same code would use NCCL for GPU tensors;
// this build (Debian's CPU libtorch) has Gloo only.
//
// This header is plain C++ (no torch header).
//
// Thread safety: one ProcessGroup is used by one thread at a time; the
// collectives of a group must be called in the same order on every rank.
#pragma once

#include "stepverify/export.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stepverify {

/// Where a process sits in a group, and how the group meets.
struct STEPVERIFY_API DistributedOptions {
  int rank = 0;                           ///< this process, 0 .. world_size - 1
  int world_size = 1;                     ///< processes in the group (1: no store, no communication)
  std::string master_addr = "127.0.0.1";  ///< rank 0's TCPStore address
  int master_port = 29500;                ///< and port
  /// A FileStore path shared by every rank instead of the TCPStore (empty:
  /// TCP). A file left by a killed job holds its keys: use a fresh path, or a job_id.
  std::string store_file;
  /// The network interface Gloo talks over (e.g. "eth0"). Empty:
  /// $GLOO_SOCKET_IFNAME when set; else loopback when master_addr is a
  /// loopback address (a local world); else the address this host's name
  /// resolves to (c10d's default device).
  std::string interface;
  /// A name for this job's keys in the store (so a store reused by another
  /// job never mixes them). Empty: $STEPVERIFY_JOB_ID, else $TORCHELASTIC_RUN_ID.
  std::string job_id;
  double timeout_seconds = 1800;  ///< the longest any rendezvous or collective may wait

  /// From the environment torchrun sets: RANK, WORLD_SIZE, MASTER_ADDR,
  /// MASTER_PORT, TORCHELASTIC_RUN_ID (and STEPVERIFY_STORE_FILE,
  /// STEPVERIFY_TIMEOUT, STEPVERIFY_JOB_ID, GLOO_SOCKET_IFNAME); unset means
  /// a world of 1. ConfigError naming the variable on a bad value.
  static DistributedOptions from_env();
  /// ConfigError unless 0 <= rank < world_size, the port is 1..65535 and the timeout positive.
  void check() const;
};

class STEPVERIFY_API ProcessGroup {
 public:
  /// Joins the group (blocks until every rank has joined, at most the
  /// timeout). Error naming the rank on failure.
  static std::unique_ptr<ProcessGroup> create(const DistributedOptions& options);
  ~ProcessGroup();

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  bool is_root() const { return options_.rank == 0; }
  const DistributedOptions& options() const { return options_; }

  /// Every rank's `mine`, indexed by rank (any lengths).
  std::vector<std::string> allgather(const std::string& mine);
  /// Sums `data` over the ranks, in place, on every rank.
  void allreduce_sum(float* data, size_t count);
  void allreduce_sum(double* data, size_t count);
  /// Waits for every rank.
  void barrier();

 private:
  struct Impl;
  explicit ProcessGroup(DistributedOptions options);
  template <typename F>
  void guarded(const char* what, F&& f);
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

/// The items of `count` this rank takes when items are dealt round-robin in
/// blocks of `block` (item i goes to rank (i / block) % world_size): the
/// deterministic assignment every sharded job uses.
STEPVERIFY_API std::vector<size_t> shard_items(size_t count, size_t block, int rank, int world_size);

}  // namespace stepverify
