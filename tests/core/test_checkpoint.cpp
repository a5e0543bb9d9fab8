// The safetensors reader and writer, sharded checkpoints, and every malformed-file case.
#include "test_support.h"

#include "stepverify/errors.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {

// A safetensors file from a header JSON text and a data section.
std::string st_bytes(const std::string& header, const std::string& data) {
  return test::le64(header.size()) + header + data;
}

std::shared_ptr<const SafetensorsFile> parse_bytes(const std::string& bytes,
                                                   const std::string& name = "mem.safetensors") {
  return SafetensorsFile::parse(memory_source(bytes, name));
}

const std::string kFourFloats(16, '\0');

}  // namespace

TEST_CASE("safetensors round trip through the writer and the mapped reader", "[checkpoint]") {
  test::TempDir tmp;
  std::vector<float> w = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<int64_t> ids = {1, 2, 3};
  auto bf = torch::tensor({1.0f, 2.5f}).to(torch::kBFloat16);
  std::vector<uint8_t> flags = {1, 0, 1};
  save_safetensors(tmp.path / "a.safetensors",
                   {{"w", DType::F32, {2, 3}, w.data()},
                    {"ids", DType::I64, {3}, ids.data()},
                    {"b", DType::BF16, {2}, bf.data_ptr()},
                    {"flags", DType::BOOL, {3}, flags.data()}},
                   {{"format", "pt"}});
  auto f = SafetensorsFile::open(tmp.path / "a.safetensors");
  CHECK(f->names().size() == 4);
  CHECK(f->metadata().at("format") == "pt");
  auto t = f->tensor("w");
  CHECK(t.dtype == DType::F32);
  CHECK(t.shape == std::vector<int64_t>{2, 3});
  CHECK(torch::equal(to_tensor(t), torch::tensor(w).view({2, 3})));
  CHECK(torch::equal(to_tensor(f->tensor("ids")), torch::tensor(ids)));
  CHECK(torch::equal(to_tensor(f->tensor("b")), bf));
  CHECK(to_tensor(f->tensor("flags")).to(torch::kLong).sum().item<int64_t>() == 2);
  // Views keep the mapping alive after the file object is gone.
  auto view = f->tensor("w");
  f.reset();
  CHECK(reinterpret_cast<const float*>(view.data)[2] == 3.25f);
  // Writing over a mapped file replaces it whole: the old view keeps its data.
  std::vector<float> w2 = {9.0f};
  save_safetensors(tmp.path / "a.safetensors", {{"w", DType::F32, {1}, w2.data()}});
  CHECK(reinterpret_cast<const float*>(view.data)[2] == 3.25f);
  CHECK(to_tensor(SafetensorsFile::open(tmp.path / "a.safetensors")->tensor("w")).item<float>() == 9.0f);
  CHECK_FALSE(std::filesystem::exists(tmp.path / "a.safetensors.partial"));
}

TEST_CASE("safetensors from memory, empty tensors and metadata", "[checkpoint]") {
  auto f = parse_bytes(st_bytes(R"({"__metadata__":{"k":"v"},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                                R"("x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})",
                                std::string(4, '\0')));
  CHECK(f->contains("e"));
  CHECK(f->tensor("e").numel() == 0);
  CHECK(f->tensor("x").nbytes == 4);
  CHECK(f->metadata().at("k") == "v");
}

TEST_CASE("malformed safetensors files give FormatError naming file and tensor", "[checkpoint][errors]") {
  SECTION("empty file") {
    CHECK_THROWS_WITH(parse_bytes("", "empty.safetensors"), Contains("empty.safetensors") && Contains("truncated"));
  }
  SECTION("truncated header length") { CHECK_THROWS_AS(parse_bytes(std::string(5, '\x01')), FormatError); }
  SECTION("header length past the end") {
    CHECK_THROWS_WITH(parse_bytes(test::le64(1000) + "{}"), Contains("past the end"));
  }
  SECTION("header is not JSON") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes("{not json", "")), Contains("not valid JSON"));
  }
  SECTION("header is JSON but not an object") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes("[1,2]", "")), Contains("not a JSON object"));
  }
  SECTION("offsets outside the data") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", kFourFloats)),
                      Contains("tensor w") && Contains("outside the data"));
  }
  SECTION("overlapping tensors") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                           kFourFloats)),
                      Contains("tensor b") && Contains("overlaps"));
  }
  SECTION("a hole in the data") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                           std::string(12, '\0'))),
                      Contains("hole") && Contains("tensor b"));
  }
  SECTION("trailing bytes") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", kFourFloats)),
                      Contains("trailing"));
  }
  SECTION("unknown dtype") {
    CHECK_THROWS_WITH(
        parse_bytes(st_bytes(R"({"w":{"dtype":"F8_E9","shape":[4],"data_offsets":[0,16]}})", kFourFloats)),
        Contains("tensor w") && Contains("unknown dtype 'F8_E9'"));
  }
  SECTION("byte span does not match the shape") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", kFourFloats)),
                      Contains("tensor w") && Contains("byte span 16") && Contains("[3]"));
  }
  SECTION("negative shape") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", kFourFloats)),
                      Contains("tensor w") && Contains("shape"));
  }
  SECTION("missing data_offsets") {
    CHECK_THROWS_WITH(parse_bytes(st_bytes(R"({"w":{"dtype":"F32","shape":[4]}})", kFourFloats)),
                      Contains("data_offsets"));
  }
}

TEST_CASE("a missing tensor is a ShapeError naming it", "[checkpoint][errors]") {
  auto f = parse_bytes(st_bytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kFourFloats),
                       "one.safetensors");
  CHECK_THROWS_AS(f->tensor("model.norm.weight"), ShapeError);
  CHECK_THROWS_WITH(f->tensor("model.norm.weight"), Contains("one.safetensors") && Contains("model.norm.weight"));
}

TEST_CASE("sharded checkpoints through model.safetensors.index.json", "[checkpoint]") {
  test::TempDir tmp;
  std::vector<float> a = {1, 2}, b = {3, 4, 5};
  save_safetensors(tmp.path / "model-00001-of-00002.safetensors", {{"a", DType::F32, {2}, a.data()}});
  save_safetensors(tmp.path / "model-00002-of-00002.safetensors", {{"b", DType::F32, {3}, b.data()}});
  test::write_text(tmp.path / "model.safetensors.index.json",
                   R"({"metadata":{"total_size":20},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                   R"("b":"model-00002-of-00002.safetensors"}})");
  auto ck = Checkpoint::open(tmp.path);
  CHECK(ck->names() == std::vector<std::string>{"a", "b"});
  CHECK(torch::equal(to_tensor(ck->tensor("b")), torch::tensor(b)));
  CHECK_THROWS_AS(ck->tensor("c"), ShapeError);

  SECTION("an index naming a tensor its shard lacks") {
    test::write_text(
        tmp.path / "model.safetensors.index.json",
        R"({"weight_map":{"a":"model-00001-of-00002.safetensors","zz":"model-00002-of-00002.safetensors"}})");
    CHECK_THROWS_WITH(Checkpoint::open(tmp.path), Contains("zz") && Contains("index.json"));
  }
  SECTION("an index that is not JSON") {
    test::write_text(tmp.path / "model.safetensors.index.json", "{");
    CHECK_THROWS_AS(Checkpoint::open(tmp.path), FormatError);
  }
  SECTION("a tensor in two shards") {
    save_safetensors(tmp.path / "model-00002-of-00002.safetensors",
                     {{"a", DType::F32, {2}, a.data()}, {"b", DType::F32, {3}, b.data()}});
    CHECK_THROWS_WITH(Checkpoint::open(tmp.path), Contains("also appears"));
  }
}

TEST_CASE("a directory without weights is an IoError", "[checkpoint][errors]") {
  test::TempDir tmp;
  CHECK_THROWS_AS(Checkpoint::open(tmp.path), IoError);
  CHECK_THROWS_AS(Checkpoint::open(tmp.path / "nope"), IoError);
  CHECK_THROWS_AS(SafetensorsFile::open(tmp.path / "nope.safetensors"), IoError);
}

TEST_CASE("a truncated copy of a real checkpoint is refused", "[checkpoint][errors]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  const auto bytes = stepverify::detail::read_file(*dir / "model.safetensors");
  CHECK_NOTHROW(parse_bytes(bytes));
  CHECK_THROWS_AS(parse_bytes(bytes.substr(0, bytes.size() - 100)), FormatError);
  CHECK_THROWS_AS(parse_bytes(bytes.substr(0, 100)), FormatError);
}
