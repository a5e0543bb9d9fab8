// Scale-out over c10d: the process group (ranks as threads over a FileStore),
// and sharded CLI jobs (ranks as processes over a TCPStore on 127.0.0.1)
// whose outputs must be byte-identical to one process's. Only loopback is
// ever bound or connected to.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "test_support.h"

#include "backbone/tensor_io.h"
#include "stepverify/checkpoint.h"
#include "stepverify/distributed.h"
#include "stepverify/errors.h"
#include "stepverify/generative.h"
#include "stepverify/verifier.h"

using namespace stepverify;

namespace {

// A free TCP port on 127.0.0.1 (bound to port 0, then released).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A generative spec with a short plain prompt (the fixture LM's context is 512).
GenerativeSpec plain_spec(const std::string& name) {
  GenerativeSpec spec;
  spec.name = name;
  spec.prompt_template = "Problem: {question}\nSolution:\n{steps}\nCheck:";
  return spec;
}

const std::string kCli = STEPVERIFY_CLI;
const std::string kLaunch = std::string(STEPVERIFY_SOURCE_DIR) + "/scripts/launch_local.sh";

}  // namespace

TEST_CASE("process group: allgather, allreduce and barrier across 3 ranks, a world of 1 alone", "[distributed]") {
  test::TempDir tmp;
  const int W = 3;
  std::vector<std::vector<std::string>> gathered(W);
  std::vector<std::vector<double>> sums(W);
  std::vector<std::vector<float>> fsums(W);
  std::vector<std::string> errors(W);
  std::vector<std::thread> ranks;
  for (int r = 0; r < W; ++r)
    ranks.emplace_back([&, r] {
      try {
        DistributedOptions o;
        o.rank = r;
        o.world_size = W;
        o.store_file = (tmp.path / "store").string();
        o.timeout_seconds = 30;
        auto g = ProcessGroup::create(o);
        // Different lengths, an empty one, bytes that are not text.
        gathered[r] =
            g->allgather(r == 1 ? std::string()
                                : std::string(static_cast<size_t>(5 * r + 1), 'a' + r) + std::string(1, '\0') + "\xff");
        sums[r] = {1.0 * r, 10.0 + r, -0.5};
        g->allreduce_sum(sums[r].data(), sums[r].size());
        fsums[r] = {static_cast<float>(r + 1)};
        g->allreduce_sum(fsums[r].data(), fsums[r].size());
        g->barrier();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int r = 0; r < W; ++r) {
    INFO("rank " << r << ": " << errors[r]);
    REQUIRE(errors[r].empty());
    REQUIRE(gathered[r].size() == 3);
    CHECK(gathered[r][0] == std::string("a") + std::string(1, '\0') + "\xff");
    CHECK(gathered[r][1].empty());
    CHECK(gathered[r][2] == std::string(11, 'c') + std::string(1, '\0') + "\xff");
    CHECK(sums[r] == std::vector<double>{3.0, 33.0, -1.5});
    CHECK(fsums[r] == std::vector<float>{6.0f});
  }
  // A world of 1 needs no store and returns its own values.
  auto one = ProcessGroup::create({});
  CHECK(one->allgather("x") == std::vector<std::string>{"x"});
  double v = 2;
  one->allreduce_sum(&v, 1);
  CHECK(v == 2);
  // The assignment every sharded job uses: blocks dealt round-robin.
  CHECK(shard_items(7, 2, 1, 3) == std::vector<size_t>{2, 3});
  CHECK(shard_items(7, 1, 0, 3) == std::vector<size_t>{0, 3, 6});
  DistributedOptions bad;
  bad.rank = 2;
  bad.world_size = 2;
  CHECK_THROWS_AS(ProcessGroup::create(bad), ConfigError);
}

TEST_CASE("sharded score, eval processbench and label: 2 and 3 local ranks write the bytes one process writes",
          "[distributed]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  test::TempDir tmp;
  {
    std::ofstream f(tmp.path / "in.jsonl");
    for (int i = 0; i < 150; ++i)
      f << nlohmann::json{{"id", i},
                          {"question", "What is " + std::to_string(i) + " + 7?"},
                          {"steps",
                           {std::to_string(i) + " + 7 = " + std::to_string(i + 7 + (i % 5 == 0)),
                            "The answer is " + std::to_string(i + 7)}}}
               .dump()
        << "\n";
    f << "not json\n";  // reported once, by rank 0; skipped by all
  }
  auto run = [&](int ranks, const std::string& args, const std::string& out) {
    const std::string cmd = (ranks == 1 ? kCli : kLaunch + " " + std::to_string(ranks) + " " + kCli) + " " + args +
                            " --output " + (tmp.path / out).string();
    const auto [rc, text] = test::run_command("(" + cmd + " 2>&1)");
    INFO(cmd << "\n" << text);
    REQUIRE(rc == 0);
    return slurp(tmp.path / out);
  };
  const std::string score = "score --model " + dir->string() + " --input " + (tmp.path / "in.jsonl").string();
  const auto one = run(1, score, "one.jsonl");
  CHECK(test::count_of(one, "\n") == 150);
  CHECK(run(2, score, "two.jsonl") == one);
  CHECK(run(3, score, "three.jsonl") == one);

  // eval processbench --model: the per-record predictions, byte for byte.
  {
    nlohmann::json records = nlohmann::json::array();
    for (int i = 0; i < 140; ++i)
      records.push_back({{"id", "arith-" + std::to_string(i)},
                         {"problem", "What is " + std::to_string(i) + " * 2?"},
                         {"steps",
                          {std::to_string(i) + " * 2 = " + std::to_string(2 * i + (i % 3 == 0)),
                           "The answer is " + std::to_string(2 * i)}},
                         {"label", i % 3 == 0 ? 0 : -1}});
    test::write_text(tmp.path / "pb.json", records.dump());
    auto eval = [&](int ranks, const std::string& out) {
      const std::string cmd = (ranks == 1 ? kCli : kLaunch + " " + std::to_string(ranks) + " " + kCli) +
                              " eval processbench --model " + dir->string() + " --data " +
                              (tmp.path / "pb.json").string() + " --json --predictions " + (tmp.path / out).string();
      const auto [rc, text] = test::run_command("(" + cmd + " 2>/dev/null)");
      INFO(cmd);
      REQUIRE(rc == 0);
      return text + slurp(tmp.path / out);
    };
    const auto p1 = eval(1, "p1.jsonl");
    CHECK(test::count_of(p1, "\n") > 140);
    CHECK(eval(2, "p2.jsonl") == p1);
    CHECK(eval(3, "p3.jsonl") == p1);
  }

  // eval bon: curves over subsets, computed per problem across ranks.
  {
    std::ofstream f(tmp.path / "bon.jsonl");
    uint64_t x = 7;
    auto next = [&] { return (x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
    for (int i = 0; i < 40; ++i) {
      nlohmann::json cands = nlohmann::json::array();
      for (int k = 0; k < 8; ++k) {
        const bool right = next() % 3 != 0;
        cands.push_back({{"answer", std::to_string(right ? i : i + 1 + static_cast<int>(next() % 3))},
                         {"score", static_cast<double>(next() % 1000) / 1000},
                         {"step_scores", {static_cast<double>(next() % 1000) / 1000, right ? 0.9 : 0.2}},
                         {"step_labels", {true, right}}});
      }
      f << nlohmann::json{{"id", i}, {"gold", std::to_string(i)}, {"candidates", cands}}.dump() << "\n";
    }
  }
  auto bon = [&](int ranks) {
    const auto [rc, text] =
        test::run_command("(" + (ranks == 1 ? kCli : kLaunch + " " + std::to_string(ranks) + " " + kCli) +
                          " eval bon --input " + (tmp.path / "bon.jsonl").string() + " --json 2>/dev/null)");
    REQUIRE(rc == 0);
    return text;
  };
  const auto b1 = bon(1);
  CHECK(b1.find("\"majority\"") != std::string::npos);
  CHECK(bon(2) == b1);
  CHECK(bon(3) == b1);

  const std::string models = STEPVERIFY_SOURCE_DIR "/models";
  {
    std::ofstream f(tmp.path / "label.jsonl");
    for (int i = 0; i < 10; ++i) {
      const int a = 3 + 2 * i, b = 5 + i, c = a + b + (i % 3 == 0);
      f << nlohmann::json{{"question", "Ana has " + std::to_string(a) + " pens. Ana finds " + std::to_string(b) +
                                           " more pens. How many pens does Ana have now?"},
                          {"steps",
                           {std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(c),
                            "The answer is " + std::to_string(c)}},
                          {"gold", std::to_string(a + b)}}
               .dump()
        << "\n";
    }
  }
  for (const std::string method : {"mc", "binary"}) {
    INFO(method);
    const std::string label = "label --policy " + models + "/policy --input " + (tmp.path / "label.jsonl").string() +
                              " --rollouts 4 --requests-per-call 3 --method " + method;
    const auto l1 = run(1, label, "l1.jsonl");
    CHECK(test::count_of(l1, "\n") == 10);
    CHECK(run(2, label, "l2.jsonl") == l1);
    CHECK(run(3, label, "l3.jsonl") == l1);
  }
}

TEST_CASE("judge: a generative verifier's chains per line, seeded per item; 2 ranks write the same bytes",
          "[distributed]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  test::TempDir tmp;
  auto spec = plain_spec("test");
  spec.stop = "e";
  test::write_text(tmp.path / "spec.json", spec.to_json());
  std::vector<Solution> sols;
  {
    std::ofstream f(tmp.path / "in.jsonl");
    for (int i = 0; i < 5; ++i) {
      sols.push_back(
          {"What is " + std::to_string(i) + " + 1?", {std::to_string(i) + " + 1 = " + std::to_string(i + 1)}});
      f << nlohmann::json{{"id", i}, {"question", sols.back().question}, {"steps", sols.back().steps}}.dump() << "\n";
      if (i == 2) f << nlohmann::json{{"question", "q"}, {"steps", nlohmann::json::array()}}.dump() << "\n";
      if (i == 3) {  // a prompt that leaves no room for a chain: refused with its line, before any work
        std::string long_q;
        for (int w = 0; w < 3000; ++w) long_q += "seven ";
        f << nlohmann::json{{"question", long_q}, {"steps", {"7"}}}.dump() << "\n";
      }
    }
  }
  auto run = [&](int ranks, const std::string& out) {
    const std::string cmd = (ranks == 1 ? kCli : kLaunch + " " + std::to_string(ranks) + " " + kCli) +
                            " judge --model " + dir->string() + " --spec " + (tmp.path / "spec.json").string() +
                            " --input " + (tmp.path / "in.jsonl").string() + " --output " + (tmp.path / out).string() +
                            " --chains 3 --max-tokens 8 --temperature 1 --seed 5";
    const auto [rc, text] = test::run_command("(" + cmd + " 2>&1)");
    INFO(cmd << "\n" << text);
    REQUIRE(rc == 0);
    CHECK(text.find(":4: generative verifier: no steps to verify (line skipped)") != std::string::npos);
    CHECK(text.find(":6: generative verifier: the prompt takes") != std::string::npos);
    CHECK(text.find("2 of 7 lines could not be judged") != std::string::npos);
    return slurp(tmp.path / out);
  };
  const auto one = run(1, "one.jsonl");
  CHECK(run(2, "two.jsonl") == one);
  // Each line holds what the library gives that item at seed 5 + (i << 20).
  auto v = GenerativeVerifier::load(*dir, {(tmp.path / "spec.json").string(), {}});
  std::istringstream lines(one);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    REQUIRE(i < sols.size());
    const auto j = nlohmann::json::parse(line);
    CHECK(j["id"] == static_cast<int>(i));
    GenerativeOptions o;
    o.chains = 3;
    o.max_tokens = 8;
    o.sampling.temperature = 1;
    o.sampling.seed = 5 + (static_cast<uint64_t>(i) << 20);
    const auto r = v->verify(sols[i].question, sols[i].steps, o);
    const auto& got = j["judge"];
    REQUIRE(got["chains"].size() == 3);
    CHECK(got["score"].get<double>() == Approx(r.score).epsilon(1e-12));
    CHECK(got["generated_tokens"] == r.generated_tokens);
    for (size_t k = 0; k < 3; ++k) {
      CHECK(got["chains"][k]["text"] == r.chains[k].text);
      CHECK(got["chains"][k]["tokens"] == r.chains[k].tokens);
      CHECK(got["chains"][k]["verdicts"] == nlohmann::json{"missing"});
    }
    CHECK(got["step_scores"] == nlohmann::json::parse("[null]"));
  }
}

TEST_CASE("eval processbench --generative: a step's score is the share of chains calling it correct; 2 ranks agree",
          "[distributed]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  test::TempDir tmp;
  // Verdicts a random LM writes often: "e" (correct) and "a" (incorrect), so chains judge steps.
  auto spec = plain_spec("letters");
  spec.correct_verdict = "e";
  spec.incorrect_verdict = "a";
  test::write_text(tmp.path / "spec.json", spec.to_json());
  nlohmann::json records = nlohmann::json::array();
  std::vector<Solution> sols;
  for (int i = 0; i < 6; ++i) {
    sols.push_back({"What is " + std::to_string(i) + " * 3?",
                    {std::to_string(i) + " * 3 = " + std::to_string(3 * i + (i % 2)), "So the answer is clear.",
                     "The answer is " + std::to_string(3 * i)}});
    records.push_back({{"id", "arith-" + std::to_string(i)},
                       {"problem", sols.back().question},
                       {"steps", sols.back().steps},
                       {"label", i % 2 == 1 ? 0 : -1}});
  }
  test::write_text(tmp.path / "pb.json", records.dump());
  auto eval = [&](int ranks, const std::string& out) {
    const std::string cmd = (ranks == 1 ? kCli : kLaunch + " " + std::to_string(ranks) + " " + kCli) +
                            " eval processbench --model " + dir->string() + " --generative --spec " +
                            (tmp.path / "spec.json").string() + " --data " + (tmp.path / "pb.json").string() +
                            " --chains 3 --max-tokens 24 --temperature 1 --seed 2 --json --predictions " +
                            (tmp.path / out).string();
    const auto [rc, text] = test::run_command("(" + cmd + " 2>/dev/null)");
    INFO(cmd << "\n" << text);
    REQUIRE(rc == 0);
    return text + slurp(tmp.path / out);
  };
  const auto one = eval(1, "p1.jsonl");
  CHECK(eval(2, "p2.jsonl") == one);
  // Each record's step scores and first-error prediction, from the library at seed 2 + (i << 20).
  auto v = GenerativeVerifier::load(*dir, {(tmp.path / "spec.json").string(), {}});
  std::istringstream lines(slurp(tmp.path / "p1.jsonl"));
  std::string line;
  std::set<double> seen;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    REQUIRE(i < sols.size());
    const auto j = nlohmann::json::parse(line);
    GenerativeOptions o;
    o.chains = 3;
    o.max_tokens = 24;
    o.sampling.temperature = 1;
    o.sampling.seed = 2 + (static_cast<uint64_t>(i) << 20);
    const auto r = v->verify(sols[i].question, sols[i].steps, o);
    int first_error = -1;
    for (size_t s = 0; s < 3; ++s) {
      const double want = std::isnan(r.step_scores[s]) ? 1.0 : r.step_scores[s];
      CHECK(j["step_scores"][s].get<double>() == want);
      seen.insert(want);
      if (first_error < 0 && want < 0.5) first_error = static_cast<int>(s);
    }
    CHECK(j["prediction"] == first_error);
  }
  CHECK(seen.size() >= 2);  // the chains gave verdicts both ways: the case is not all "no verdict"

  // The same chains through `judge`, then `eval processbench --scores` on its
  // output: the same predictions and metrics as --generative.
  {
    std::ofstream f(tmp.path / "pb.jsonl");
    for (const auto& r : records) f << r.dump() << "\n";
  }
  const std::string judge = kCli + " judge --model " + dir->string() + " --spec " + (tmp.path / "spec.json").string() +
                            " --input " + (tmp.path / "pb.jsonl").string() + " --output " +
                            (tmp.path / "judged.jsonl").string() +
                            " --chains 3 --max-tokens 24 --temperature 1 --seed 2 2>/dev/null";
  REQUIRE(test::run_command(judge).first == 0);
  const std::string from_judge = kCli + " eval processbench --scores " + (tmp.path / "judged.jsonl").string() +
                                 " --json --predictions " + (tmp.path / "p3.jsonl").string() + " 2>/dev/null";
  const auto [rc, text] = test::run_command(from_judge);
  INFO(from_judge << "\n" << text);
  REQUIRE(rc == 0);
  CHECK(text + slurp(tmp.path / "p3.jsonl") == one);
}

TEST_CASE("a rank that fails or never comes makes the others exit with an error naming it, within the timeout",
          "[distributed]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  test::TempDir tmp;
  test::write_text(tmp.path / "in.jsonl",
                   nlohmann::json{{"question", "What is 1 + 1?"}, {"steps", {"1 + 1 = 2"}}}.dump() + "\n");
  const std::string common = kCli + " score --model " + dir->string() + " --output " +
                             (tmp.path / "out.jsonl").string() + " --dist-timeout 8 --world-size 2 --master 127.0.0.1:";
  SECTION("rank 1 fails after joining (its input cannot be read)") {
    const std::string port = std::to_string(free_port());
    const auto t0 = std::chrono::steady_clock::now();
    const auto [rc, text] = test::run_command(
        "(" + common + port + " --rank 0 --input " + (tmp.path / "in.jsonl").string() + " 2>&1 & " + common + port +
        " --rank 1 --input " + (tmp.path / "missing.jsonl").string() + " >/dev/null 2>&1; wait $!)");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(text);
    CHECK(rc != 0);
    CHECK(text.find("rank 0 of 2") != std::string::npos);
    CHECK(text.find("rank 1 failed") != std::string::npos);
    CHECK(secs < 8 + 5);
    CHECK_FALSE(std::filesystem::exists(tmp.path / "out.jsonl"));
  }
  SECTION("rank 1 never starts: rank 0 gives up at the timeout") {
    const auto t0 = std::chrono::steady_clock::now();
    const auto [rc, text] = test::run_command("(" + common + std::to_string(free_port()) + " --rank 0 --input " +
                                              (tmp.path / "in.jsonl").string() + " 2>&1)");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(text);
    CHECK(rc != 0);
    CHECK(text.find("joining the group failed (rank 1 has not joined within 8 s)") != std::string::npos);
    CHECK(secs < 8 + 5);
  }
  SECTION("the launcher stops the job and returns the failure") {
    const auto [rc, text] =
        test::run_command("(" + kLaunch + " 2 sh -c 'if [ \"$RANK\" = 1 ]; then exit 3; fi; exec sleep 30' 2>&1)");
    INFO(text);
    CHECK(rc == 3);
  }
}

TEST_CASE("a rank killed mid-collective is named by the others, who exit long before the timeout", "[distributed]") {
  test::TempDir tmp;
  struct Rank {
    int rc = -1;
    std::string text;
  };
  // Starts one dist_worker per role (rank = index) and waits for them all.
  double secs = 0;
  const auto world = [&](const std::vector<std::string>& roles, const std::string& where, int timeout_s) {
    std::string cmd = "(";
    for (size_t r = 0; r < roles.size(); ++r) {
      const std::string out = (tmp.path / ("rank" + std::to_string(r))).string();
      cmd += "(" + std::string(STEPVERIFY_DIST_WORKER) + " " + std::to_string(r) + " " + std::to_string(roles.size()) +
             " " + where + " " + std::to_string(timeout_s) + " " + roles[r] + " >" + out + ".txt 2>&1; echo $? >" +
             out + ".rc) & ";
    }
    cmd += "wait) >/dev/null 2>&1";
    const auto t0 = std::chrono::steady_clock::now();
    test::run_command(cmd);
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<Rank> ranks(roles.size());
    for (size_t r = 0; r < roles.size(); ++r) {
      const auto out = tmp.path / ("rank" + std::to_string(r));
      ranks[r].rc = std::stoi(slurp(out.string() + ".rc"));
      ranks[r].text = slurp(out.string() + ".txt");
      UNSCOPED_INFO("rank " << r << " (" << roles[r] << "): exit " << ranks[r].rc << ": " << ranks[r].text);
    }
    return ranks;
  };
  const auto has = [](const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
  };
  SECTION("rank 2 of 3 killed while ranks 0 and 1 wait in an allgather (TCPStore)") {
    const auto ranks = world({"ok", "ok", "kill"}, std::to_string(free_port()), 60);
    CHECK(ranks[2].rc == 128 + 9);
    for (int r : {0, 1}) {
      CHECK(ranks[r].rc == 1);
      CHECK(has(ranks[r].text, "rank " + std::to_string(r) + " of 3: allgather failed"));
      CHECK(has(ranks[r].text, "rank 2 stopped answering: killed"));
    }
    CHECK(secs < 20);  // the diagnosis takes seconds; the timeout is 60
  }
  SECTION("rank 0, which serves the TCPStore, killed") {
    const auto ranks = world({"kill", "ok"}, std::to_string(free_port()), 60);
    CHECK(ranks[0].rc == 128 + 9);
    CHECK(ranks[1].rc == 1);
    CHECK(has(ranks[1].text,
              "rank 1 of 2: allgather failed (the store rank 0 served is gone: rank 0 left after an "
              "error, was killed, or its machine or network is down)"));
    CHECK(secs < 20);
  }
  SECTION("rank 0, which serves the TCPStore, leaves by an error: it stays until the others have read why") {
    const auto ranks = world({"throw", "ok", "ok"}, std::to_string(free_port()), 60);
    CHECK(ranks[0].rc == 1);
    CHECK(has(ranks[0].text, "planned failure"));
    for (int r : {1, 2}) {
      CHECK(ranks[r].rc == 1);
      CHECK(has(ranks[r].text, "rank " + std::to_string(r) + " of 3: allgather failed (rank 0 failed)"));
    }
    CHECK(secs < 20);
  }
  SECTION("rank 0 of 3 killed over a FileStore") {
    const auto ranks = world({"kill", "ok", "ok"}, (tmp.path / "store").string(), 60);
    CHECK(ranks[0].rc == 128 + 9);
    for (int r : {1, 2}) {
      CHECK(ranks[r].rc == 1);
      CHECK(has(ranks[r].text, "rank 0 stopped answering: killed"));
    }
    CHECK(secs < 20);
  }
  SECTION("a rank alive but late past the timeout is not called killed") {
    const auto ranks = world({"ok", "slow"}, std::to_string(free_port()), 2);
    CHECK(ranks[0].rc == 1);
    CHECK(has(ranks[0].text, "rank 0 of 2: allgather failed (no rank failed or stopped: a peer did not reach"));
    CHECK(ranks[1].rc == 1);  // it finds the group gone when it comes, and says who gave up first
    CHECK(has(ranks[1].text, "rank 1 of 2: allgather failed (rank 0 gave up on it first (see that error))"));
  }
}

TEST_CASE("data-parallel training: 2 ranks end with the parameters of one process splitting batches alike",
          "[distributed]") {
  const std::string models = STEPVERIFY_SOURCE_DIR "/models";
  if (!std::filesystem::exists(models + "/policy/config.json")) return;
  test::TempDir tmp;
  {
    std::ofstream lm(tmp.path / "lm.jsonl"), trl(tmp.path / "trl.jsonl");
    for (int i = 0; i < 24; ++i) {
      const int a = 2 + 3 * i, b = 5 + i % 7;
      const std::string q = "Ana has " + std::to_string(a) + " pens. Ana finds " + std::to_string(b) +
                            " more pens. How many pens does Ana have now?";
      const int c = a + b + (i % 4 == 0);
      lm << nlohmann::json{{"prompt", q + "\n"},
                           {"completion", std::to_string(a) + " + " + std::to_string(b) + " = " +
                                              std::to_string(a + b) + "\nThe answer is " + std::to_string(a + b) +
                                              "\n"}}
                .dump()
         << "\n";
      trl << nlohmann::json{{"prompt", q},
                            {"completions",
                             {std::to_string(a) + " + " + std::to_string(b) + " = " + std::to_string(c),
                              "The answer is " + std::to_string(c)}},
                            {"labels", {c == a + b, c == a + b}}}
                 .dump()
          << "\n";
    }
  }
  // The 2 ranks each take half of every micro-batch at one thread; the one
  // process splits it the same way over 2 threads. Both run their products
  // at one BLAS thread per shard (the process does so by itself): OpenBLAS's
  // sums depend on its thread count under some kernels (its Haswell ones).
  auto same_weights = [&](const std::string& cmd, const std::string& out) {
    const auto one = test::run_command("(" + kCli + " " + cmd + " --threads 2 --out " +
                                       (tmp.path / (out + "1")).string() + " 2>&1)");
    INFO(one.second);
    REQUIRE(one.first == 0);
    const auto two = test::run_command("(STEPVERIFY_BLAS_THREADS=1 " + kLaunch + " 2 " + kCli + " " + cmd +
                                       " --threads 1 --out " + (tmp.path / (out + "2")).string() + " 2>&1)");
    INFO(two.second);
    REQUIRE(two.first == 0);
    auto a = SafetensorsFile::open(tmp.path / (out + "1") / "model.safetensors");
    auto b = SafetensorsFile::open(tmp.path / (out + "2") / "model.safetensors");
    REQUIRE(a->names() == b->names());
    double worst = 0;
    for (const auto& n : a->names())
      worst = std::max(worst, test::max_abs_diff(to_tensor(a->tensor(n)), to_tensor(b->tensor(n))));
    CHECK(worst < 1e-5);
    // And training moved them from where they started.
    auto init = SafetensorsFile::open(models + "/policy/model.safetensors");
    double moved = 0;
    for (const auto& n : a->names())
      if (init->contains(n))
        moved = std::max(moved, test::max_abs_diff(to_tensor(a->tensor(n)), to_tensor(init->tensor(n))));
    CHECK(moved > 1e-4);
  };
  same_weights("train lm --init " + models + "/policy --data " + (tmp.path / "lm.jsonl").string() +
                   " --steps 4 --batch 8 --warmup 1",
               "lm");
  same_weights("train verifier --backbone " + models + "/policy --spec " + models +
                   "/verifier/stepverify.json --data " + (tmp.path / "trl.jsonl").string() +
                   " --steps 4 --batch 8 --warmup 1 --last-layers 1",
               "verifier");
}
