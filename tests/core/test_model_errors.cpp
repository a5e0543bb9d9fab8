// Loading and calling with bad input: typed errors naming the tensor, field or position.
#include <functional>

#include "test_support.h"

#include "stepverify/errors.h"
#include "stepverify/model.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {

// A copy of a fixture's config and tokenizer with weights rewritten by `edit`.
std::filesystem::path copy_with(const std::filesystem::path& src, const std::filesystem::path& dst,
                                const std::function<void(std::vector<TensorData>&, std::vector<at::Tensor>&)>& edit) {
  for (const auto& e : std::filesystem::directory_iterator(src)) {
    const auto name = e.path().filename().string();
    if (name.rfind("reference", 0) == 0 || name == "model.safetensors") continue;
    std::filesystem::copy_file(e.path(), dst / name);
  }
  auto ck = SafetensorsFile::open(src / "model.safetensors");
  std::vector<TensorData> data;
  std::vector<at::Tensor> keep;
  for (const auto& n : ck->names()) {
    keep.push_back(to_tensor(ck->tensor(n)));
    data.push_back({n, ck->tensor(n).dtype, ck->tensor(n).shape, keep.back().data_ptr()});
  }
  edit(data, keep);
  save_safetensors(dst / "model.safetensors", data);
  return dst;
}

}  // namespace

TEST_CASE("a required tensor missing names it", "[errors]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  test::TempDir tmp;
  copy_with(*dir, tmp.path, [](auto& data, auto&) {
    data.erase(std::remove_if(data.begin(), data.end(),
                              [](const TensorData& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; }),
               data.end());
  });
  CHECK_THROWS_AS(Model::load(tmp.path), ShapeError);
  CHECK_THROWS_WITH(Model::load(tmp.path), Contains("model.layers.1.mlp.up_proj.weight") && Contains("missing"));
}

TEST_CASE("a tensor of the wrong shape names it and both shapes", "[errors]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  test::TempDir tmp;
  copy_with(*dir, tmp.path, [](auto& data, auto&) {
    for (auto& t : data)
      if (t.name == "model.norm.weight") t.shape = {8, 8};
  });
  CHECK_THROWS_WITH(Model::load(tmp.path),
                    Contains("model.norm.weight") && Contains("expected [64]") && Contains("found [8,8]"));
}

TEST_CASE("an integer tensor where a weight is expected", "[errors]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  test::TempDir tmp;
  copy_with(*dir, tmp.path, [](auto& data, auto&) {
    for (auto& t : data)
      if (t.name == "model.norm.weight") t.dtype = DType::I32;
  });
  CHECK_THROWS_WITH(Model::load(tmp.path), Contains("model.norm.weight") && Contains("I32"));
}

TEST_CASE("config.json missing or lacking a field", "[errors]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  test::TempDir tmp;
  copy_with(*dir, tmp.path, [](auto&, auto&) {});
  std::filesystem::remove(tmp.path / "config.json");
  CHECK_THROWS_AS(Model::load(tmp.path), IoError);
  test::write_text(tmp.path / "config.json", R"({"architectures":["LlamaForCausalLM"],"vocab_size":1000})");
  CHECK_THROWS_WITH(Model::load(tmp.path), Contains("config.json") && Contains("hidden_size"));
}

TEST_CASE("token ids outside the vocabulary and malformed inputs", "[errors]") {
  auto m = Model::random(
      ModelConfig::from_json(
          R"({"architectures":["LlamaForCausalLM"],"vocab_size":20,"hidden_size":16,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2})"),
      1);
  ForwardInput in;
  in.input_ids = torch::tensor({1, 2, 25}, torch::kLong).view({1, 3});
  CHECK_THROWS_WITH(m->forward(in), Contains("token id 25") && Contains("position 2") && Contains("vocabulary of 20"));
  in.input_ids = torch::tensor({-1}, torch::kLong).view({1, 1});
  CHECK_THROWS_AS(m->forward(in), InputError);
  in.input_ids = torch::zeros({1, 0}, torch::kLong);
  CHECK_THROWS_AS(m->forward(in), InputError);
  in.input_ids = torch::tensor({1, 2}, torch::kLong).view({1, 2});
  in.attention_mask = torch::ones({1, 3}, torch::kLong);
  CHECK_THROWS_WITH(m->forward(in), Contains("attention_mask"));
}
