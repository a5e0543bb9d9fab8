// A rank for the process-group failure tests: joins a world over a TCPStore
// on 127.0.0.1 (or a FileStore), runs allgathers, and plays its part:
//
//   dist_worker RANK WORLD PORT|STORE_FILE TIMEOUT_S ROLE
//
// ROLE "ok" keeps gathering (20 rounds, 50 ms apart); "kill" gathers 3
// rounds, then, while its peers wait in the 4th, kills itself with SIGKILL;
// "slow" gathers 3 rounds, then computes (sleeps) for 3 x TIMEOUT_S before
// the 4th; "throw" gathers 3 rounds, then leaves by an exception. Prints "done" or the error on stderr; exit 0 or 1.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "stepverify/distributed.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: dist_worker RANK WORLD PORT|STORE_FILE TIMEOUT_S ok|kill|slow|throw\n");
    return 2;
  }
  stepverify::DistributedOptions o;
  o.rank = std::stoi(argv[1]);
  o.world_size = std::stoi(argv[2]);
  const std::string where = argv[3];
  if (where.find_first_not_of("0123456789") == std::string::npos)
    o.master_port = std::stoi(where);
  else
    o.store_file = where;
  o.timeout_seconds = std::stod(argv[4]);
  const std::string role = argv[5];
  try {
    auto g = stepverify::ProcessGroup::create(o);
    for (int round = 0; round < 20; ++round) {
      if (round == 3 && role == "kill") {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the peers are in the collective now
        ::kill(::getpid(), SIGKILL);
      }
      if (round == 3 && role == "throw") throw std::runtime_error("planned failure");
      if (round == 3 && role == "slow")
        std::this_thread::sleep_for(std::chrono::duration<double>(3 * o.timeout_seconds));
      g->allgather(std::to_string(o.rank));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::fprintf(stderr, "done\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
