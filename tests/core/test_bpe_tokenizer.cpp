// Byte-level BPE tokenizer: token-exact against transformers 4.40.2 on the
// qwen2_prm fixture (slow vocab.json + merges.txt, and a tokenizer.json built
// from them), round trips, and typed errors for corrupt files.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "test_support.h"
#include "stepverify/errors.h"
#include "stepverify/tokenizer.h"

#ifndef STEPVERIFY_DEFAULT_SHARED_DIR
#define STEPVERIFY_DEFAULT_SHARED_DIR "../shared"
#endif

namespace fs = std::filesystem;
using nlohmann::json;
using stepverify::DecodeOptions;
using stepverify::EncodeOptions;
using stepverify::Tokenizer;
using stepverify::TokenizerError;

namespace {

fs::path qwen2_fixture() {
  const char* env = std::getenv("STEPVERIFY_SHARED_DIR");
  return fs::path(env ? env : STEPVERIFY_DEFAULT_SHARED_DIR) / "fixtures" / "hf" / "qwen2_prm";
}

bool have_fixture() { return fs::exists(qwen2_fixture() / "reference.json"); }

#define REQUIRE_FIXTURE_OR_SKIP()                                                            \
  do {                                                                                       \
    if (!have_fixture()) {                                                                   \
      stepverify::test::missing_input("fixture " + qwen2_fixture().string() + " not found"); \
      return;                                                                                \
    }                                                                                        \
  } while (0)

json read_json(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

const json& reference() {
  static const json ref = read_json(qwen2_fixture() / "reference.json");
  return ref;
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

// A scratch directory removed on destruction.
struct TempDir {
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("stepverify_bpe_" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "_" +
            std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  void copy_from_fixture(std::initializer_list<const char*> names) const {
    for (const char* n : names) fs::copy_file(qwen2_fixture() / n, path / n);
  }
  fs::path path;
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every text with expected ids (add_special_tokens=true) in reference.json.
std::vector<std::pair<std::string, std::vector<int64_t>>> reference_texts() {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto& c : reference()["tokenizer_checks"]["cases"])
    out.emplace_back(c["text"].get<std::string>(), ids_of(c["ids_add_special_tokens_true"]));
  for (const auto& c : reference()["cases"])
    for (const auto& row : c["rows"]) out.emplace_back(row["text"].get<std::string>(), ids_of(row["input_ids"]));
  return out;
}

// Builds a Qwen2-style tokenizer.json from the fixture's slow files, with the
// merges written as "a b" strings or as ["a", "b"] pairs.
json tokenizer_json_from_slow_files(bool pair_merges) {
  json merges = json::array();
  std::ifstream in(qwen2_fixture() / "merges.txt");
  std::string line;
  for (int n = 0; std::getline(in, line); ++n) {
    if (line.empty() || (n == 0 && line.rfind("#version", 0) == 0)) continue;
    const size_t gap = line.find(' ');
    if (pair_merges)
      merges.push_back(json::array({line.substr(0, gap), line.substr(gap + 1)}));
    else
      merges.push_back(line);
  }
  json j = json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "behavior": "Isolated", "invert": false, "pattern": {"Regex":
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
                       "use_regex": false},
    "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
                "use_regex": false},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false}})");
  j["model"]["vocab"] = read_json(qwen2_fixture() / "vocab.json");
  j["model"]["merges"] = merges;
  j["added_tokens"] = json::array();
  const json added = read_json(qwen2_fixture() / "added_tokens.json");
  for (const auto& [content, id] : added.items())
    j["added_tokens"].push_back({{"id", id},
                                 {"content", content},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  return j;
}

// GPT-2's bytes_to_unicode: the piece standing for one raw byte.
std::string byte_piece(unsigned char b) {
  int next = 256;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const int cp = printable ? x : next++;
    if (x == b) {
      std::string s;
      if (cp < 0x80)
        s += static_cast<char>(cp);
      else
        s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
      return s;
    }
  }
  return {};
}

EncodeOptions without_special() {
  EncodeOptions o;
  o.add_special_tokens = false;
  return o;
}
EncodeOptions literal_special() {
  EncodeOptions o;
  o.parse_special_tokens = false;
  return o;
}
DecodeOptions skipping_special() {
  DecodeOptions o;
  o.skip_special_tokens = true;
  return o;
}

// Runs `load` and checks it throws E whose message contains every fragment.
template <class E>
void require_error(const std::function<void()>& load, std::initializer_list<std::string> fragments) {
  try {
    load();
    FAIL("no exception thrown");
  } catch (const E& e) {
    const std::string what = e.what();
    INFO("message: " << what);
    for (const auto& f : fragments) CHECK(what.find(f) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("bpe: qwen2 slow files match transformers tokenizer_checks", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const auto tok = stepverify::load_bpe_tokenizer(qwen2_fixture());
  const json& checks = reference()["tokenizer_checks"];
  CHECK(tok->kind() == "byte-level-bpe");
  CHECK(tok->size() == checks["len_tokenizer"].get<int64_t>());

  const auto& special = tok->special_tokens();
  CHECK_FALSE(special.bos_id);
  CHECK_FALSE(special.unk_id);
  REQUIRE(special.eos_id);
  REQUIRE(special.pad_id);
  CHECK(*special.eos_id == checks["special_token_ids"]["eos"].get<int64_t>());
  CHECK(*special.pad_id == checks["special_token_ids"]["pad"].get<int64_t>());
  CHECK(special.eos == std::optional<std::string>("<|endoftext|>"));
  for (const auto& [id, content] : checks["added_tokens_decoder"].items()) {
    CHECK(tok->piece_to_id(content.get<std::string>()) == std::stoll(id));
    CHECK(tok->is_special(std::stoll(id)));
  }

  for (const auto& c : checks["cases"]) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << text);
    const auto with = tok->encode_with_pieces(text);
    CHECK(with.ids == ids_of(c["ids_add_special_tokens_true"]));
    CHECK(with.pieces == c["tokens"].get<std::vector<std::string>>());
    CHECK(tok->encode(text, without_special()) == ids_of(c["ids_add_special_tokens_false"]));
    const auto ids = ids_of(c["ids_add_special_tokens_true"]);
    CHECK(tok->decode(ids, skipping_special()) == c["decoded_skip_special"].get<std::string>());
    CHECK(tok->decode(ids) == c["decoded_keep_special"].get<std::string>());
    for (size_t i = 0; i < ids.size(); ++i) CHECK(tok->id_to_piece(ids[i]) == with.pieces[i]);
  }
}

TEST_CASE("bpe: qwen2 slow files match every case's input_ids", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const auto tok = stepverify::load_bpe_tokenizer(qwen2_fixture());
  size_t rows = 0;
  for (const auto& [text, ids] : reference_texts()) {
    INFO("text: " << text);
    CHECK(tok->encode(text) == ids);
    ++rows;
  }
  for (const auto& t : reference()["prm"]["per_text"]) {
    CHECK(tok->encode(t["text"].get<std::string>()) == ids_of(t["input_ids"]));
    ++rows;
  }
  CHECK(rows > 5);
  const auto step_ids = tok->encode("<extra_0>");
  CHECK(step_ids == std::vector<int64_t>{reference()["prm"]["step_sep_id"].get<int64_t>()});
}

TEST_CASE("bpe: tokenizer.json built from the slow files gives the same ids", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const auto slow = stepverify::load_bpe_tokenizer(qwen2_fixture());
  const std::vector<std::string> extra = {"", "Hello  world\n\n  x",
                                          "e\xCC\x81t\xC3\xA9 \xE2\x84\xAB",  // NFC: é, Å (Angstrom sign)
                                          "x = 1234567, y' + y's \xF0\x9F\x98\x80 <|im_end|><extra_0>  <|endoftext|>"};
  for (bool pair_merges : {false, true}) {
    INFO("merges as " << (pair_merges ? "pairs" : "strings"));
    TempDir dir;
    dir.write("tokenizer.json", tokenizer_json_from_slow_files(pair_merges).dump());
    dir.copy_from_fixture({"tokenizer_config.json", "special_tokens_map.json"});
    const auto fast = stepverify::load_bpe_tokenizer(dir.path);
    CHECK(fast->size() == slow->size());
    CHECK(fast->special_tokens().eos_id == slow->special_tokens().eos_id);
    for (const auto& [text, ids] : reference_texts()) {
      INFO("text: " << text);
      CHECK(fast->encode(text) == ids);
      CHECK(fast->decode(ids) == slow->decode(ids));
      CHECK(fast->decode(ids, skipping_special()) == slow->decode(ids, skipping_special()));
    }
    for (const auto& text : extra) {
      INFO("text: " << text);
      CHECK(fast->encode_with_pieces(text).pieces == slow->encode_with_pieces(text).pieces);
    }
  }
}

TEST_CASE("bpe: post_processor template adds BOS; options override it", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  json j = tokenizer_json_from_slow_files(false);
  // A Llama-3-style template with <|endoftext|> (486) standing in for BOS.
  j["post_processor"] = json::parse(R"({
    "type": "Sequence",
    "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "TemplateProcessing",
       "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}}],
       "pair": [],
       "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [486],
                                            "tokens": ["<|endoftext|>"]}}}]})");
  TempDir dir;
  dir.write("tokenizer.json", j.dump());
  dir.write("tokenizer_config.json", R"({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})");
  const auto tok = stepverify::load_bpe_tokenizer(dir.path);
  CHECK(tok->encode("") == std::vector<int64_t>{486});
  CHECK(tok->encode("", without_special()).empty());
  const auto ids = tok->encode("Janet has");
  REQUIRE(ids.size() == 3);
  CHECK(ids.front() == 486);
  CHECK(tok->decode(ids, skipping_special()) == "Janet has");

  stepverify::TokenizerOptions no_bos;
  no_bos.add_bos_token = false;
  CHECK(stepverify::load_bpe_tokenizer(dir.path, no_bos)->encode("Janet has").size() == 2);
}

TEST_CASE("bpe: round trips, empty text and invalid UTF-8", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const auto tok = stepverify::load_bpe_tokenizer(qwen2_fixture());
  CHECK(tok->encode("").empty());
  CHECK(tok->encode_with_pieces("").pieces.empty());
  CHECK(tok->decode({}).empty());

  for (const std::string text :
       {"Janet's 16 eggs \xF0\x9F\xA5\x9A\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD cost $2.",
        "\xE4\xB8\xAD\xE6\x96\x87 \xD9\xA1\xD9\xA2 \xC2\xBD \xE2\x80\xA8 \xE3\x80\x80 tab\there",
        "  leading, double  and trailing  \n\n\r\n", "<|im_start|>user\n$\\frac{1}{2}$<|im_end|>"}) {
    INFO("text: " << text);
    CHECK(tok->decode(tok->encode(text)) == text);
  }
  // NFC: decomposed input comes back composed, as HF returns it.
  CHECK(tok->decode(tok->encode("e\xCC\x81")) == "\xC3\xA9");
  CHECK(tok->encode("e\xCC\x81") == tok->encode("\xC3\xA9"));

  // Byte-level pieces carry any byte; decode replaces ill-formed UTF-8 as
  // Python's bytes.decode("utf-8", errors="replace") does (values from Python).
  auto ids_for = [&](std::initializer_list<unsigned char> bytes) {
    std::vector<int64_t> ids;
    for (unsigned char b : bytes) {
      const auto id = tok->piece_to_id(byte_piece(b));
      REQUIRE(id);
      ids.push_back(*id);
    }
    return ids;
  };
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(tok->decode(ids_for({0xF0, 0x9F, 0x98, 0x80})) == "\xF0\x9F\x98\x80");
  CHECK(tok->decode(ids_for({0xF0, 0x9F, 0x98})) == fffd);
  CHECK(tok->decode(ids_for({'a', 0x80, 'b'})) == "a" + fffd + "b");
  CHECK(tok->decode(ids_for({0xE2, '(', 0xA1})) == fffd + "(" + fffd);
  CHECK(tok->decode(ids_for({0xED, 0xA0, 0x80})) == fffd + fffd + fffd);
  CHECK(tok->decode(ids_for({0xFF})) == fffd);
  CHECK(tok->id_to_piece(ids_for({0xFF})[0]) == "\xC3\xBF");  // "ÿ"

  // Python strings cannot hold invalid UTF-8, so encode refuses it.
  CHECK_THROWS_AS(tok->encode("ab\xFF"), stepverify::InputError);
}

TEST_CASE("bpe: special tokens in text, pieces and ids", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const auto tok = stepverify::load_bpe_tokenizer(qwen2_fixture());
  const auto ids = tok->encode("a<extra_0>b<|im_end|>");
  CHECK(ids.size() == 4);
  CHECK(ids[1] == 489);
  CHECK(ids[3] == 488);
  // Without parsing, the literal text is tokenized as plain bytes.
  const auto literal = tok->encode("<extra_0>", literal_special());
  CHECK(literal.size() > 1);
  CHECK(tok->decode(literal) == "<extra_0>");
  CHECK(tok->piece_to_id("\xC4\xA0the"));  // "Ġthe"
  CHECK_FALSE(tok->piece_to_id("not a piece"));
  CHECK_FALSE(tok->is_special(tok->encode("a")[0]));
  REQUIRE(tok->added_tokens().size() == 4);
  CHECK(tok->added_tokens().front().id == 486);

  require_error<TokenizerError>([&] { tok->decode({1, 490}); }, {"490"});
  require_error<TokenizerError>([&] { tok->id_to_piece(-1); }, {"-1"});
}

TEST_CASE("bpe: concurrent encoding gives the same ids", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const auto tok = stepverify::load_bpe_tokenizer(qwen2_fixture());
  const auto texts = reference_texts();
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round)
        for (const auto& [text, ids] : texts)
          if (tok->encode(text) != ids) ++mismatches;
    });
  for (auto& th : threads) th.join();
  CHECK(mismatches == 0);
}

TEST_CASE("bpe: corrupt or inconsistent files give typed errors", "[tokenizer][bpe]") {
  REQUIRE_FIXTURE_OR_SKIP();
  const std::string vocab = slurp(qwen2_fixture() / "vocab.json");
  const std::string merges = slurp(qwen2_fixture() / "merges.txt");
  auto slow_dir = [&](const std::string& v, const std::string& m) {
    auto dir = std::make_unique<TempDir>();
    dir->write("vocab.json", v);
    dir->write("merges.txt", m);
    return dir;
  };
  auto load = [](const TempDir& d) { return [&d] { stepverify::load_bpe_tokenizer(d.path); }; };

  SECTION("bad JSON in vocab.json") {
    auto d = slow_dir("{\"a\": 0,", merges);
    require_error<TokenizerError>(load(*d), {"vocab.json", "not valid JSON"});
  }
  SECTION("vocab.json id not an integer") {
    auto d = slow_dir(R"({"a": 0, "b": "one"})", "#version: 0.2\n");
    require_error<TokenizerError>(load(*d), {"vocab.json", "'b'"});
  }
  SECTION("vocab.json duplicate ids") {
    auto d = slow_dir(R"({"a": 0, "b": 0})", "#version: 0.2\n");
    require_error<TokenizerError>(load(*d), {"vocab.json", "'a'", "'b'", "id 0"});
  }
  SECTION("merges.txt malformed line") {
    auto d = slow_dir(vocab, "#version: 0.2\na n\nh e x\n");
    require_error<TokenizerError>(load(*d), {"merges.txt:3", "h e x"});
  }
  SECTION("merges.txt names an unknown token") {
    auto d = slow_dir(vocab, "#version: 0.2\na n\nzzz q\n");
    require_error<TokenizerError>(load(*d), {"merges.txt:3", "'zzz'"});
  }
  SECTION("tokenizer.json: bad JSON, no model, unknown merge token, non-integer id") {
    TempDir d;
    d.write("tokenizer.json", "{\"model\": ");
    require_error<TokenizerError>(load(d), {"tokenizer.json", "not valid JSON"});
    d.write("tokenizer.json", R"({"version": "1.0"})");
    require_error<TokenizerError>(load(d), {"tokenizer.json", "model"});
    json j = tokenizer_json_from_slow_files(true);
    j["model"]["merges"].push_back({"zzz", "a"});
    d.write("tokenizer.json", j.dump());
    require_error<TokenizerError>(load(d), {"tokenizer.json", "model.merges[", "'zzz'"});
    j = tokenizer_json_from_slow_files(false);
    j["model"]["vocab"]["Janet"] = 1.5;
    d.write("tokenizer.json", j.dump());
    require_error<TokenizerError>(load(d), {"tokenizer.json", "model.vocab", "'Janet'"});
    j = tokenizer_json_from_slow_files(false);
    j["model"]["merges"][3] = "a b c";
    d.write("tokenizer.json", j.dump());
    require_error<TokenizerError>(load(d), {"model.merges[3]", "a b c"});
  }
  SECTION("tokenizer.json of a sentencepiece-style BPE points to tokenizer.model") {
    TempDir d;
    json j = tokenizer_json_from_slow_files(false);
    j["model"]["byte_fallback"] = true;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
    d.write("tokenizer.json", j.dump());
    require_error<TokenizerError>(load(d), {"tokenizer.json", "sentencepiece", "tokenizer.model"});
  }
  SECTION("tokenizer.json with an unsupported normalizer") {
    TempDir d;
    json j = tokenizer_json_from_slow_files(false);
    j["normalizer"] = {{"type", "NFKC"}};
    d.write("tokenizer.json", j.dump());
    require_error<TokenizerError>(load(d), {"tokenizer.json", "NFKC"});
  }
  SECTION("no tokenizer files at all") {
    TempDir d;
    require_error<stepverify::IoError>(load(d), {d.path.string()});
  }
}
