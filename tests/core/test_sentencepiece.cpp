// Sentencepiece tokenizers, token-exact with HF's LlamaTokenizer (legacy true and false).
#include "test_support.h"

#include "stepverify/errors.h"
#include "stepverify/tokenizer.h"

using namespace stepverify;
using Catch::Matchers::Contains;

namespace {

std::vector<int64_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int64_t>>(); }

void check_tokenizer_checks(const std::string& name) {
  auto dir = test::fixture(name);
  if (!dir) return;
  auto ref = test::read_json(*dir / "reference.json");
  auto tok = load_tokenizer(*dir);
  CHECK(tok->kind() == "sentencepiece");
  const auto& checks = ref["tokenizer_checks"];
  CHECK(tok->size() == checks["len_tokenizer"].get<int64_t>());
  const auto& sid = checks["special_token_ids"];
  auto opt_id = [](const nlohmann::json& v) { return v.is_null() ? std::optional<int64_t>() : v.get<int64_t>(); };
  CHECK(tok->special_tokens().bos_id == opt_id(sid["bos"]));
  CHECK(tok->special_tokens().eos_id == opt_id(sid["eos"]));
  CHECK(tok->special_tokens().unk_id == opt_id(sid["unk"]));
  CHECK(tok->special_tokens().pad_id == opt_id(sid["pad"]));
  for (const auto& c : checks["cases"]) {
    const std::string text = c["text"];
    INFO(name << ": text '" << text << "'");
    auto with = tok->encode_with_pieces(text);
    CHECK(with.ids == ids_of(c["ids_add_special_tokens_true"]));
    EncodeOptions no_special;
    no_special.add_special_tokens = false;
    auto without = tok->encode_with_pieces(text, no_special);
    CHECK(without.ids == ids_of(c["ids_add_special_tokens_false"]));
    CHECK(without.pieces == c["tokens"].get<std::vector<std::string>>());
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    CHECK(tok->decode(with.ids, skip) == c["decoded_skip_special"].get<std::string>());
    CHECK(tok->decode(with.ids) == c["decoded_keep_special"].get<std::string>());
  }
  for (const auto& cs : ref["cases"]) {
    EncodeOptions opts;
    opts.add_special_tokens = cs["add_special_tokens"].get<bool>();
    for (const auto& row : cs["rows"]) {
      INFO(name << ": case " << cs["name"].get<std::string>() << " text '" << row["text"].get<std::string>() << "'");
      CHECK(tok->encode(row["text"].get<std::string>(), opts) == ids_of(row["input_ids"]));
    }
  }
}

}  // namespace

TEST_CASE("sentencepiece legacy=false matches HF (llama_gqa)", "[tokenizer]") { check_tokenizer_checks("llama_gqa"); }
TEST_CASE("sentencepiece legacy=false matches HF (llama_orm)", "[tokenizer]") { check_tokenizer_checks("llama_orm"); }
TEST_CASE("sentencepiece legacy=true matches HF (mistral_shepherd_prm)", "[tokenizer]") {
  check_tokenizer_checks("mistral_shepherd_prm");
}

TEST_CASE("Math-Shepherd inputs and tag ids tokenize as HF", "[tokenizer]") {
  auto dir = test::fixture("mistral_shepherd_prm");
  if (!dir) return;
  auto ref = test::read_json(*dir / "reference.json");
  auto tok = load_tokenizer(*dir);
  const auto& prm = ref["prm"];
  CHECK(tok->encode(prm["step_tag"].get<std::string>()).back() == prm["step_tag_id"].get<int64_t>());
  auto cand = tok->encode("+ -");
  CHECK(std::vector<int64_t>(cand.begin() + 1, cand.end()) == prm["candidate_tokens"].get<std::vector<int64_t>>());
  for (const auto& t : prm["per_text"])
    CHECK(tok->encode(t["text"].get<std::string>()) == t["input_ids"].get<std::vector<int64_t>>());
}

TEST_CASE("legacy override and special tokens written in text", "[tokenizer]") {
  auto dir = test::fixture("llama_gqa");
  if (!dir) return;
  TokenizerOptions legacy;
  legacy.legacy = true;
  auto a = load_tokenizer(*dir);
  auto b = load_tokenizer(*dir, legacy);
  EncodeOptions opts;
  opts.add_special_tokens = false;
  // HF: legacy=true gives '<s>', '▁', '▁and' where legacy=false gives '<s>', '▁and'.
  auto pa = a->encode_with_pieces("<s> and", opts).pieces;
  auto pb = b->encode_with_pieces("<s> and", opts).pieces;
  CHECK(pa == std::vector<std::string>{"<s>",
                                       "\xE2\x96\x81"
                                       "and"});
  CHECK(pb == std::vector<std::string>{"<s>", "\xE2\x96\x81",
                                       "\xE2\x96\x81"
                                       "and"});
  EncodeOptions raw;
  raw.parse_special_tokens = false;
  raw.add_special_tokens = false;
  auto ids = a->encode("<s>", raw);
  CHECK(std::find(ids.begin(), ids.end(), 1) == ids.end());
}

TEST_CASE("tokenizer errors: corrupt model, ids outside the vocabulary, no files", "[tokenizer][errors]") {
  test::TempDir tmp;
  SECTION("corrupt tokenizer.model") {
    test::write_text(tmp.path / "tokenizer.model", std::string("\x0a\xff\xff\xff\xff\x0f garbage"));
    CHECK_THROWS_AS(load_tokenizer(tmp.path), TokenizerError);
    CHECK_THROWS_WITH(load_tokenizer(tmp.path), Contains("tokenizer.model"));
  }
  SECTION("truncated tokenizer.model") {
    auto dir = test::fixture("llama_gqa");
    if (!dir) return;
    const auto bytes = stepverify::detail::read_file(*dir / "tokenizer.model");
    test::write_text(tmp.path / "tokenizer.model", bytes.substr(0, bytes.size() / 2));
    CHECK_THROWS_AS(load_tokenizer(tmp.path), TokenizerError);
  }
  SECTION("corrupt tokenizer_config.json") {
    auto dir = test::fixture("llama_gqa");
    if (!dir) return;
    std::filesystem::copy_file(*dir / "tokenizer.model", tmp.path / "tokenizer.model");
    test::write_text(tmp.path / "tokenizer_config.json", "{\"legacy\": ");
    CHECK_THROWS_WITH(load_tokenizer(tmp.path), Contains("tokenizer_config.json"));
  }
  SECTION("ids outside the vocabulary") {
    auto dir = test::fixture("llama_gqa");
    if (!dir) return;
    auto tok = load_tokenizer(*dir);
    CHECK_THROWS_AS(tok->decode({1, 5000}), TokenizerError);
    CHECK_THROWS_WITH(tok->id_to_piece(-1), Contains("-1"));
  }
  SECTION("no tokenizer files") { CHECK_THROWS_AS(load_tokenizer(tmp.path), IoError); }
}
