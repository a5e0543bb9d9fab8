// KV cache semantics: append, fork (copy-on-write), truncate, reorder, capacity.
#include "test_support.h"

#include "stepverify/errors.h"
#include "stepverify/model.h"
#include "stepverify/session.h"

using namespace stepverify;

namespace {

ModelConfig tiny(const std::string& arch = "LlamaForCausalLM", const std::string& extra = "") {
  return ModelConfig::from_json(R"({"architectures":[")" + arch +
                                R"("],"vocab_size":50,"hidden_size":32,"intermediate_size":48,"num_hidden_layers":2,)"
                                R"("num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64)" +
                                extra + "}");
}

at::Tensor ids(std::vector<int64_t> v) { return to_batch(v); }

// Logits of the full sequence at its last `n` positions.
at::Tensor full_tail(const Model& m, const std::vector<int64_t>& seq, int64_t n) {
  ForwardInput in;
  in.input_ids = ids(seq);
  auto h = m.forward(in).hidden;
  return m.logits(h.narrow(1, h.size(1) - n, n));
}

at::Tensor step(const Model& m, KVCache& cache, const std::vector<int64_t>& toks) {
  ForwardInput in;
  in.input_ids = ids(toks);
  in.cache = &cache;
  return m.logits(m.forward(in).hidden);
}

std::vector<int64_t> cat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

constexpr double kTol = 1e-5;

}  // namespace

TEST_CASE("fork shares the prefix; siblings diverge correctly in either order", "[kvcache]") {
  auto m = Model::random(tiny(), 7);
  const std::vector<int64_t> prefix = {1, 5, 9, 13, 2, 7}, a = {3, 4}, b = {11, 12, 13};
  auto parent = m->new_cache();
  step(*m, parent, prefix);
  SECTION("parent appends first") {
    auto child = parent.fork();
    auto la = step(*m, parent, a);
    auto lb = step(*m, child, b);
    CHECK(test::max_abs_diff(la, full_tail(*m, cat(prefix, a), 2)) < kTol);
    CHECK(test::max_abs_diff(lb, full_tail(*m, cat(prefix, b), 3)) < kTol);
  }
  SECTION("child appends first, many forks") {
    auto c1 = parent.fork(), c2 = parent.fork();
    auto lb = step(*m, c1, b);
    auto la = step(*m, parent, a);
    auto l2 = step(*m, c2, a);
    CHECK(test::max_abs_diff(lb, full_tail(*m, cat(prefix, b), 3)) < kTol);
    CHECK(test::max_abs_diff(la, full_tail(*m, cat(prefix, a), 2)) < kTol);
    CHECK(test::max_abs_diff(l2, la) < kTol);
    CHECK(c1.length() == 9);
    CHECK(parent.length() == 8);
  }
}

TEST_CASE("truncate drops positions; appending after it equals the full pass", "[kvcache]") {
  auto m = Model::random(tiny(), 3);
  auto cache = m->new_cache();
  const std::vector<int64_t> prefix = {1, 2, 3, 4, 5};
  step(*m, cache, prefix);
  step(*m, cache, {6, 7, 8});
  cache.truncate(5);
  CHECK(cache.length() == 5);
  auto l = step(*m, cache, {9, 10});
  CHECK(test::max_abs_diff(l, full_tail(*m, {1, 2, 3, 4, 5, 9, 10}, 2)) < kTol);
  CHECK_THROWS_AS(cache.truncate(99), InputError);
}

TEST_CASE("reorder picks beams, with repeats and a new batch size", "[kvcache]") {
  auto m = Model::random(tiny(), 5);
  auto cache = m->new_cache(2);
  ForwardInput in;
  in.input_ids = torch::tensor({1, 2, 3, 4, 10, 11, 12, 13}, torch::kLong).view({2, 4});
  in.cache = &cache;
  m->forward(in);
  cache.reorder(torch::tensor({1, 1, 0}, torch::kLong));
  CHECK(cache.batch() == 3);
  ForwardInput next;
  next.input_ids = torch::tensor({20, 21, 22}, torch::kLong).view({3, 1});
  next.cache = &cache;
  auto l = m->logits(m->forward(next).hidden);
  CHECK(test::max_abs_diff(l[0], full_tail(*m, {10, 11, 12, 13, 20}, 1)[0]) < kTol);
  CHECK(test::max_abs_diff(l[1], full_tail(*m, {10, 11, 12, 13, 21}, 1)[0]) < kTol);
  CHECK(test::max_abs_diff(l[2], full_tail(*m, {1, 2, 3, 4, 22}, 1)[0]) < kTol);
  CHECK_THROWS_AS(cache.reorder(torch::tensor({5}, torch::kLong)), InputError);
}

TEST_CASE("input longer than the cache capacity is refused and the cache is unchanged", "[kvcache][errors]") {
  auto m = Model::random(tiny(), 1);
  KVCacheOptions o;
  o.capacity = 8;
  o.initial_allocation = 2;  // also exercises growth by doubling
  auto cache = m->new_cache(1, o);
  step(*m, cache, {1, 2, 3, 4, 5, 6});
  CHECK_THROWS_WITH(step(*m, cache, {7, 8, 9}), Catch::Matchers::Contains("capacity of 8"));
  CHECK(cache.length() == 6);
  auto l = step(*m, cache, {7, 8});
  CHECK(test::max_abs_diff(l, full_tail(*m, {1, 2, 3, 4, 5, 6, 7, 8}, 2)) < kTol);
}

TEST_CASE("sliding window and rope scaling stay exact through the cache", "[kvcache]") {
  const std::vector<int64_t> seq = {1, 4, 9, 16, 25, 36, 49, 3, 8, 15, 24, 35};
  for (const auto& cfg :
       {tiny("MistralForCausalLM", R"(,"sliding_window":3)"), tiny("Qwen2ForCausalLM", R"(,"sliding_window":4)"),
        tiny("LlamaForCausalLM", R"(,"rope_scaling":{"type":"linear","factor":2.0})"),
        tiny("LlamaForCausalLM", R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,)"
                                 R"("original_max_position_embeddings":16})")}) {
    INFO(cfg.architecture);
    auto m = Model::random(cfg, 11);
    auto cache = m->new_cache();
    std::vector<at::Tensor> parts;
    for (size_t t = 0; t < seq.size(); t += 5)
      parts.push_back(
          step(*m, cache, std::vector<int64_t>(seq.begin() + t, seq.begin() + std::min(seq.size(), t + 5))));
    CHECK(test::max_abs_diff(at::cat(parts, 1), full_tail(*m, seq, seq.size())) < kTol);
  }
}

TEST_CASE("a window changes what distant tokens see", "[kvcache]") {
  // Same weights, with and without a window: the last position differs only
  // when the sequence is longer than the window.
  auto plain = tiny("MistralForCausalLM");
  auto windowed = tiny("MistralForCausalLM", R"(,"sliding_window":2)");
  auto a = Model::random(plain, 2), b = Model::random(windowed, 2);
  CHECK(test::max_abs_diff(full_tail(*a, {1, 2, 3}, 1), full_tail(*b, {1, 2, 3}, 1)) < kTol);
  CHECK(test::max_abs_diff(full_tail(*a, {1, 2, 3, 4, 5}, 1), full_tail(*b, {1, 2, 3, 4, 5}, 1)) > 1e-4);
}

TEST_CASE("prefix cache: longest cached prefix along the token tree, LRU eviction", "[kvcache]") {
  auto m = Model::random(tiny(), 4);
  const int64_t per_token = 100;
  PrefixCache pc(/*budget_bytes=*/1300, per_token);  // 13 tokens' worth
  auto cache_of = [&](const std::vector<int64_t>& toks) {
    auto c = m->new_cache();
    step(*m, c, toks);
    return c;
  };
  const std::vector<int64_t> a = {1, 2, 3, 4, 5}, b = {1, 2, 3, 4, 5, 6, 7, 8};
  pc.insert(a, cache_of(a));
  pc.insert(b, cache_of(b));
  int64_t len = 0;
  auto hit = pc.lookup({1, 2, 3, 4, 5, 6, 7, 8, 9}, &len);
  REQUIRE(hit);
  CHECK(len == 8);
  CHECK(hit->length() == 8);
  // The fork continues exactly like a fresh pass.
  CHECK(test::max_abs_diff(step(*m, *hit, {9}), full_tail(*m, {1, 2, 3, 4, 5, 6, 7, 8, 9}, 1)) < kTol);
  CHECK(pc.lookup({1, 2, 3, 4, 5, 9}, &len));
  CHECK(len == 5);
  CHECK_FALSE(pc.lookup({2, 3}, &len));
  CHECK(len == 0);
  CHECK(pc.entries() == 2);
  // A third entry overflows the budget: the least recently used (b) goes.
  pc.lookup({1, 2, 3, 4, 5}, &len);  // touch a
  const std::vector<int64_t> c = {7, 7, 7};
  pc.insert(c, cache_of(c));
  CHECK(pc.entries() == 2);
  CHECK(pc.bytes() <= 1300);
  pc.lookup({1, 2, 3, 4, 5, 6, 7, 8}, &len);
  CHECK(len == 5);  // b evicted, a kept
  CHECK(pc.lookup({7, 7, 7}, &len));
  CHECK(len == 3);
}

TEST_CASE("tree attention: continuations of one prefix in one forward, gathered into caches of their own",
          "[kvcache]") {
  auto m = Model::random(tiny(), 11);
  const std::vector<int64_t> p1 = {1, 5, 9, 13, 2, 7}, p2 = {1, 8, 4}, a = {3, 4}, b = {11, 12, 13};
  // Row 0: a and b after p1; row 1: a after p2. Prefixes stacked (p2 padded
  // to p1's length), new tokens after them at the positions they have alone.
  auto c1 = m->new_cache(), c2 = m->new_cache();
  step(*m, c1, p1);
  step(*m, c2, p2);
  auto tree = KVCache::stack({&c1, &c2});
  CHECK(tree.length() == 6);
  CHECK(tree.batch() == 2);
  const int64_t W = 6, T = 5;
  ForwardInput in;
  in.input_ids = torch::tensor({3, 4, 11, 12, 13, 3, 4, 0, 0, 0}, torch::kLong).view({2, T});
  in.attention_mask = torch::tensor({1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, torch::kLong).view({2, T});
  in.position_ids = torch::tensor({6, 7, 6, 7, 8, 3, 4, 0, 0, 0}, torch::kLong).view({2, T});
  auto vis = torch::zeros({2, T, W + T}, torch::kBool);
  vis[0].narrow(0, 0, 5).narrow(1, 0, 6).fill_(true);                                          // row 0 sees p1
  vis[0].narrow(0, 0, 2).narrow(1, W, 2).copy_(torch::ones({2, 2}, torch::kBool).tril());      // a
  vis[0].narrow(0, 2, 3).narrow(1, W + 2, 3).copy_(torch::ones({3, 3}, torch::kBool).tril());  // b
  vis[1].narrow(0, 0, 2).narrow(1, 0, 3).fill_(true);                                          // row 1 sees p2
  vis[1].narrow(0, 0, 2).narrow(1, W, 2).copy_(torch::ones({2, 2}, torch::kBool).tril());
  in.visibility = vis;
  in.cache = &tree;
  auto logits = m->logits(m->forward(in).hidden);  // [2, T, V]
  CHECK(test::max_abs_diff(logits[0].narrow(0, 0, 2), full_tail(*m, cat(p1, a), 2)[0]) < kTol);
  CHECK(test::max_abs_diff(logits[0].narrow(0, 2, 3), full_tail(*m, cat(p1, b), 3)[0]) < kTol);
  CHECK(test::max_abs_diff(logits[1].narrow(0, 0, 2), full_tail(*m, cat(p2, a), 2)[0]) < kTol);
  // Each continuation becomes a cache of its own that continues like the full sequence.
  auto kb = tree.gather(0, {{0, 6}, {W + 2, 3}});
  auto ka = tree.gather(1, {{0, 3}, {W, 2}});
  CHECK(kb.length() == 9);
  CHECK(ka.length() == 5);
  CHECK(test::max_abs_diff(step(*m, kb, {21}), full_tail(*m, cat(cat(p1, b), {21}), 1)) < kTol);
  CHECK(test::max_abs_diff(step(*m, ka, {21, 22}), full_tail(*m, cat(cat(p2, a), {21, 22}), 2)) < kTol);
  // The parents are unchanged.
  CHECK(test::max_abs_diff(step(*m, c1, b), full_tail(*m, cat(p1, b), 3)) < kTol);

  SECTION("bad shapes and ranges are InputErrors") {
    auto big = m->new_cache(2);
    CHECK_THROWS_AS(KVCache::stack({&c1, &big}), InputError);
    CHECK_THROWS_AS(KVCache::stack({}), InputError);
    auto other = Model::random(tiny("LlamaForCausalLM", R"(,"head_dim":16)"), 3)->new_cache();
    CHECK_THROWS_AS(KVCache::stack({&c2, &other}), InputError);
    CHECK_THROWS_AS(tree.gather(2, {{0, 1}}), InputError);
    CHECK_THROWS_AS(tree.gather(0, {{8, 5}}), InputError);
    ForwardInput wrong = in;
    auto fresh = m->new_cache(2);
    wrong.cache = &fresh;
    CHECK_THROWS_AS(m->forward(wrong), InputError);  // visibility covers 6 cached positions the cache lacks
    CHECK(fresh.length() == 0);
  }
}
