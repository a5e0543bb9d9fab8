// config.json parsing: families, defaults, rope scaling, and errors; the CPU runtime settings.
#include "test_support.h"

#include <cstdlib>

#include "stepverify/config.h"
#include "stepverify/errors.h"
#include "stepverify/runtime.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {
std::string llama(const std::string& extra = "") {
  return R"({"architectures":["LlamaForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":128,)"
         R"("num_hidden_layers":2,"num_attention_heads":4)" +
         extra + "}";
}
}  // namespace

TEST_CASE("config defaults follow transformers 4.40", "[config]") {
  auto c = ModelConfig::from_json(llama());
  CHECK(c.family == ModelFamily::Llama);
  CHECK(c.head == HeadKind::CausalLM);
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.head_dim == 16);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.rms_norm_eps == 1e-6);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK_FALSE(c.qkv_bias);
  CHECK_FALSE(c.sliding_window);
  CHECK_FALSE(c.rope_scaling);
}

TEST_CASE("config of every fixture", "[config]") {
  auto dir = test::fixture("qwen2_prm");
  if (!dir) return;
  auto root = dir->parent_path();
  auto q = ModelConfig::from_file(root / "qwen2_prm/config.json");
  CHECK(q.family == ModelFamily::Qwen2);
  CHECK(q.head == HeadKind::ProcessRewardModel);
  CHECK(q.qkv_bias);
  CHECK_FALSE(q.o_bias);
  CHECK(q.pad_token_id == 486);
  CHECK(q.rms_norm_eps == 1e-6);
  auto m = ModelConfig::from_file(root / "mistral_shepherd_prm/config.json");
  CHECK(m.family == ModelFamily::Mistral);
  CHECK(m.num_key_value_heads == 1);
  CHECK(m.sliding_window == 4096);
  auto l = ModelConfig::from_file(root / "llama_gqa/config.json");
  CHECK(l.rope_theta == 500000.0);
  CHECK(l.head_dim == 16);
  CHECK(l.eos_token_ids == std::vector<int64_t>{2});
  auto o = ModelConfig::from_file(root / "llama_orm/config.json");
  CHECK(o.head == HeadKind::SequenceClassification);
  CHECK(o.num_labels == 1);
  CHECK(o.pad_token_id == 0);
}

TEST_CASE("rope_scaling: linear, dynamic, llama3, and unsupported types", "[config]") {
  auto lin = ModelConfig::from_json(llama(R"(,"rope_scaling":{"type":"linear","factor":2.0})"));
  REQUIRE(lin.rope_scaling);
  CHECK(lin.rope_scaling->type == "linear");
  CHECK(lin.rope_scaling->factor == 2.0);
  auto l3 = ModelConfig::from_json(llama(
      R"(,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})"));
  REQUIRE(l3.rope_scaling);
  CHECK(l3.rope_scaling->type == "llama3");
  CHECK(l3.rope_scaling->original_max_position_embeddings == 8192);
  CHECK_THROWS_WITH(ModelConfig::from_json(llama(R"(,"rope_scaling":{"type":"yarn","factor":4.0})")),
                    Contains("rope_scaling") && Contains("yarn") && Contains("linear"));
  CHECK_THROWS_AS(ModelConfig::from_json(llama(R"(,"rope_scaling":{"type":"linear"})")), ConfigError);
}

TEST_CASE("Qwen2 keeps the eager sliding window of 4.40, Mistral's null window is none", "[config]") {
  auto q = ModelConfig::from_json(
      R"({"architectures":["Qwen2ForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"sliding_window":16,"use_sliding_window":false})");
  CHECK(q.sliding_window == 16);
  auto m = ModelConfig::from_json(
      R"({"architectures":["MistralForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"sliding_window":null})");
  CHECK_FALSE(m.sliding_window);
}

TEST_CASE("config errors name the file and field", "[config][errors]") {
  SECTION("unknown architecture lists the supported ones") {
    CHECK_THROWS_WITH(ModelConfig::from_json(R"({"architectures":["GPTNeoXForCausalLM"]})", "x/config.json"),
                      Contains("x/config.json") && Contains("GPTNeoXForCausalLM") && Contains("LlamaForCausalLM") &&
                          Contains("Qwen2ForProcessRewardModel"));
  }
  SECTION("a required field is missing") {
    CHECK_THROWS_WITH(
        ModelConfig::from_json(
            R"({"architectures":["LlamaForCausalLM"],"vocab_size":100,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4})",
            "m/config.json"),
        Contains("m/config.json") && Contains("'hidden_size'") && Contains("missing"));
  }
  SECTION("a field of the wrong type") {
    CHECK_THROWS_WITH(ModelConfig::from_json(llama(R"(,"rms_norm_eps":"small")")), Contains("rms_norm_eps"));
  }
  SECTION("kv heads that do not divide the heads") {
    CHECK_THROWS_WITH(ModelConfig::from_json(llama(R"(,"num_key_value_heads":3)")), Contains("num_key_value_heads"));
  }
  SECTION("not JSON") { CHECK_THROWS_AS(ModelConfig::from_json("{", "c.json"), ConfigError); }
  SECTION("config.json missing") {
    test::TempDir tmp;
    CHECK_THROWS_AS(ModelConfig::from_file(tmp.path / "config.json"), IoError);
  }
}

TEST_CASE("runtime: OpenBLAS runs the kernels the CPU supports, and a thread scope restores the count", "[config]") {
  if (!blas_is_openblas()) {
    WARN("torch's BLAS is not OpenBLAS here: nothing to check");
    return;
  }
  CHECK_FALSE(blas_kernels().empty());
  // test_main restarts the program when the kernels lag; a variable the user
  // set to another kernel set is their choice.
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (!forced || blas_kernels_for_cpu() == forced) CHECK_FALSE(blas_kernels_lag_cpu());

  configure_runtime();
  const int before = blas_threads();
  {
    BlasThreadsScope one(1);
    CHECK(blas_threads() == 1);
    {
      BlasThreadsScope none(0);  // 0: leaves the count alone
      CHECK(blas_threads() == 1);
    }
    CHECK(blas_threads() == 1);
  }
  CHECK(blas_threads() == before);
}
