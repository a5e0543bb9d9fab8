// Model: loading a checkpoint into the backbone (a checked one-to-one copy).
#include <map>
#include <set>

#include "stepverify/errors.h"
#include "stepverify/model.h"
#include "stepverify/transformer.h"
#include "backbone/tensor_io.h"

namespace stepverify {

void LoadOptions::check() const {
  const LoadOptions& o = *this;
  if (o.dtype != torch::kFloat && o.dtype != torch::kBFloat16 && o.dtype != torch::kHalf)
    throw ConfigError("LoadOptions.dtype must be float32, bfloat16 or float16");
  if (o.dtype == torch::kHalf && o.device.is_cpu())
    throw ConfigError(
        "LoadOptions.dtype float16 on the CPU: this libtorch has no float16 matrix products on CPU; "
        "use bfloat16 (the same memory, about float32's speed) or float32");
  if (o.device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError("LoadOptions.device is CUDA but no CUDA device is available to libtorch");
}

at::Tensor to_batch(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kLong).view({1, static_cast<int64_t>(ids.size())});
}

Model::~Model() = default;

std::shared_ptr<const Model> Model::load(const std::filesystem::path& dir, const LoadOptions& options) {
  return load(dir, ModelConfig::from_file(dir / "config.json"), *Checkpoint::open(dir), options);
}

std::shared_ptr<const Model> Model::load(const std::filesystem::path& dir, const ModelConfig& config,
                                         const Checkpoint& checkpoint, const LoadOptions& options) {
  auto model = std::const_pointer_cast<Model>(from_checkpoint(config, checkpoint, options));
  if (options.load_tokenizer) model->tokenizer_ = load_tokenizer(dir, options.tokenizer);
  return model;
}

std::shared_ptr<Model> Model::make_unloaded(const ModelConfig& config, const LoadOptions& options) {
  options.check();
  auto model = std::shared_ptr<Model>(new Model());
  model->config_ = config;
  model->options_ = options;
  const bool with_lm_head = options.load_lm_head && config.head == HeadKind::CausalLM;
  model->transformer_ = std::make_shared<TransformerImpl>(config, with_lm_head, options.device);
  return model;
}

std::shared_ptr<const Model> Model::from_checkpoint(const ModelConfig& config, const Checkpoint& ckpt,
                                                    const LoadOptions& options) {
  torch::NoGradGuard no_grad;
  auto model = make_unloaded(config, options);
  const bool with_lm_head = model->transformer_->has_lm_head();

  // Backbones are saved under "model." by every *For* class, bare by *Model.
  std::string prefix = "model.";
  if (!ckpt.contains("model.embed_tokens.weight") && ckpt.contains("embed_tokens.weight")) prefix = "";
  const bool tied = config.tie_word_embeddings;
  std::set<std::string> consumed;
  auto key_of = [&](const std::string& name) { return name.rfind("model.", 0) == 0 ? prefix + name.substr(6) : name; };
  int64_t total = 0, done = 0;
  for (auto& item : model->transformer_->named_parameters())
    if (!(item.key() == "lm_head.weight" && tied))  // a missing tensor throws ShapeError naming it
      total += static_cast<int64_t>(ckpt.tensor(key_of(item.key())).nbytes);
  // Weights used in place, by data pointer: the fused ones are copied, and
  // their mapped pages then dropped, so loading peaks at the model's size.
  std::map<const void*, TensorView> in_place;
  for (auto& item : model->transformer_->named_parameters()) {
    const std::string& name = item.key();
    if (name == "lm_head.weight" && tied) continue;
    const std::string key = key_of(name);
    auto t = load_parameter(ckpt, key, item.value().sizes(), options.device, options.dtype, options.weights_in_place);
    const auto view = ckpt.tensor(key);
    if (t.device().is_cpu() && t.data_ptr() == static_cast<const void*>(view.data))
      in_place.emplace(t.data_ptr(), view);
    done += static_cast<int64_t>(view.nbytes);
    item.value().set_data(t);
    consumed.insert(key);
    if (options.progress) options.progress(done, total);
  }
  if (with_lm_head && tied) model->transformer_->tie_lm_head();
  model->transformer_->fuse_projections([&](const void* data) {
    auto it = in_place.find(data);
    if (it != in_place.end()) it->second.source->release(it->second.data, it->second.nbytes);
  });
  for (const auto& n : ckpt.names()) {
    if (consumed.count(n)) continue;
    if (n.size() >= 20 && n.compare(n.size() - 20, 20, "rotary_emb.inv_freq") == 0) continue;
    model->unused_.push_back(n);
  }
  return model;
}

std::shared_ptr<const Model> Model::random(const ModelConfig& config, uint64_t seed, const LoadOptions& options) {
  torch::NoGradGuard no_grad;
  auto model = make_unloaded(config, options);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : model->transformer_->named_parameters()) {
    const std::string& name = item.key();
    at::Tensor t;
    if (name.find("norm") != std::string::npos)
      t = torch::ones(item.value().sizes());
    else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
      t = torch::zeros(item.value().sizes());
    else
      t = at::normal(0.0, 0.02, item.value().sizes(), gen);
    item.value().set_data(t.to(options.device, options.dtype));
  }
  if (config.tie_word_embeddings) model->transformer_->tie_lm_head();
  model->transformer_->fuse_projections();
  return model;
}

const Tokenizer& Model::tokenizer() const {
  if (!tokenizer_) throw Error(config_.source + ": model was loaded without a tokenizer");
  return *tokenizer_;
}

bool Model::has_lm_head() const { return transformer_->has_lm_head(); }

ForwardOutput Model::forward(const ForwardInput& input) const {
  c10::InferenceMode guard;
  try {
    return transformer_->forward(input);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Error(std::string("forward: libtorch error: ") + e.what_without_backtrace());
  }
}

at::Tensor Model::logits(const at::Tensor& hidden) const {
  c10::InferenceMode guard;
  return transformer_->logits(hidden.to(options_.device, options_.dtype));
}

KVCache Model::new_cache(int64_t batch, const KVCacheOptions& options) const {
  c10::InferenceMode guard;
  return KVCache(config_, batch, options_.device, options_.dtype, options);
}

std::vector<int64_t> Model::generate_greedy(const std::vector<int64_t>& prompt, int64_t max_new_tokens,
                                            bool stop_at_eos) const {
  if (prompt.empty()) throw InputError("generate_greedy: empty prompt");
  c10::InferenceMode guard;
  KVCacheOptions co;
  co.capacity = static_cast<int64_t>(prompt.size()) + max_new_tokens;
  co.initial_allocation = co.capacity;
  auto cache = new_cache(1, co);
  std::vector<int64_t> out;
  at::Tensor next = to_batch(prompt);
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    ForwardInput in;
    in.input_ids = next;
    in.cache = &cache;
    auto h = forward(in).hidden;
    auto logit = logits(h.select(1, h.size(1) - 1));
    const int64_t tok = logit.argmax(-1).item<int64_t>();
    out.push_back(tok);
    if (stop_at_eos &&
        std::find(config_.eos_token_ids.begin(), config_.eos_token_ids.end(), tok) != config_.eos_token_ids.end())
      break;
    next = to_batch({tok});
  }
  return out;
}

int64_t Model::num_parameters(bool include_embeddings) const {
  int64_t n = 0;
  std::set<const void*> seen;
  for (const auto& item : transformer_->named_parameters()) {
    if (!include_embeddings && (item.key() == "model.embed_tokens.weight" || item.key() == "lm_head.weight")) continue;
    if (!seen.insert(item.value().data_ptr()).second) continue;
    n += item.value().numel();
  }
  return n;
}

}  // namespace stepverify
