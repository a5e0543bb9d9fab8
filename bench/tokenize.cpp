// bench/tokenize: byte-level BPE encoding throughput on one thread.
//
//   tokenize [--model DIR] [--text FILE]... [--bytes N]
//
// Without --text it encodes N bytes (default 1 MiB) of deterministic math text:
// word problems, step-by-step solutions with <extra_0> step tags and LaTeX.
// The model defaults to the qwen2_prm fixture under $STEPVERIFY_SHARED_DIR (or
// the build's default shared dir). Prints MB/s; the last stdout line is JSON:
// {"mb_per_s": ..., "bytes": ..., "tokens": ..., "seconds": ..., "cold_mb_per_s": ...}.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "stepverify/errors.h"
#include "stepverify/runtime.h"
#include "stepverify/tokenizer.h"

#ifndef STEPVERIFY_DEFAULT_SHARED_DIR
#define STEPVERIFY_DEFAULT_SHARED_DIR "../shared"
#endif

namespace {

// Deterministic math text (fixed seed) of at least `target` bytes.
std::string make_math_text(size_t target) {
  static const char* kNames[] = {"Janet", "Tom", "Aïsha", "Zoë", "Li Wei", "Olga", "Mateo"};
  static const char* kItems[] = {"eggs", "apples", "marbles", "books", "coins", "cupcakes"};
  std::mt19937 rng(20240611);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::ostringstream out;
  while (static_cast<size_t>(out.tellp()) < target) {
    const char* name = kNames[pick(0, 6)];
    const char* item = kItems[pick(0, 5)];
    const int a = pick(2, 999), b = pick(1, 99), c = pick(2, 12);
    out << "<|im_start|>user\n"
        << name << " has " << a << " " << item << ". She buys " << b << " more and then splits them equally into " << c
        << " boxes. How many " << item << " are in each box?<|im_end|>\n<|im_start|>assistant\n";
    out << "First, " << name << " has $" << a << " + " << b << " = " << a + b << "$ " << item << ".<extra_0>";
    out << "Each box gets $\\frac{" << a + b << "}{" << c << "} = " << (a + b) / c << "$ with remainder " << (a + b) % c
        << ".<extra_0>";
    out << "We check: $" << c << " \\times " << (a + b) / c << " + " << (a + b) % c << " = " << a + b
        << "$, and $x^2 - " << b << "x + " << c << " = 0$ has discriminant $\\Delta = " << b * b - 4 * c
        << "$.<extra_0>";
    out << "The answer is $\\boxed{" << (a + b) / c << "}$.<extra_0><|im_end|>\n\n";
  }
  return out.str();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw stepverify::IoError(path + ": cannot open file");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string default_model_dir() {
  const char* env = std::getenv("STEPVERIFY_SHARED_DIR");
  return std::string(env ? env : STEPVERIFY_DEFAULT_SHARED_DIR) + "/fixtures/hf/qwen2_prm";
}

}  // namespace

int main(int argc, char** argv) {
  stepverify::restart_for_blas_kernels(argv);  // OpenBLAS kernels fit for this CPU
  stepverify::configure_runtime();             // torch at 1 thread, OpenBLAS on all cores
  std::string model_dir = default_model_dir();
  std::vector<std::string> text_files;
  size_t target = 1 << 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if ((arg == "--model" || arg == "--text" || arg == "--bytes") && i + 1 < argc) {
      const std::string value = argv[++i];
      if (arg == "--model")
        model_dir = value;
      else if (arg == "--text")
        text_files.push_back(value);
      else
        target = std::stoul(value);
    } else {
      std::cerr << "usage: tokenize [--model DIR] [--text FILE]... [--bytes N]\n";
      return 2;
    }
  }
  try {
    std::string text;
    for (const auto& f : text_files) text += read_text_file(f);
    if (text_files.empty()) text = make_math_text(target);
    const auto tokenizer = stepverify::load_bpe_tokenizer(model_dir);

    using clock = std::chrono::steady_clock;
    auto timed = [&](size_t& tokens) {
      const auto start = clock::now();
      tokens = tokenizer->encode(text).size();
      return std::chrono::duration<double>(clock::now() - start).count();
    };
    size_t tokens = 0;
    const double cold = timed(tokens);  // empty word cache
    double best = cold;
    for (int run = 0; run < 3; ++run) best = std::min(best, timed(tokens));
    const double mb = static_cast<double>(text.size()) / 1e6;
    std::cout << "model " << model_dir << ": " << text.size() << " bytes -> " << tokens << " tokens; cold " << mb / cold
              << " MB/s, warm " << mb / best << " MB/s\n";
    std::cout << "{\"mb_per_s\": " << mb / best << ", \"bytes\": " << text.size() << ", \"tokens\": " << tokens
              << ", \"seconds\": " << best << ", \"cold_mb_per_s\": " << mb / cold << "}" << std::endl;
  } catch (const stepverify::Error& e) {
    std::cerr << "tokenize: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
